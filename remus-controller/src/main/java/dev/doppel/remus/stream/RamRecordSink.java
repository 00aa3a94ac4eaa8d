package dev.doppel.remus.stream;

import java.io.IOException;

/** Where the {@link RamSectionParser} delivers what it decodes: a staging area, a loader, a counter. */
public interface RamRecordSink {
    /** The block list, once, when it is first agreed (the initial stream's MEM_SIZE record). */
    default void blockList(java.util.List<RamBlock> blocks) throws IOException {
    }

    /**
     * A full page. {@code data[off .. off+pageSize)} is valid only during the call (the buffer is
     * reused); copy what you keep.
     */
    void page(int blockIndex, long offset, byte[] data, int off) throws IOException;

    /** A page whose every byte is {@code fill} (QEMU sends 0; other values are honoured as QEMU does). */
    void filledPage(int blockIndex, long offset, int fill) throws IOException;

    /** Discards everything. */
    RamRecordSink IGNORE = new RamRecordSink() {
        @Override
        public void page(int blockIndex, long offset, byte[] data, int off) {
        }

        @Override
        public void filledPage(int blockIndex, long offset, int fill) {
        }
    };
}

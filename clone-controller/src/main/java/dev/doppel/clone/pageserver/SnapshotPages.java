package dev.doppel.clone.pageserver;

import dev.doppel.clone.pageserver.wire.ForkDescriptor;
import dev.doppel.clone.pageserver.wire.RamBlockInfo;
import dev.doppel.clone.pageserver.wire.WireFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The memory a fork's clones continue from, page by page: the guest RAM block ({@code pc.ram}) from
 * the parent's frozen generation file, every other block (the ROMs) from the fork descriptor. Read
 * only; safe for concurrent readers (positional reads on one channel).
 */
public final class SnapshotPages implements AutoCloseable {
    private final ForkDescriptor descriptor;
    private final String ramBlock;
    private final FileChannel ramFile;
    private final Map<String, RamBlockInfo> blocks = new LinkedHashMap<>();
    private final PageSupply supply;

    /**
     * Where RAM pages come from when the RAM file is a local cache rather than the generation file
     * itself: {@link #ensure} returns once the page is in the file (multicast distribution).
     */
    public interface PageSupply {
        void ensure(long offset) throws IOException;
    }

    /**
     * @param ramBlock the block whose contents are in {@code ramFile} (the memory backend's id)
     * @throws IOException if the RAM file cannot be opened or is shorter than the block
     */
    public SnapshotPages(ForkDescriptor descriptor, Path ramFile, String ramBlock) throws IOException {
        this(descriptor, ramFile, ramBlock, null);
    }

    /** As above, with RAM pages that reach {@code ramFile} only when {@code supply} fetched them. */
    public SnapshotPages(ForkDescriptor descriptor, Path ramFile, String ramBlock, PageSupply supply) throws IOException {
        this.descriptor = descriptor;
        this.supply = supply;
        this.ramBlock = ramBlock;
        for (RamBlockInfo b : descriptor.blocks()) {
            blocks.put(b.name(), b);
        }
        RamBlockInfo ram = blocks.get(ramBlock);
        if (ram == null) {
            throw new IOException("the descriptor lists no RAM block '" + ramBlock + "' (blocks: " + blocks.keySet() + ")");
        }
        this.ramFile = FileChannel.open(ramFile, StandardOpenOption.READ);
        if (this.ramFile.size() < ram.usedLength()) {
            long size = this.ramFile.size();
            this.ramFile.close();
            throw new IOException("RAM file " + ramFile + " has " + size + " bytes, block " + ramBlock + " needs " + ram.usedLength());
        }
    }

    /** The block whose pages live in the RAM file. */
    public String ramBlock() {
        return ramBlock;
    }

    public ForkDescriptor descriptor() {
        return descriptor;
    }

    public List<RamBlockInfo> blocks() {
        return descriptor.blocks();
    }

    /** Name → block, in stream order. */
    public Map<String, RamBlockInfo> blockMap() {
        return blocks;
    }

    public long totalPages() {
        return descriptor.blocks().stream().mapToLong(RamBlockInfo::pages).sum();
    }

    /**
     * Copies page {@code offset} of {@code block} into {@code dst[0..4096)}; returns true if it is all
     * zero (then the caller may send a ZERO record instead).
     */
    public boolean read(String block, long offset, byte[] dst) throws IOException {
        if (block.equals(ramBlock)) {
            if (supply != null) {
                supply.ensure(offset);
            }
            ByteBuffer buf = ByteBuffer.wrap(dst, 0, WireFormat.PAGE_SIZE);
            long pos = offset;
            while (buf.hasRemaining()) {
                int n = ramFile.read(buf, pos);
                if (n < 0) {
                    throw new IOException("RAM file ended at " + pos + " reading page 0x" + Long.toHexString(offset));
                }
                pos += n;
            }
        } else {
            byte[] carried = descriptor.carriedBlock(block);
            if (carried == null) {
                // A non-shared block none of whose pages is in the descriptor was all zero at the fork.
                java.util.Arrays.fill(dst, 0, WireFormat.PAGE_SIZE, (byte) 0);
                return true;
            }
            System.arraycopy(carried, (int) offset, dst, 0, WireFormat.PAGE_SIZE);
        }
        return isZero(dst);
    }

    static boolean isZero(byte[] page) {
        ByteBuffer b = ByteBuffer.wrap(page, 0, WireFormat.PAGE_SIZE);
        while (b.hasRemaining()) {
            if (b.getLong() != 0) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void close() throws IOException {
        ramFile.close();
    }
}

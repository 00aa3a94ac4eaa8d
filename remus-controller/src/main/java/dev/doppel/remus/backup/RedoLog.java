package dev.doppel.remus.backup;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * The write-ahead log of one epoch's pages: written and forced before the commit record names the
 * epoch, replayed on open when a crash came between the commit record and the end of applying the
 * pages to the memory files. Layout (big-endian): magic "DRDO", version 1, epoch, page size, record
 * count; count × (be32 block, be64 offset, be32 fill or -1 for a data page); the data pages in record
 * order; be64 CRC-32C of everything before it (CRC-32C: hardware-assisted, ~10x faster than CRC-32 here).
 */
final class RedoLog {
    private static final int MAGIC = 0x4452444f;
    private static final int VERSION = 1;
    private static final int HEADER = 4 + 4 + 8 + 4 + 4;
    private static final int ENTRY = 4 + 8 + 4;

    private RedoLog() {
    }

    /** Length and CRC of a written log, both stored in the commit record. */
    record Written(long length, long crc) {
    }

    /**
     * Writes {@code staging} to {@code file} from offset 0 and forces it. The file is not truncated:
     * whatever follows the log from an older, longer epoch is ignored (the commit record has the length).
     */
    static Written write(Path file, long epoch, EpochStaging staging) throws IOException {
        int n = staging.records();
        ByteBuffer head = ByteBuffer.allocate(HEADER + n * ENTRY);
        head.putInt(MAGIC).putInt(VERSION).putLong(epoch).putInt(staging.pageSize()).putInt(n);
        for (int i = 0; i < n; i++) {
            head.putInt(staging.blockAt(i)).putLong(staging.offsetAt(i)).putInt(staging.fillAt(i));
        }
        head.flip();
        CRC32C crc = new CRC32C();
        crc.update(head.duplicate());
        crc.update(staging.arena(), 0, staging.arenaUsed());
        ByteBuffer tail = ByteBuffer.allocate(8).putLong(crc.getValue()).flip();
        long length = head.remaining() + (long) staging.arenaUsed() + 8;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            writeFully(ch, head);
            writeFully(ch, ByteBuffer.wrap(staging.arena(), 0, staging.arenaUsed()));
            writeFully(ch, tail);
            ch.force(false);
        }
        return new Written(length, crc.getValue());
    }

    /** Reads a log back into a staging area; fails unless magic, epoch, page size, length and CRC all match. */
    static EpochStaging read(Path file, long length, long epoch, int pageSize, long expectedCrc) throws IOException {
        byte[] whole = java.nio.file.Files.readAllBytes(file);
        if (length < HEADER + 8 || length > whole.length) {
            throw new IOException("redo log " + file + " is shorter (" + whole.length + " bytes) than committed (" + length + ")");
        }
        byte[] all = java.util.Arrays.copyOf(whole, (int) length);
        ByteBuffer b = ByteBuffer.wrap(all);
        if (all.length < HEADER + 8 || b.getInt() != MAGIC || b.getInt() != VERSION || b.getLong() != epoch
                || b.getInt() != pageSize) {
            throw new IOException("redo log " + file + " does not belong to epoch " + epoch);
        }
        int n = b.getInt();
        long dataStart = HEADER + (long) n * ENTRY;
        if (n < 0 || dataStart > all.length - 8) {
            throw new IOException("redo log " + file + " is truncated (" + n + " records, " + all.length + " bytes)");
        }
        CRC32C crc = new CRC32C();
        crc.update(all, 0, all.length - 8);
        long stored = ByteBuffer.wrap(all, all.length - 8, 8).getLong();
        if (crc.getValue() != stored || stored != expectedCrc) {
            throw new IOException("redo log " + file + " fails its checksum");
        }
        EpochStaging s = new EpochStaging(pageSize);
        int data = (int) dataStart;
        for (int i = 0; i < n; i++) {
            int block = b.getInt();
            long off = b.getLong();
            int fill = b.getInt();
            if (fill == EpochStaging.DATA) {
                if (data + pageSize > all.length - 8) {
                    throw new IOException("redo log " + file + " has fewer pages than records");
                }
                s.page(block, off, all, data);
                data += pageSize;
            } else {
                s.filledPage(block, off, fill);
            }
        }
        return s;
    }

    static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    static void writeFullyAt(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            pos += ch.write(buf, pos);
        }
    }
}

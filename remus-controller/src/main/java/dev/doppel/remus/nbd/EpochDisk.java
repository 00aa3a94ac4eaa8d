package dev.doppel.remus.nbd;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * The backup's disk under Remus semantics: the image file always equals the disk of the last
 * committed checkpoint, so it always matches the committed memory. Writes of the open epoch are held
 * in memory and reach the image only on {@link #commit()}; {@link #discard()} drops them (the primary
 * died mid-epoch, the epoch was never committed).
 *
 * <p>Granularity: 4 KiB blocks ({@link #BLOCK}), the guest's page and usual I/O size. A write that
 * covers part of a block first copies the newest version of the block (held, else the image) and
 * merges into that copy, so partial and unaligned writes are exact at byte granularity. Zeroed blocks
 * (WRITE_ZEROES, TRIM) share one read-only zero array until a later partial write copies it.
 *
 * <p>Raw images only (a plain file read and written with positional FileChannel I/O); qcow2 would need
 * QEMU's block layer or our own reader and is not supported yet. The export size is the file size at
 * open.
 *
 * <p>Thread-safety: every public method is synchronized, so one connection's requests and a
 * {@link #commit()} from the COLO session thread serialise; a commit never sees half a write.
 */
public final class EpochDisk implements Closeable {
    public static final int BLOCK = 4096;
    private static final byte[] ZERO_BLOCK = new byte[BLOCK];

    /**
     * A snapshot of the counters. {@code writesHeld}: write/zero/trim requests of the open epoch;
     * {@code bytesHeld}: image bytes covered by held blocks (4 KiB each; zeroed blocks share one array,
     * so memory is lower after large zeroes/trims); {@code commits}/{@code discards}: since open.
     */
    public record Stats(long writesHeld, long bytesHeld, long commits, long discards) {
    }

    private final Path image;
    private final FileChannel channel;
    private final long size;
    private final TreeMap<Long, byte[]> held = new TreeMap<>();   // block index -> full block
    private long writesHeld;
    private long commits;
    private long discards;
    private boolean closed;

    private EpochDisk(Path image, FileChannel channel, long size) {
        this.image = image;
        this.channel = channel;
        this.size = size;
    }

    /** Opens a raw image read-write; its current length is the export size. */
    public static EpochDisk openRaw(Path image) throws IOException {
        FileChannel ch = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE);
        try {
            return new EpochDisk(image, ch, ch.size());
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    public Path image() {
        return image;
    }

    public long size() {
        return size;
    }

    /** Reads the newest data (held writes first, then the image) into {@code dst}. */
    public synchronized void read(long offset, byte[] dst, int dstOff, int length) throws IOException {
        checkRange("read", offset, length);
        forEachSpan(offset, length, (blockIndex, inBlock, n, done) -> {
            byte[] b = held.get(blockIndex);
            if (b != null) {
                System.arraycopy(b, inBlock, dst, dstOff + (int) done, n);
            } else {
                readImage(offset + done, dst, dstOff + (int) done, n);
            }
        });
    }

    /** Holds a write of the open epoch. */
    public synchronized void write(long offset, byte[] src, int srcOff, int length) throws IOException {
        checkRange("write", offset, length);
        forEachSpan(offset, length, (blockIndex, inBlock, n, done) ->
                System.arraycopy(src, srcOff + (int) done, writableBlock(blockIndex, inBlock == 0 && n == BLOCK), inBlock, n));
        writesHeld++;
    }

    /**
     * Holds zeroes over the range. TRIM uses this too: the primary's raw image reads back zeroes after
     * a discard, and the backup must read back what the primary does, so a trim is not "advisory" here.
     */
    public synchronized void writeZeroes(long offset, long length) throws IOException {
        checkRange("write-zeroes", offset, length);
        forEachSpan(offset, length, (blockIndex, inBlock, n, done) -> {
            if (inBlock == 0 && n == BLOCK) {
                held.put(blockIndex, ZERO_BLOCK);
            } else {
                Arrays.fill(writableBlock(blockIndex, false), inBlock, inBlock + n, (byte) 0);
            }
        });
        writesHeld++;
    }

    /** The part of one 4 KiB block that a request covers. */
    @FunctionalInterface
    private interface BlockSpan {
        /**
         * @param blockIndex the block
         * @param inBlock    first byte inside the block
         * @param n          bytes covered in this block
         * @param done       bytes of the request before this span
         */
        void apply(long blockIndex, int inBlock, int n, long done) throws IOException;
    }

    /** Splits [offset, offset+length) at block boundaries, in order. */
    private static void forEachSpan(long offset, long length, BlockSpan span) throws IOException {
        long done = 0;
        while (done < length) {
            long pos = offset + done;
            int inBlock = (int) (pos % BLOCK);
            int n = (int) Math.min(BLOCK - inBlock, length - done);
            span.apply(pos / BLOCK, inBlock, n, done);
            done += n;
        }
    }

    /**
     * Applies the open epoch's writes to the image (positional writes, then force) and empties the
     * buffer. On an I/O error the buffer is kept and the exception propagates; the image may then
     * hold part of the epoch, so it is no longer a valid failover disk until a retried commit
     * succeeds (the caller must treat the backup as stale).
     */
    public synchronized void commit() throws IOException {
        ensureOpen("commit");
        for (Map.Entry<Long, byte[]> e : held.entrySet()) {
            long pos = e.getKey() * BLOCK;
            int n = (int) Math.min(BLOCK, size - pos);
            ByteBuffer buf = ByteBuffer.wrap(e.getValue(), 0, n);
            while (buf.hasRemaining()) {
                channel.write(buf, pos + buf.position());
            }
        }
        channel.force(false);
        held.clear();
        writesHeld = 0;
        commits++;
    }

    /** Drops the open epoch's writes; the image keeps the last committed checkpoint. */
    public synchronized void discard() {
        held.clear();
        writesHeld = 0;
        discards++;
    }

    public synchronized Stats stats() {
        return new Stats(writesHeld, (long) held.size() * BLOCK, commits, discards);
    }

    /** Closes the image; held (uncommitted) writes are dropped, as they were never committed. */
    @Override
    public synchronized void close() throws IOException {
        if (!closed) {
            closed = true;
            held.clear();
            channel.close();
        }
    }

    private byte[] writableBlock(long blockIndex, boolean wholeBlock) throws IOException {
        byte[] b = held.get(blockIndex);
        if (b != null && b != ZERO_BLOCK) {
            return b;
        }
        byte[] copy = new byte[BLOCK];
        if (b == ZERO_BLOCK || wholeBlock) {
            // already zero, or fully overwritten by the caller
        } else {
            long pos = blockIndex * BLOCK;
            readImage(pos, copy, 0, (int) Math.min(BLOCK, size - pos));
        }
        held.put(blockIndex, copy);
        return copy;
    }

    private void readImage(long pos, byte[] dst, int off, int n) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(dst, off, n);
        while (buf.hasRemaining()) {
            int r = channel.read(buf, pos + (buf.position() - off));
            if (r < 0) {
                // the file shrank under us: what lies past its end reads as zeroes
                Arrays.fill(dst, buf.position(), off + n, (byte) 0);
                break;
            }
        }
    }

    private void checkRange(String op, long offset, long length) throws IOException {
        ensureOpen(op);
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new IllegalArgumentException(op + " of " + image + " at offset " + offset + " length "
                    + length + " is outside the disk (size " + size + ")");
        }
    }

    private void ensureOpen(String op) throws IOException {
        if (closed) {
            throw new IOException(op + " on closed disk " + image);
        }
    }
}

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
 * in memory and reach the image only when their epoch commits; {@link #discard()} drops them (the
 * primary died mid-epoch, the epoch was never committed).
 *
 * <p>Three stages, newest first: the <em>open</em> epoch (writes arriving now), the <em>closed</em>
 * epoch (its checkpoint is being received: {@link #boundary()} at the FLUSH that the checkpoint's VM
 * stop sends on the disk's own connection), and the image.
 * {@link #commitClosed()} applies the closed epoch at the checkpoint's commit. Reads see the newest
 * stage holding a block. Before the first checkpoint the disk can be in <em>pass-through</em>: the
 * initial synchronisation (a full mirror of the primary's disk) writes straight to the image, because
 * until the initial state is committed there is no checkpoint the image must match, and holding a
 * whole disk in memory would be the alternative. {@link #startEpochs()} ends it.
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
     * Default bound on the data an epoch may hold (open and closed epoch together). A primary whose
     * checkpoints stopped while its disk writes go on would otherwise fill the backup's memory;
     * beyond the bound writes fail (EIO to the primary), its mirror job aborts and protection ends.
     */
    public static final long DEFAULT_HELD_LIMIT_BYTES = 1L << 30;
    /** Zeroed blocks share one array: a map entry each, so many more may be held. */
    private static final int ZERO_ENTRIES_PER_BLOCK = 16;

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
    private TreeMap<Long, byte[]> held = new TreeMap<>();         // open epoch: block index -> full block
    private TreeMap<Long, byte[]> closedEpoch = new TreeMap<>();  // epoch whose checkpoint is in flight
    private boolean passThrough;
    /** Epoch boundaries (the VM stop's FLUSH) since the last commit or discard. */
    private int boundaries;
    private long heldLimitBlocks = DEFAULT_HELD_LIMIT_BYTES / BLOCK;
    private long writesHeld;
    private long commits;
    private long discards;
    private boolean closed;

    private EpochDisk(Path image, FileChannel channel, long size) {
        this.image = image;
        this.channel = channel;
        this.size = size;
    }

    /** Opens a raw image read-write, holding writes from the start; its current length is the export size. */
    public static EpochDisk openRaw(Path image) throws IOException {
        return openRaw(image, false);
    }

    /**
     * Opens a raw image read-write; with {@code passThrough} writes reach the image directly until
     * {@link #startEpochs()} (the initial synchronisation of a backup).
     */
    public static EpochDisk openRaw(Path image, boolean passThrough) throws IOException {
        FileChannel ch = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE);
        try {
            EpochDisk d = new EpochDisk(image, ch, ch.size());
            d.passThrough = passThrough;
            return d;
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /** Bounds the bytes held in memory (open and closed epoch); see {@link #DEFAULT_HELD_LIMIT_BYTES}. */
    public synchronized void limitHeldBytes(long bytes) {
        heldLimitBlocks = Math.max(1, bytes / BLOCK);
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
            byte[] b = newestHeld(blockIndex);
            if (b != null) {
                System.arraycopy(b, inBlock, dst, dstOff + (int) done, n);
            } else {
                readImage(offset + done, dst, dstOff + (int) done, n);
            }
        });
    }

    /** Holds a write of the open epoch (or, in pass-through, writes it to the image). */
    public synchronized void write(long offset, byte[] src, int srcOff, int length) throws IOException {
        checkRange("write", offset, length);
        if (passThrough) {
            writeImage(offset, ByteBuffer.wrap(src, srcOff, length));
            return;
        }
        ensureRoom(offset, length, heldLimitBlocks);
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
        if (passThrough) {
            zeroImage(offset, length);
            return;
        }
        ensureRoom(offset, length, heldLimitBlocks * ZERO_ENTRIES_PER_BLOCK);
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
     * Ends pass-through: the image is made durable as it stands (the initial state is being
     * committed) and from now on writes are held until their epoch commits.
     */
    public synchronized void startEpochs() throws IOException {
        ensureOpen("start epochs");
        channel.force(false);
        passThrough = false;
    }

    /**
     * Closes the open epoch: its writes wait for {@link #commitClosed()} and later writes belong to
     * the next epoch. If the previous closed epoch was never committed (that checkpoint failed and
     * the caller chose not to discard), the two merge, newer blocks winning.
     */
    public synchronized void closeEpoch() throws IOException {
        ensureOpen("close epoch");
        if (closedEpoch.isEmpty()) {
            closedEpoch = held;
        } else {
            closedEpoch.putAll(held);
        }
        held = new TreeMap<>();
        writesHeld = 0;
    }

    /**
     * An epoch boundary on the disk's own connection: the FLUSH that the primary's VM stop sends for
     * every disk written since its last flush, after the stop drained the epoch's writes and before
     * the guest can issue another (so on this connection the order is the epoch's writes, the FLUSH,
     * the next epoch's writes, whatever the threads do). Closes the open epoch and counts. Ignored in
     * pass-through: the initial mirror's and the migration completion's flushes arrive then.
     *
     * <p>Why here and not at VMSTATE_SEND: with speculative checkpoints the guest runs again while its
     * checkpoint travels, and the next epoch's writes race VMSTATE_SEND, which travels on another
     * connection and is read by another thread (docs/speculation.md §3).
     */
    public synchronized void boundary() throws IOException {
        ensureOpen("epoch boundary");
        if (passThrough) {
            return;
        }
        closeEpoch();
        boundaries++;
    }

    /**
     * Boundaries seen since the last commit: 1 when the epoch being committed wrote to this disk, 0
     * when it did not (a disk not written since its last flush gets none), 2 or more when a stop other
     * than the checkpoint's (an operator's stop, a savevm) flushed as well: then which writes belong to
     * the epoch is ambiguous.
     */
    public synchronized int boundaries() {
        return boundaries;
    }

    /**
     * Applies the closed epoch's writes to the image (positional writes, then force) and empties it.
     * On an I/O error the blocks stay held and the exception propagates; the image may then hold
     * part of the epoch, so it is no longer a valid failover disk until a retried commit succeeds
     * (the caller must treat the backup as stale).
     */
    public synchronized void commitClosed() throws IOException {
        ensureOpen("commit");
        for (Map.Entry<Long, byte[]> e : closedEpoch.entrySet()) {
            long pos = e.getKey() * BLOCK;
            writeImage(pos, ByteBuffer.wrap(e.getValue(), 0, (int) Math.min(BLOCK, size - pos)));
        }
        channel.force(false);
        closedEpoch.clear();
        boundaries = 0;
        commits++;
    }

    /** Closes the open epoch and applies it: {@link #closeEpoch()} then {@link #commitClosed()}. */
    public synchronized void commit() throws IOException {
        closeEpoch();
        commitClosed();
    }

    /** Drops every held write (open and closed epoch); the image keeps the last committed checkpoint. */
    public synchronized void discard() {
        held.clear();
        closedEpoch.clear();
        writesHeld = 0;
        boundaries = 0;
        discards++;
    }

    public synchronized Stats stats() {
        return new Stats(writesHeld, (long) (held.size() + closedEpoch.size()) * BLOCK, commits, discards);
    }

    /** Closes the image; held (uncommitted) writes are dropped, as they were never committed. */
    @Override
    public synchronized void close() throws IOException {
        if (!closed) {
            closed = true;
            held.clear();
            closedEpoch.clear();
            channel.close();
        }
    }

    private byte[] newestHeld(long blockIndex) {
        byte[] b = held.get(blockIndex);
        return b != null ? b : closedEpoch.get(blockIndex);
    }

    private byte[] writableBlock(long blockIndex, boolean wholeBlock) throws IOException {
        byte[] b = held.get(blockIndex);
        if (b != null && b != ZERO_BLOCK) {
            return b;
        }
        byte[] copy = new byte[BLOCK];
        byte[] older = b == null ? closedEpoch.get(blockIndex) : null;
        if (b == ZERO_BLOCK || wholeBlock || older == ZERO_BLOCK) {
            // already zero, or fully overwritten by the caller
        } else if (older != null) {
            // the closed epoch's copy stays untouched: it is what that checkpoint commits
            System.arraycopy(older, 0, copy, 0, BLOCK);
        } else {
            long pos = blockIndex * BLOCK;
            readImage(pos, copy, 0, (int) Math.min(BLOCK, size - pos));
        }
        held.put(blockIndex, copy);
        return copy;
    }

    /**
     * Zeroes a range of the image, skipping blocks that already read as zero: the initial mirror of
     * a mostly empty disk is mostly WRITE_ZEROES (QEMU cannot know that a fresh NBD target is zero),
     * and writing them would turn the sparse replica into a full one.
     */
    private void zeroImage(long offset, long length) throws IOException {
        byte[] current = new byte[BLOCK];
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(BLOCK - (offset + done) % BLOCK, length - done);
            readImage(offset + done, current, 0, n);
            if (!Arrays.equals(current, 0, n, ZERO_BLOCK, 0, n)) {
                writeImage(offset + done, ByteBuffer.wrap(ZERO_BLOCK, 0, n));
            }
            done += n;
        }
    }

    private void writeImage(long pos, ByteBuffer buf) throws IOException {
        long start = pos - buf.position();
        while (buf.hasRemaining()) {
            channel.write(buf, start + buf.position());
        }
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

    /** Refuses, before changing anything, a request that could take the held blocks beyond {@code limit}. */
    private void ensureRoom(long offset, long length, long limit) throws IOException {
        long spanned = (offset + length + BLOCK - 1) / BLOCK - offset / BLOCK;
        if (held.size() + closedEpoch.size() + spanned > limit) {
            throw new IOException("the epoch buffer of " + image + " is full (" + ((long) (held.size() + closedEpoch.size()) * BLOCK >> 20)
                    + " MiB held, no checkpoint committed them): refusing more writes");
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

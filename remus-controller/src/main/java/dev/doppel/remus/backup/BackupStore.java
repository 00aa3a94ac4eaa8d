package dev.doppel.remus.backup;

import dev.doppel.remus.stream.MigrationStreamWriter;
import dev.doppel.remus.stream.RamBlock;
import dev.doppel.remus.stream.RamRecordSink;
import dev.doppel.remus.stream.StreamTags;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup's copy of one protected VM at its last committed epoch: guest RAM in one memory file
 * per RAM block (the main block, {@code pc.ram}, is the file a restoring QEMU maps with
 * {@code share=on}), the device state of that epoch, the epoch number and the VM's metadata.
 *
 * <h2>Atomic commit</h2>
 * An epoch's pages overwrite pages of the previous epoch in place, so a crash half-way through
 * writing them would leave a memory file that belongs to no epoch. The store therefore uses a
 * write-ahead (redo) log:
 * <ol>
 *   <li>the staged pages go to a redo log (forced): {@code redo-a.log} for even epochs,
 *       {@code redo-b.log} for odd ones, overwritten in place so that tmpfs does not allocate and
 *       free ~7.6 MB per epoch;</li>
 *   <li>the device state goes to {@code device-N.bin} (forced);</li>
 *   <li>{@code COMMIT} is replaced by rename: <b>the commit point</b>. Before it, the files still
 *       hold epoch N-1 unchanged (nothing was written to the memory files); after it, epoch N is
 *       the committed one, even if its pages are not in the memory files yet;</li>
 *   <li>the pages are written to the memory files ({@link #commit}: before returning;
 *       {@link #commitAndApplyLater}, which the COLO session uses: on the store's thread while the
 *       primary already runs again, so that the primary's pause does not include it);</li>
 *   <li>the previous device state is deleted.</li>
 * </ol>
 * {@link #open} finishes an interrupted commit: it replays the redo log named by {@code COMMIT}
 * (idempotent: it holds the committed epoch's pages, which are either already in the memory files
 * or must be; the next epoch always writes the <em>other</em> log file) and deletes leftovers of an
 * epoch that never reached its commit point. A redo log
 * was chosen over an undo log because it costs one extra write of the dirty pages and no read,
 * and over double buffering because that would copy or re-map the whole RAM per epoch.
 *
 * <p>The store lives on tmpfs: "crash" here means the backup process dying, which it survives;
 * a host crash loses the memory files anyway (and with them the backup, not the primary).
 *
 * <p>Epoch 0 (the initial full stream) is written straight into fresh memory files: there is no
 * previous epoch to protect, and {@code COMMIT} is deleted before the first byte is written, so
 * a store whose initial load broke off has no committed epoch at all.
 *
 * <p>Thread safety: all public methods are synchronized; one session commits, a controller may
 * read (e.g. {@link #restoreStream()}) at the same time.
 */
public final class BackupStore implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BackupStore.class);
    private static final String VMDESC_FILE = "vmdesc.json";
    /**
     * Present while a restored VM runs on this store's memory file ({@code share=on}): the file is
     * that guest's RAM now, so the store must never be written again — not by a late commit, not by
     * {@link #open}'s redo replay, not by a new initial load (a new protection gets a new store).
     */
    public static final String LIVE_FILE = "LIVE";

    private final Path dir;
    private final String vmName;
    private CommitRecord committed;
    private final List<FileChannel> blockFiles = new ArrayList<>();
    /** Forensics, off unless asked for: per block, the last committed epoch that carried each page. */
    private volatile long[][] pageEpochs;
    private byte[] deviceState;
    private FaultInjector faults = step -> { };
    /** Pages of the last commit still being written to the memory files (see {@link #commitAndApplyLater}). */
    private java.util.concurrent.Future<?> pendingApply;
    private long pendingEpoch;
    private java.util.concurrent.ExecutorService applier;
    private volatile long lastApplyNanos;
    private String liveVm;

    /** Test seam: called at each step of a commit; throwing simulates the process dying there. */
    interface FaultInjector {
        void at(String step) throws IOException;
    }

    private BackupStore(Path dir, String vmName) {
        this.dir = dir;
        this.vmName = vmName;
    }

    /** Opens (creating if needed) the store in {@code dir}, finishing or discarding an interrupted commit. */
    public static BackupStore open(Path dir, String vmName) throws IOException {
        Files.createDirectories(dir);
        Path live = dir.resolve(LIVE_FILE);
        if (Files.exists(live)) {
            throw new BackupStoreException(vmName, -1, "opening store " + dir + ": a restored VM runs on its memory file ("
                    + Files.readString(live).strip() + "); it is never opened for writing again");
        }
        BackupStore s = new BackupStore(dir, vmName);
        try {
            s.recover();
        } catch (IOException | RuntimeException e) {
            s.closeFiles();
            throw new BackupStoreException(vmName, -1, "opening store " + dir, e);
        }
        return s;
    }

    void setFaultInjector(FaultInjector f) {
        this.faults = f;
    }

    public String vmName() {
        return vmName;
    }

    public Path directory() {
        return dir;
    }

    /** The committed epoch, or -1 if none is (no initial stream completed). */
    public synchronized long committedEpoch() {
        return committed == null ? -1 : committed.epoch();
    }

    /** Metadata of the committed state, or null before epoch 0. */
    public synchronized StoreMetadata metadata() {
        return committed == null ? null : committed.metadata();
    }

    /** Device state of the committed epoch: FULL sections and EOF as QEMU sent them. */
    public synchronized byte[] deviceState() {
        return deviceState == null ? null : deviceState.clone();
    }

    /**
     * The memory file of the main RAM block (map it {@code share=on} with x-ignore-shared to restore).
     * Waits until the committed epoch's pages are all in it; it holds that epoch until the next commit.
     */
    public synchronized Path memoryFile() throws IOException {
        awaitApplied();
        StoreMetadata m = requireCommitted("memoryFile");
        return blockFile(m.mainBlockIndex());
    }

    public Path blockFile(int index) {
        return dir.resolve("block-" + index + ".mem");
    }

    private StoreMetadata requireCommitted(String what) {
        if (committed == null) {
            throw new IllegalStateException("backup store of VM '" + vmName + "' has no committed epoch (" + what + ")");
        }
        return committed.metadata();
    }

    // ------------------------------------------------------------------------------------------ recovery

    private void recover() throws IOException {
        Files.deleteIfExists(dir.resolve(CommitRecord.FILE + ".tmp"));
        CommitRecord rec = CommitRecord.read(dir);
        if (rec != null) {
            openBlockFiles(rec.metadata(), false);
            if (rec.redoFile() != null && Files.exists(dir.resolve(rec.redoFile()))) {
                // Crashed after the commit point, before the pages were all applied: finish it.
                EpochStaging redo = RedoLog.read(dir.resolve(rec.redoFile()), rec.redoLength(), rec.epoch(),
                        rec.metadata().pageSize(), rec.redoCrc());
                apply(redo, rec.epoch());
                forceBlockFiles();
                log.info("vm={} epoch={} event=redo-replayed pages={}", vmName, rec.epoch(), redo.records());
            }
            byte[] dev = Files.readAllBytes(dir.resolve(rec.deviceFile()));
            if (dev.length != rec.deviceLength() || crc(dev) != rec.deviceCrc()) {
                throw new IOException("device state " + rec.deviceFile() + " does not match the commit record");
            }
            deviceState = dev;
            committed = rec;
        }
        deleteLeftovers();
    }

    /** Redo logs and device-state files that the commit record does not name belong to no committed epoch. */
    private void deleteLeftovers() throws IOException {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "device-*.bin")) {
            for (Path p : ds) {
                String name = p.getFileName().toString();
                boolean current = committed != null && name.equals(committed.deviceFile());
                if (!current) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private void openBlockFiles(StoreMetadata meta, boolean fresh) throws IOException {
        closeFiles();
        for (int i = 0; i < meta.blocks().size(); i++) {
            Path f = blockFile(i);
            long len = meta.blocks().get(i).usedLength();
            FileChannel ch;
            if (fresh) {
                ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                        StandardOpenOption.READ, StandardOpenOption.WRITE);
                // Sparse: tmpfs allocates only the pages written, and unwritten pages read as zero.
                ch.truncate(0);
                ch.position(len - 1);
                ch.write(ByteBuffer.wrap(new byte[1]));
            } else {
                ch = FileChannel.open(f, StandardOpenOption.READ, StandardOpenOption.WRITE);
                if (ch.size() != len) {
                    ch.close();
                    throw new IOException("memory file " + f + " has " + ch.size() + " bytes, block '"
                            + meta.blocks().get(i).name() + "' has " + len);
                }
            }
            blockFiles.add(ch);
        }
    }

    // ------------------------------------------------------------------------------------------ epoch 0

    /**
     * Starts loading a full initial stream: discards whatever the store held (the committed epoch
     * first), creates empty memory files for {@code blocks}, and returns the sink the pages go to.
     */
    public synchronized InitialLoad beginInitialLoad(String machineType, int pageSize, List<RamBlock> blocks) throws IOException {
        requireNotLive(0, "an initial load");
        try {
            awaitApplied();
            Files.deleteIfExists(dir.resolve(CommitRecord.FILE));
            committed = null;
            deviceState = null;
            deleteLeftovers();
            for (int i = blocks.size(); Files.exists(blockFile(i)); i++) {
                Files.delete(blockFile(i));
            }
            StoreMetadata provisional = new StoreMetadata(machineType, pageSize, blocks, 0, 0, 0);
            openBlockFiles(provisional, true);
            return new InitialLoad(provisional);
        } catch (IOException e) {
            throw new BackupStoreException(vmName, 0, "creating memory files", e);
        }
    }

    /** The initial stream's pages, written in place (see the class comment). */
    public final class InitialLoad implements RamRecordSink {
        private final StoreMetadata meta;
        private final ByteBuffer fillPage;
        private long pages;

        private InitialLoad(StoreMetadata meta) {
            this.meta = meta;
            this.fillPage = ByteBuffer.allocate(meta.pageSize());
        }

        @Override
        public void page(int block, long offset, byte[] data, int off) throws IOException {
            RedoLog.writeFullyAt(blockFiles.get(block), ByteBuffer.wrap(data, off, meta.pageSize()), offset);
            pages++;
        }

        @Override
        public void filledPage(int block, long offset, int fill) throws IOException {
            // The files are fresh and sparse: a zero page is already zero.
            if (fill != 0) {
                Arrays.fill(fillPage.array(), (byte) fill);
                RedoLog.writeFullyAt(blockFiles.get(block), fillPage.clear(), offset);
            }
            pages++;
        }

        public long pages() {
            return pages;
        }

        public StoreMetadata metadata() {
            return meta;
        }
    }

    /**
     * Commits epoch 0: the memory files are complete; writes the device state, the vmdesc and the
     * commit record.
     */
    public synchronized void commitInitial(InitialLoad load, int ramSectionId, int ramInstanceId, int ramVersion,
                                           byte[] deviceStateBytes, String vmdesc) throws IOException {
        requireNotLive(0, "the initial commit");
        StoreMetadata m = load.metadata();
        StoreMetadata meta = new StoreMetadata(m.machineType(), m.pageSize(), m.blocks(), ramSectionId, ramInstanceId, ramVersion);
        try {
            forceBlockFiles();
            Files.writeString(dir.resolve(VMDESC_FILE), vmdesc == null ? "{}" : vmdesc, StandardCharsets.UTF_8);
            String devFile = "device-0.bin";
            writeForced(dir.resolve(devFile), deviceStateBytes);
            CommitRecord rec = new CommitRecord(0, meta, devFile, deviceStateBytes.length, crc(deviceStateBytes), null, 0, 0);
            rec.writeAtomically(dir);
            committed = rec;
            deviceState = deviceStateBytes.clone();
        } catch (IOException e) {
            throw new BackupStoreException(vmName, 0, "committing the initial state", e);
        }
    }

    // ------------------------------------------------------------------------------------------ epochs ≥ 1

    /** What a commit did, for the epoch metrics. */
    public record CommitStats(long epoch, int dataPages, int filledPages, long logNanos, long applyNanos) {
    }

    /**
     * Commits {@code epoch} (must be the committed epoch + 1): the staged pages and the device state
     * become the store's state atomically (see the class comment), and the pages are in the memory
     * files when this returns. On failure before the commit point the store keeps the previous epoch.
     */
    public synchronized CommitStats commit(long epoch, EpochStaging staging, byte[] deviceStateBytes) throws IOException {
        long t0 = System.nanoTime();
        String previousDev = commitDurably(epoch, staging, deviceStateBytes);
        long t1 = System.nanoTime();
        applyCommitted(epoch, staging, previousDev);
        return new CommitStats(epoch, staging.dataPages(), staging.filledPages(), t1 - t0, System.nanoTime() - t1);
    }

    /**
     * Like {@link #commit}, but returns at the commit point: the pages go to the memory files on the
     * store's own thread while the caller acknowledges the epoch and the primary runs again (the
     * redo log makes the epoch durable already; applying it is replayable). {@code staging} must not
     * be touched until the next commit call returns (use two stagings alternately). Everything that
     * reads the memory files, and the next commit, waits for the apply first.
     *
     * @return stats whose {@code applyNanos} is the apply time of the previous epoch
     */
    public synchronized CommitStats commitAndApplyLater(long epoch, EpochStaging staging, byte[] deviceStateBytes)
            throws IOException {
        long t0 = System.nanoTime();
        String previousDev = commitDurably(epoch, staging, deviceStateBytes);
        long t1 = System.nanoTime();
        long previousApply = lastApplyNanos;
        if (applier == null) {
            applier = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "backup-apply-" + vmName);
                t.setDaemon(true);
                return t;
            });
        }
        pendingEpoch = epoch;
        pendingApply = applier.submit(() -> {
            applyCommitted(epoch, staging, previousDev);
            return null;
        });
        return new CommitStats(epoch, staging.dataPages(), staging.filledPages(), t1 - t0, previousApply);
    }

    /** Waits until the last commit's pages are in the memory files; fails if applying them failed. */
    public synchronized void awaitApplied() throws IOException {
        java.util.concurrent.Future<?> f = pendingApply;
        if (f == null) {
            return;
        }
        try {
            f.get();
            pendingApply = null;
        } catch (java.util.concurrent.ExecutionException e) {
            // Sticky: the memory files are behind the committed epoch until open() replays the log.
            Throwable c = e.getCause();
            throw c instanceof BackupStoreException b ? b
                    : new BackupStoreException(vmName, pendingEpoch, "applying committed pages", c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new BackupStoreException(vmName, pendingEpoch, "interrupted while waiting for pages to be applied", e);
        }
    }

    /** Steps up to and including the commit point; returns the previous epoch's device-state file. */
    private String commitDurably(long epoch, EpochStaging staging, byte[] deviceStateBytes) throws IOException {
        requireNotLive(epoch, "a commit");
        awaitApplied();
        StoreMetadata meta = requireCommitted("commit");
        if (epoch != committed.epoch() + 1) {
            throw new BackupStoreException(vmName, epoch, "commit out of order: committed epoch is " + committed.epoch());
        }
        for (int i = 0; i < staging.records(); i++) {
            int b = staging.blockAt(i);
            long off = staging.offsetAt(i);
            if (b < 0 || b >= meta.blocks().size() || off < 0 || off % meta.pageSize() != 0
                    || off > meta.blocks().get(b).usedLength() - meta.pageSize()) {
                throw new BackupStoreException(vmName, epoch, "staged page outside the block list (block " + b
                        + ", offset " + staging.offsetAt(i) + ")");
            }
        }
        String redoFile = epoch % 2 == 0 ? "redo-a.log" : "redo-b.log";
        String devFile = "device-" + epoch + ".bin";
        String previousDev = committed.deviceFile();
        CommitRecord rec;
        try {
            RedoLog.Written redo = RedoLog.write(dir.resolve(redoFile), epoch, staging);
            faults.at("redo-written");
            writeForced(dir.resolve(devFile), deviceStateBytes);
            faults.at("device-written");
            rec = new CommitRecord(epoch, meta, devFile, deviceStateBytes.length, crc(deviceStateBytes), redoFile,
                    redo.length(), redo.crc());
            rec.writeAtomically(dir);
        } catch (IOException | RuntimeException e) {
            reloadAfterFailure();
            throw new BackupStoreException(vmName, epoch, "writing the redo log and commit record", e);
        }
        // Committed. From here a failure leaves the redo log for open() to replay.
        committed = rec;
        deviceState = deviceStateBytes.clone();
        return previousDev;
    }

    /** After the commit point: pages into the memory files, then the previous device state goes. */
    private void applyCommitted(long epoch, EpochStaging staging, String previousDev) throws IOException {
        long t0 = System.nanoTime();
        try {
            faults.at("committed");
            apply(staging, epoch);
            forceBlockFiles();
            String devFile = "device-" + epoch + ".bin";
            if (!previousDev.equals(devFile)) {
                Files.deleteIfExists(dir.resolve(previousDev));
            }
        } catch (IOException | RuntimeException e) {
            throw new BackupStoreException(vmName, epoch, "applying committed pages (open the store again to replay the redo log)", e);
        }
        lastApplyNanos = System.nanoTime() - t0;
    }

    private void reloadAfterFailure() {
        try {
            CommitRecord rec = CommitRecord.read(dir);
            if (rec != null && rec.epoch() == committed.epoch()) {
                deleteLeftovers();
            }
        } catch (IOException | RuntimeException e) {
            log.warn("vm={} event=cleanup-after-failed-commit-failed cause={}", vmName, e.toString());
        }
    }

    /** Writes the staged pages to the memory files; consecutive data pages of one block in one call. */
    private void apply(EpochStaging s, long epoch) throws IOException {
        int ps = s.pageSize();
        long[][] history = pageEpochs;
        if (history != null) {
            for (int r = 0; r < s.records(); r++) {
                history[s.blockAt(r)][(int) (s.offsetAt(r) / ps)] = epoch;
            }
        }
        byte[] arena = s.arena();
        int dataPos = 0;
        ByteBuffer fillPage = ByteBuffer.allocate(ps);
        int applied = 0;
        int half = s.records() / 2;
        for (int i = 0; i < s.records(); ) {
            int block = s.blockAt(i);
            if (s.fillAt(i) == EpochStaging.DATA) {
                int j = i;
                while (j + 1 < s.records() && s.blockAt(j + 1) == block && s.fillAt(j + 1) == EpochStaging.DATA
                        && s.offsetAt(j + 1) == s.offsetAt(j) + ps) {
                    j++;
                }
                int n = j - i + 1;
                RedoLog.writeFullyAt(blockFiles.get(block), ByteBuffer.wrap(arena, dataPos, n * ps), s.offsetAt(i));
                dataPos += n * ps;
                applied += n;
                i = j + 1;
            } else {
                Arrays.fill(fillPage.array(), (byte) s.fillAt(i));
                RedoLog.writeFullyAt(blockFiles.get(block), fillPage.clear(), s.offsetAt(i));
                applied++;
                i++;
            }
            if (applied >= half && half > 0) {
                half = 0;
                faults.at("half-applied");
            }
        }
    }

    /**
     * From now on, remembers for every page the last committed epoch that carried it (8 bytes per
     * page). For tests that hunt a page the primary never sent: a page that differs from the primary's
     * and was last carried long ago was not sent; one carried in the compared epoch was sent.
     */
    public synchronized void trackPageEpochs() throws IOException {
        StoreMetadata meta = requireCommitted("track page epochs");
        long[][] h = new long[meta.blocks().size()][];
        for (int b = 0; b < h.length; b++) {
            h[b] = new long[(int) (meta.blocks().get(b).usedLength() / meta.pageSize())];
            Arrays.fill(h[b], -1);
        }
        pageEpochs = h;
    }

    /** The last committed epoch (applied) that carried the page, -1 if none since tracking began. */
    public synchronized long lastEpochOfPage(int block, long offset) throws IOException {
        awaitApplied();
        long[][] h = pageEpochs;
        if (h == null) {
            throw new IllegalStateException("VM '" + vmName + "': page epochs are not tracked (trackPageEpochs)");
        }
        return h[block][(int) (offset / requireCommitted("read page epochs").pageSize())];
    }

    private void forceBlockFiles() throws IOException {
        for (FileChannel ch : blockFiles) {
            ch.force(false);
        }
    }

    // ------------------------------------------------------------------------------------------ restore

    /**
     * What a restore needs, taken in one step so that no commit can fall between its parts: the
     * committed epoch, the stream to load (ROM blocks + that epoch's device state) and the memory file
     * holding that epoch's main RAM (all pages applied).
     */
    public record RestoreSnapshot(long epoch, byte[] stream, Path memoryFile) {
    }

    /** The committed epoch as one consistent snapshot (seal the session's {@link CommitGate} first). */
    public synchronized RestoreSnapshot restoreSnapshot() throws IOException {
        awaitApplied();
        StoreMetadata m = requireCommitted("restoreSnapshot");
        return new RestoreSnapshot(committed.epoch(), restoreStream(), blockFile(m.mainBlockIndex()));
    }

    /**
     * A restored VM ({@code runningVm}) now maps the memory file: from here on the store refuses every
     * write, and {@link #open} refuses the directory. Written before QEMU starts, so that a crash
     * between the two errs on the side of never writing.
     */
    public synchronized void markLive(String runningVm) throws IOException {
        Files.writeString(dir.resolve(LIVE_FILE), runningVm + "\n", StandardCharsets.UTF_8);
        liveVm = runningVm;
        log.info("vm={} epoch={} event=store-live running_vm={}", vmName, committedEpoch(), runningVm);
    }

    private void requireNotLive(long epoch, String what) throws BackupStoreException {
        if (liveVm != null) {
            throw new BackupStoreException(vmName, epoch, what + " refused: restored VM '" + liveVm + "' runs on this store");
        }
    }

    /**
     * The stream a restoring QEMU loads with {@code migrate-incoming}: header, configuration with the
     * {@code x-ignore-shared} capability, the RAM section listing every block with its guest address
     * (x-ignore-shared requires them) and the pages of every block except the main one (which the
     * restoring QEMU maps from {@link #memoryFile()} with {@code share=on}), the committed device
     * state, and a vmdesc. The restoring QEMU must have the identical device model and the
     * {@code x-ignore-shared} capability on.
     *
     * <p>After a restore the guest writes to the memory file: the store then no longer holds an epoch
     * of the old primary (the restored VM is the new primary).
     */
    public synchronized byte[] restoreStream() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512 * 1024);
        writeRestoreStream(out);
        return out.toByteArray();
    }

    public synchronized void writeRestoreStream(OutputStream sink) throws IOException {
        writeStream(sink, true, "restoreStream");
    }

    /**
     * Like {@link #writeRestoreStream} but self-contained: every block's pages, the main RAM too, and no
     * {@code x-ignore-shared}. For a restoring QEMU whose RAM is its own rather than the store's file, e.g. a
     * libvirt domain (libvirt chooses its memory backend); costs reading and loading the whole RAM.
     */
    public synchronized void writeSelfContainedRestoreStream(OutputStream sink) throws IOException {
        writeStream(sink, false, "selfContainedRestoreStream");
    }

    private void writeStream(OutputStream sink, boolean ignoreShared, String what) throws IOException {
        awaitApplied();
        StoreMetadata m = requireCommitted(what);
        int ps = m.pageSize();
        MigrationStreamWriter w = new MigrationStreamWriter(sink, ps);
        w.header();
        w.configuration(m.machineType(), ignoreShared ? List.of("x-ignore-shared") : List.of());
        w.sectionStart(StreamTags.SECTION_START, m.ramSectionId(), StreamTags.RAM_IDSTR, m.ramInstanceId(), m.ramVersion());
        // The main block's address must equal the restoring QEMU's (QEMU checks it for ignored
        // blocks): a memory backend's region sits at 0 (its aliases map it into the guest).
        w.blockList(m.blocks(), ignoreShared);
        byte[] page = new byte[ps];
        int main = m.mainBlockIndex();
        for (int b = 0; b < m.blocks().size(); b++) {
            if (ignoreShared && b == main) {
                continue;
            }
            // Opened here rather than using the commit channels: a restore may run after the
            // endpoint that owned this store closed it (failover closes the endpoint first).
            try (FileChannel ch = FileChannel.open(blockFile(b), StandardOpenOption.READ)) {
                for (long off = 0; off < m.blocks().get(b).usedLength(); off += ps) {
                    ByteBuffer bb = ByteBuffer.wrap(page);
                    while (bb.hasRemaining()) {
                        if (ch.read(bb, off + bb.position()) < 0) {
                            throw new BackupStoreException(vmName, committed.epoch(), "memory file of block " + b + " is short");
                        }
                    }
                    if (isZero(page)) {
                        w.filledPage(m.blocks(), b, off, 0);
                    } else {
                        w.page(m.blocks(), b, off, page, 0);
                    }
                }
            }
        }
        w.endOfSection();
        w.footer(m.ramSectionId());
        w.raw(deviceState);       // FULL sections + EOF
        Path vmdesc = dir.resolve(VMDESC_FILE);
        w.vmDescription(Files.exists(vmdesc) ? Files.readString(vmdesc) : "{}");
        w.flush();
    }

    private static boolean isZero(byte[] b) {
        for (byte x : b) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }

    // ------------------------------------------------------------------------------------------ helpers

    private static void writeForced(Path f, byte[] data) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            RedoLog.writeFully(ch, ByteBuffer.wrap(data));
            ch.force(false);
        }
    }

    static long crc(byte[] b) {
        CRC32C c = new CRC32C();
        c.update(b);
        return c.getValue();
    }

    private void closeFiles() {
        for (FileChannel ch : blockFiles) {
            try {
                ch.close();
            } catch (IOException e) {
                log.debug("close: {}", e.toString());
            }
        }
        blockFiles.clear();
    }

    @Override
    public synchronized void close() {
        try {
            awaitApplied();
        } catch (IOException e) {
            log.warn("vm={} event=apply-failed-at-close cause={}", vmName, e.getMessage());
        }
        if (applier != null) {
            applier.shutdown();
        }
        closeFiles();
    }

    /** Deletes the store directory and everything in it (after close). */
    public static void deleteAll(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}

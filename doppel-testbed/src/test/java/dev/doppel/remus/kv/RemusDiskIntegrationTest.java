package dev.doppel.remus.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.nbd.EpochDisk;
import dev.doppel.remus.primary.ProtectionException;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.primary.ProtectionState;
import dev.doppel.remus.testbed.KvClient;
import dev.doppel.remus.testbed.ProtectedKvService;
import dev.doppel.remus.testbed.RemusTestbed;
import dev.doppel.remus.testing.PatchedQemu;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Disk replication under Remus semantics on three hosts, the guest's key-value server writing
 * (O_DIRECT + fdatasync) on every PUT: the backup image equals the primary's disk at a committed
 * epoch, and a backup that dies or freezes during heavy writes never freezes the guest beyond the
 * detection timeout; a frozen backup is left stale and refuses to fail over, and protection
 * resumes with a new backup.
 */
@Tag("integration")
@Timeout(600)
class RemusDiskIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(RemusDiskIntegrationTest.class);
    private static final Duration INTERVAL = Duration.ofMillis(50);
    private static final Duration TIMEOUT = Duration.ofMillis(300);
    /** A TCG guest's VM stop and QEMU's COLO exit take tens of ms on this 2-core host. */
    private static final long FREEZE_SLACK_MS = 250;

    @TempDir Path tmp;

    /**
     * QEMU's NBD client connects inside blockdev-add, in its main loop: an export whose SYNs are dropped
     * stalled the whole QEMU (guest and monitor) for the kernel's connect timeout, about two minutes.
     * Protection must refuse such an export quickly and leave the guest running and its monitor answering.
     */
    @Test
    void anExportThatDoesNotAnswerIsRefusedQuicklyAndNeverStallsTheGuest() throws Exception {
        try (RemusTestbed bed = RemusTestbed.create("n" + ProcessHandle.current().pid() % 10000, 121);
             ProtectedKvService kv = ProtectedKvService.boot(bed, TestVms.uniqueName("kvn"), tmp.resolve("n"), PatchedQemu.launcher(),
                     TestVms.guest())) {
            kv.startBackup(TestVms.launcher(), Duration.ofMillis(500));
            bed.cutPort(bed.primary(), bed.backup(), kv.endpoint().disks().ports().get(ProtectedKvService.DISK));
            long t0 = System.nanoTime();
            ProtectionException refused = org.junit.jupiter.api.Assertions.assertThrows(ProtectionException.class,
                    () -> kv.protect(new ProtectionOptions(INTERVAL, Duration.ofSeconds(1), Duration.ofSeconds(120), Duration.ZERO)));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(refused.getMessage().contains("does not answer"), refused.getMessage());
            assertTrue(ms < 10_000, "refused after " + ms + " ms");
            long q0 = System.nanoTime();
            String status = kv.primary().qmp().execute("query-status", null, Duration.ofSeconds(2)).path("status").asText();
            long qms = (System.nanoTime() - q0) / 1_000_000;
            assertEquals("running", status);
            assertTrue(qms < 1000, "the monitor answered after " + qms + " ms");
            log.info("an export that drops SYNs: protection refused after {} ms; the monitor answered in {} ms", ms, qms);
        }
    }

    @Test
    void backupImageEqualsThePrimaryDiskAtACommittedEpoch() throws Exception {
        try (RemusTestbed bed = RemusTestbed.create("d" + ProcessHandle.current().pid() % 10000, 120);
             ProtectedKvService kv = ProtectedKvService.boot(bed, TestVms.uniqueName("kvd"), tmp, PatchedQemu.launcher(), TestVms.guest())) {
            kv.startBackup(TestVms.launcher(), Duration.ofMillis(500));
            // Comparing two images takes longer than a checkpoint: allow the pause.
            kv.protect(new ProtectionOptions(INTERVAL, Duration.ofSeconds(10), Duration.ofSeconds(120), Duration.ZERO));
            CompletableFuture<String[]> digests = new CompletableFuture<>();
            AtomicLong compareAt = new AtomicLong(Long.MAX_VALUE);
            Path primaryImage = kv.spec().disks().get(0).image();
            Path backupImage = kv.endpoint().disks().images().get(ProtectedKvService.DISK);
            kv.onCommit(epoch -> {
                // The primary is stopped (its VM stop flushed every write and qcow2's metadata) and
                // waits for VMSTATE_LOADED; the backup has just applied this epoch.
                if (epoch >= compareAt.get() && !digests.isDone()) {
                    try {
                        digests.complete(new String[] {guestVisibleDigest(primaryImage, tmp.resolve("primary.raw")),
                                digest(backupImage), Long.toString(epoch)});
                    } catch (Exception e) {
                        digests.completeExceptionally(e);
                    }
                }
            });
            try (KvClient client = kv.client("d", 32)) {
                client.connect(Duration.ofSeconds(30));
                client.startPuts();
                assertTrue(client.awaitAcks(300, Duration.ofSeconds(60)) >= 300, "KV server too slow: " + client.connectionFailure());
                compareAt.set(kv.protector().stats().checkpoints() + 5);
                String[] d = digests.get(60, TimeUnit.SECONDS);
                log.info("epoch {}: primary disk sha256 {} backup image sha256 {} ({} PUTs acknowledged)", d[2], d[0], d[1],
                        client.acks().size());
                assertEquals(d[0], d[1], "backup image differs from the primary's disk at committed epoch " + d[2]);
            }
        }
    }

    @Test
    void killedBackupDuringWritesLeavesTheGuestRunningAndProtectionReturns() throws Exception {
        lossDuringWrites(false);
    }

    @Test
    void frozenBackupDiskIsYankedAndTheStaleBackupRefusesToFailOver() throws Exception {
        lossDuringWrites(true);
    }

    private void lossDuringWrites(boolean freeze) throws Exception {
        try (RemusTestbed bed = RemusTestbed.create((freeze ? "f" : "x") + ProcessHandle.current().pid() % 10000, freeze ? 121 : 122);
             ProtectedKvService kv = ProtectedKvService.boot(bed, TestVms.uniqueName("kvl"), tmp, PatchedQemu.launcher(), TestVms.guest())) {
            kv.startBackup(TestVms.launcher(), Duration.ofMillis(500));
            ProtectionOptions options = new ProtectionOptions(INTERVAL, TIMEOUT, Duration.ofSeconds(120), Duration.ofSeconds(1));
            kv.protect(options);
            PauseWatch pauses = new PauseWatch();
            kv.primary().qmp().addEventListener(pauses);
            try (KvClient client = kv.client("l", 32)) {
                client.connect(Duration.ofSeconds(30));
                client.startPuts();
                assertTrue(client.awaitAcks(200, Duration.ofSeconds(60)) >= 200, "KV server too slow: " + client.connectionFailure());
                BackupGuard oldGuard = kv.guard();
                EpochDisk backupDisk = kv.endpoint().disks().disks().get(0).epochs();
                long lostBefore = kv.protector().status().lostBackups();
                Thread freezer = null;
                CompletableFuture<Void> thaw = new CompletableFuture<>();
                if (freeze) {
                    // Holding the disk's lock stops every NBD request and the session's commit: the
                    // backup is frozen (its kernel still accepts bytes), like a SIGSTOPped process.
                    freezer = new Thread(() -> {
                        synchronized (backupDisk) {
                            thaw.join();
                        }
                    }, "freeze-backup");
                    freezer.start();
                } else {
                    kv.killBackup();
                }
                long t0 = System.nanoTime();
                while (kv.protector().status().lostBackups() == lostBefore && System.nanoTime() - t0 < 10_000_000_000L) {
                    Thread.sleep(10);
                }
                assertTrue(kv.protector().status().lostBackups() > lostBefore, "the primary did not notice the lost backup");
                int acksAtLoss = client.acks().size();
                assertTrue(client.awaitAcks(acksAtLoss + 50, Duration.ofSeconds(20)) >= acksAtLoss + 50,
                        "the guest stopped answering after its backup was lost: " + client.connectionFailure());
                log.info("backup {}: detected in {} ms, longest guest pause {} ms (timeout {} ms)", freeze ? "frozen" : "killed",
                        (System.nanoTime() - t0) / 1_000_000, pauses.maxMs(), TIMEOUT.toMillis());
                assertTrue(pauses.maxMs() <= TIMEOUT.toMillis() + INTERVAL.toMillis() + FREEZE_SLACK_MS,
                        "the guest was frozen " + pauses.maxMs() + " ms");
                if (freeze) {
                    thaw.complete(null);
                    freezer.join(5000);
                    // The primary told it to stand down: even "primary down" now must not resume it.
                    long deadline = System.nanoTime() + 5_000_000_000L;
                    while (oldGuard.state() != BackupGuard.State.STALE && System.nanoTime() < deadline) {
                        Thread.sleep(10);
                    }
                    assertEquals(BackupGuard.State.STALE, oldGuard.state());
                    oldGuard.onControl(new dev.doppel.remus.control.ControlMessage(kv.primary().name(),
                            dev.doppel.remus.control.ControlMessage.PRIMARY_DOWN, 0, "test"));
                    Thread.sleep(300);
                    assertFalse(oldGuard.failover().isDone() && !oldGuard.failover().isCompletedExceptionally(),
                            "a stale backup failed over");
                    kv.killBackup();   // the operator retires the stale backup
                }
                // A backup comes back: the primary re-synchronises (disk and memory) on its own.
                kv.startBackup(TestVms.launcher(), Duration.ofMillis(500));
                long deadline = System.nanoTime() + 60_000_000_000L;
                while (!(kv.protector().state() == ProtectionState.PROTECTED && kv.endpoint().store().committedEpoch() >= 0)
                        && System.nanoTime() < deadline) {
                    Thread.sleep(50);
                }
                assertEquals(ProtectionState.PROTECTED, kv.protector().state(), "protection did not come back");
                long epoch = kv.endpoint().store().committedEpoch();
                Thread.sleep(1000);
                assertTrue(kv.endpoint().store().committedEpoch() > epoch + 5, "the new backup does not commit epochs");
                assertNotNull(kv.endpoint().disks());
                assertEquals(null, kv.endpoint().staleReason());
            }
        }
    }

    /** Longest STOP→RESUME of the guest, from QMP events. */
    static final class PauseWatch implements Consumer<QmpEvent> {
        private long stoppedAt;
        private long maxNanos;

        @Override
        public synchronized void accept(QmpEvent e) {
            if (e.name().equals("STOP")) {
                stoppedAt = System.nanoTime();
            } else if (e.name().equals("RESUME") && stoppedAt != 0) {
                maxNanos = Math.max(maxNanos, System.nanoTime() - stoppedAt);
                stoppedAt = 0;
            }
        }

        synchronized long maxMs() {
            long open = stoppedAt == 0 ? 0 : System.nanoTime() - stoppedAt;
            return Math.max(maxNanos, open) / 1_000_000;
        }
    }

    /** The guest-visible content of a (qcow2) image, read while QEMU holds it (-U: no lock). */
    static String guestVisibleDigest(Path image, Path scratch) throws Exception {
        Files.deleteIfExists(scratch);
        HostCommand.run("qemu-img", "convert", "-U", "-O", "raw", image.toString(), scratch.toString());
        try {
            return digest(scratch);
        } finally {
            Files.deleteIfExists(scratch);
        }
    }

    static String digest(Path file) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 20];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        } catch (IOException e) {
            throw new IOException("cannot read " + file, e);
        }
        return HexFormat.of().formatHex(md.digest());
    }
}

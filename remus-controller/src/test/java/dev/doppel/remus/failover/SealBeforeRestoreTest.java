package dev.doppel.remus.failover;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.control.ControlMessage;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.PrimaryFencing;
import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.StoreDigest;
import dev.doppel.remus.testing.TempStores;
import dev.doppel.vm.VmSpec;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;

/**
 * The failover race of the failover-loss issue, forced: the recorded COLO session is fed to a real
 * backup endpoint over TCP up to the last byte of its last checkpoint; the primary's lease is given
 * back (its QEMU "died") and "primary down" reaches the guard; while the guard is restoring, the last
 * byte arrives, so the session could commit that checkpoint into the store the restored VM runs on.
 * The commit must be refused, and the restore must have read exactly the epoch before it — memory,
 * device state and epoch number from one snapshot — and the store must be unchanged afterwards.
 * (Before the session was sealed, the guard restored while the session could still commit.)
 */
class SealBeforeRestoreTest {
    private static final String VM = "sealed-vm";

    @AutoClose
    TempStores stores = new TempStores();

    @Test
    void aCheckpointThatArrivesDuringTheRestoreIsRefusedAndTheSnapshotIsTheEpochBefore() throws Exception {
        RecordedSession rec = RecordedSession.coloPrimaryToBackup();
        RecordedSession.Checkpoint last = rec.checkpoints.get(rec.checkpoints.size() - 1);
        long lastEpoch = last.epoch();
        Path root = stores.newDir();
        AtomicLong committed = new AtomicLong(-1);
        try (EmbeddedCoordinator zk = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), root.resolve("zk"),
                HostSockets.LOCAL, PeerTls.INSECURE);
             Coordinator primarySide = Coordinator.connect(zk.connectString(), Coordinator.DEFAULT_SESSION, HostSockets.LOCAL,
                     Duration.ofSeconds(10), PeerTls.INSECURE);
             Coordinator backupSide = Coordinator.connect(zk.connectString(), Coordinator.DEFAULT_SESSION, HostSockets.LOCAL,
                     Duration.ofSeconds(10), PeerTls.INSECURE);
             BackupServer server = new BackupServer(root.resolve("stores"))) {
            BackupServer.Endpoint ep = server.listen(ProtectedVm.named(VM).withMachine(rec.machineType, 128L << 20),
                    new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), new EpochListener() {
                        @Override
                        public void epochCommitted(EpochMetrics m) {
                            committed.set(m.epoch());
                        }
                    });
            AtomicReference<BackupStore.RestoreSnapshot> restored = new AtomicReference<>();
            AtomicReference<String> digestAtRestore = new AtomicReference<>();
            CompletableFuture<Void> lateByteSent = new CompletableFuture<>();
            try (Socket primary = new Socket(InetAddress.getLoopbackAddress(), ep.port())) {
                OutputStream out = primary.getOutputStream();
                InputStream answers = primary.getInputStream();
                CompletableFuture.runAsync(() -> {
                    try {
                        answers.transferTo(OutputStream.nullOutputStream());
                    } catch (java.io.IOException e) {
                        // the endpoint closes the connection at failover
                    }
                });
                // Everything but the last byte of the last checkpoint: epoch lastEpoch-1 commits.
                out.write(rec.bytes, 0, (int) last.end() - 1);
                out.flush();
                awaitTrue(() -> committed.get() == lastEpoch - 1);

                // The primary owns the VM and names this store; then its QEMU dies and it gives the lease back.
                PrimaryFencing fencing = PrimaryFencing.claim(primarySide, VM, "primary@test", ProcessHandle.current(),
                        Duration.ofSeconds(5));
                BackupGuard guard = new BackupGuard(VmSpec.builder(VM).build(), ep, Duration.ofMillis(500),
                        BackupGuard.Fencing.of(backupSide, "backup@test"), (spec, store, snapshot) -> {
                            restored.set(snapshot);
                            digestAtRestore.set(StoreDigest.ofFile(snapshot.memoryFile()));
                            // The dying primary's last byte arrives while the VM is being restored.
                            out.write(rec.bytes, (int) last.end() - 1, 1);
                            out.flush();
                            lateByteSent.complete(null);
                            awaitTrue(() -> ep.lateCommitsRefused() == 1);
                            return new Restore.Restored(null, snapshot.epoch(), 1.0);
                        });
                fencing.protectWith(guard.storeId());
                fencing.close();
                guard.onControl(new ControlMessage(VM, ControlMessage.PRIMARY_DOWN, lastEpoch, "test: QEMU exited"));

                BackupGuard.Failover f = guard.failover().get(30, TimeUnit.SECONDS);
                f.lease().close();
                assertTrue(lateByteSent.isDone());
                assertEquals(lastEpoch - 1, f.epoch(), "restored epoch");
                assertEquals(lastEpoch - 1, restored.get().epoch());
                assertEquals(1, ep.lateCommitsRefused(), "the late checkpoint's commit was refused");
                assertEquals(lastEpoch - 1, committed.get(), "no epoch committed after the seal");
                // The snapshot is the epoch before: its device state, and its memory unchanged since.
                RecordedSession.Checkpoint before = rec.checkpoints.get(rec.checkpoints.size() - 2);
                byte[] stream = restored.get().stream();
                assertTrue(indexOf(stream, before.deviceState()) >= 0, "the restore stream carries epoch " + (lastEpoch - 1)
                        + "'s device state");
                assertEquals(-1, indexOf(stream, last.deviceState()), "the restore stream carries the refused epoch's device state");
                assertEquals(digestAtRestore.get(), StoreDigest.ofFile(restored.get().memoryFile()),
                        "the memory file changed after the restore read it");
                assertTrue(Files.exists(restored.get().memoryFile().getParent().resolve(BackupStore.LIVE_FILE)));
                assertEquals(BackupGuard.State.FAILED_OVER, guard.state());
            }
        }
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static void awaitTrue(java.util.function.BooleanSupplier c) {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("condition not met within 15 s");
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }
}

package dev.doppel.remus.primary;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.colo.ColoMessage;
import dev.doppel.remus.colo.ColoSecondarySession;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.RecordedStreams;
import dev.doppel.remus.testing.TempStores;
import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The replication relay between a primary QEMU and the backup, replayed with the recorded COLO
 * session (QEMU 10.0.2 primary → Doppel backup): the stream reaches a real backup session byte for
 * byte (it commits every recorded epoch), its answers come back unchanged, and every commit
 * message (CHECKPOINT_READY, VMSTATE_LOADED) reaches "QEMU" only after the output was released.
 * The first test runs the relay → backup link over mutual TLS, as production does (the end of the
 * stream is a TLS half-close there).
 */
class CheckpointRelayTest {
    @TempDir Path tmp;
    @AutoClose TempStores stores = new TempStores();

    @Test
    void releasesOutputBeforeEachCommitReachesThePrimaryAndRelaysBothDirectionsUnchanged() throws Exception {
        RecordedSession rec = RecordedSession.coloPrimaryToBackup();
        BackupStore store = stores.fresh("relay-vm");
        CompletableFuture<Throwable> backupDone = new CompletableFuture<>();
        Path pki = tmp.resolve("pki");
        dev.doppel.tls.Pki.init(pki, "relay test CA");
        dev.doppel.tls.PeerTls backupTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(pki, "backup"));
        dev.doppel.tls.PeerTls primaryTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(pki, "primary"));
        try (ServerSocket backup = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            Thread b = new Thread(() -> {
                try (Socket s = backupTls.server(backup.accept(), "test replication")) {
                    new ColoSecondarySession(ProtectedVm.named("relay-vm").withMachine("pc-i440fx-10.0", 128L << 20), store,
                            EpochListener.NONE).run(s);
                    backupDone.complete(null);
                } catch (Throwable e) {
                    backupDone.complete(e);
                }
            });
            b.start();
            AtomicInteger released = new AtomicInteger();
            try (CheckpointRelay relay = CheckpointRelay.start("relay-vm", tmp.resolve("relay.sock"),
                    new InetSocketAddress(backup.getInetAddress(), backup.getLocalPort()), HostSockets.LOCAL, primaryTls,
                    released::incrementAndGet);
                 SocketChannel qemu = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                qemu.connect(UnixDomainSocketAddress.of(tmp.resolve("relay.sock")));
                // "QEMU" writes the recorded stream and reads the answers; for each commit message it
                // notes how many releases had happened when the message arrived.
                List<Integer> releasedAtCommit = new ArrayList<>();
                ByteArrayOutputStream answers = new ByteArrayOutputStream();
                // Channel reads and writes, not Channels streams: those share the channel's blocking
                // lock, so a blocked reader would stop the writer.
                Thread reader = new Thread(() -> {
                    try {
                        ByteBuffer four = ByteBuffer.allocate(4);
                        while (true) {
                            four.clear();
                            while (four.hasRemaining()) {
                                if (qemu.read(four) < 0) {
                                    return;
                                }
                            }
                            int m = four.getInt(0);
                            if (m == ColoMessage.CHECKPOINT_READY.code() || m == ColoMessage.VMSTATE_LOADED.code()) {
                                releasedAtCommit.add(released.get());
                            }
                            answers.write(new byte[] {(byte) (m >>> 24), (byte) (m >>> 16), (byte) (m >>> 8), (byte) m});
                        }
                    } catch (java.io.IOException e) {
                        // the backup closed after the last checkpoint
                    }
                });
                reader.start();
                ByteBuffer stream = ByteBuffer.wrap(rec.bytes);
                while (stream.hasRemaining()) {
                    qemu.write(stream);
                }
                qemu.shutdownOutput();
                assertEquals(null, backupDone.get(30, TimeUnit.SECONDS), "the backup session failed on the relayed stream");
                reader.join(10_000);
                assertEquals(rec.checkpoints.size(), store.committedEpoch(), "every recorded epoch committed");
                assertArrayEquals(RecordedStreams.load(RecordedStreams.COLO_B2P), answers.toByteArray(),
                        "the backup's answers reached the primary unchanged");
                assertEquals(rec.checkpoints.size() + 1, releasedAtCommit.size());
                for (int k = 0; k < releasedAtCommit.size(); k++) {
                    assertTrue(releasedAtCommit.get(k) >= k + 1, "commit message " + k + " reached the primary before its output"
                            + " was released (" + releasedAtCommit.get(k) + " releases)");
                }
                assertEquals(rec.checkpoints.size() + 1, relay.committedEpochs());
            }
        }
    }

    /**
     * A release that fails may have left a filter off: the commit message must then never reach QEMU
     * (its guest would run the next epoch with unheld output). The relay ends instead, and QEMU sees
     * its migration connection close.
     */
    @Test
    void aFailedReleaseIsNeverConfirmedToThePrimary() throws Exception {
        RecordedSession rec = RecordedSession.coloPrimaryToBackup();
        BackupStore store = stores.fresh("relay-fail");
        try (ServerSocket backup = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            Thread b = new Thread(() -> {
                try (Socket s = backup.accept()) {
                    new ColoSecondarySession(ProtectedVm.named("relay-fail").withMachine("pc-i440fx-10.0", 128L << 20), store,
                            EpochListener.NONE).run(s);
                } catch (Throwable expected) {
                    // the relay ends the session after the failed release
                }
            });
            b.setDaemon(true);
            b.start();
            AtomicInteger releases = new AtomicInteger();
            Runnable failOnThird = () -> {
                if (releases.incrementAndGet() == 3) {
                    throw new IllegalStateException("qom-set timed out (simulated)");
                }
            };
            try (CheckpointRelay relay = CheckpointRelay.start("relay-fail", tmp.resolve("relay-fail.sock"),
                    new InetSocketAddress(backup.getInetAddress(), backup.getLocalPort()), HostSockets.LOCAL,
                    dev.doppel.tls.PeerTls.INSECURE, failOnThird);
                 SocketChannel qemu = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                qemu.connect(UnixDomainSocketAddress.of(tmp.resolve("relay-fail.sock")));
                Thread writer = new Thread(() -> {
                    try {
                        ByteBuffer stream = ByteBuffer.wrap(rec.bytes);
                        while (stream.hasRemaining()) {
                            qemu.write(stream);
                        }
                    } catch (java.io.IOException expected) {
                        // the relay closed
                    }
                });
                writer.setDaemon(true);
                writer.start();
                int commitsSeen = 0;
                ByteBuffer four = ByteBuffer.allocate(4);
                boolean closed = false;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (!closed && System.nanoTime() < deadline) {
                    four.clear();
                    while (four.hasRemaining()) {
                        if (qemu.read(four) < 0) {
                            closed = true;
                            break;
                        }
                    }
                    if (!closed) {
                        int m = four.getInt(0);
                        if (m == ColoMessage.CHECKPOINT_READY.code() || m == ColoMessage.VMSTATE_LOADED.code()) {
                            commitsSeen++;
                        }
                    }
                }
                assertTrue(closed, "the relay must end after a failed release");
                assertEquals(2, commitsSeen, "only the commits whose release succeeded reach the primary");
                assertEquals(3, releases.get());
                assertEquals(2, relay.committedEpochs());
            }
        }
    }
}

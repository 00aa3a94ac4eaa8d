package dev.doppel.remus.backup;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.testing.RecordedStreams;
import dev.doppel.remus.testing.TempStores;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;

/** Two protected VMs at once over real TCP, each on its own port, fed with the recorded primary bytes. */
class BackupServerTest {
    @AutoClose
    TempStores stores = new TempStores();

    @Test
    void twoVmsAreServedConcurrentlyAndASecondPrimaryForOneVmIsRefused() throws Exception {
        byte[] p2b = RecordedStreams.load(RecordedStreams.COLO_P2B);
        byte[] b2p = RecordedStreams.load(RecordedStreams.COLO_B2P);
        try (BackupServer server = new BackupServer(stores.newDir())) {
            InetSocketAddress loopback = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
            BackupServer.Endpoint a = server.listen(ProtectedVm.named("vm-a"), loopback, EpochListener.NONE);
            BackupServer.Endpoint b = server.listen(ProtectedVm.named("vm-b"), loopback, EpochListener.NONE);
            assertNotEquals(a.port(), b.port());

            try (Socket sa = new Socket(InetAddress.getLoopbackAddress(), a.port());
                 Socket sb = new Socket(InetAddress.getLoopbackAddress(), b.port())) {
                sa.setSoTimeout(10_000);
                sb.setSoTimeout(10_000);
                awaitTrue(a::sessionActive);
                // A second "primary" for vm-a while its session runs: closed at once, session unharmed.
                try (Socket intruder = new Socket(InetAddress.getLoopbackAddress(), a.port())) {
                    intruder.setSoTimeout(5_000);
                    assertEquals(-1, intruder.getInputStream().read());
                }
                CompletableFuture<byte[]> answersA = primary(sa, p2b, b2p.length);
                CompletableFuture<byte[]> answersB = primary(sb, p2b, b2p.length);
                assertArrayEquals(b2p, answersA.get(30, TimeUnit.SECONDS));
                assertArrayEquals(b2p, answersB.get(30, TimeUnit.SECONDS));
            }
            awaitTrue(() -> !a.sessionActive() && !b.sessionActive());
            assertNull(a.lastFailure());
            assertNull(b.lastFailure());
            assertEquals(3, a.store().committedEpoch());
            assertEquals(3, b.store().committedEpoch());
            // Each protection gets its own store generation under the VM's directory.
            assertTrue(a.store().directory().endsWith(java.nio.file.Path.of("vm-a", "1"))
                    && b.store().directory().endsWith(java.nio.file.Path.of("vm-b", "1")), a.store().directory().toString());
        }
    }

    /**
     * A replication port with mutual TLS: a peer without a certificate sends the whole recorded stream
     * in plain text and is disconnected without a byte reaching the session (the store holds no epoch,
     * and the slot stays free); the real primary over TLS then commits every recorded epoch.
     */
    @Test
    void withTlsAPlainPeerChangesNothingAndTheRealPrimaryCommits(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        byte[] p2b = RecordedStreams.load(RecordedStreams.COLO_P2B);
        byte[] b2p = RecordedStreams.load(RecordedStreams.COLO_B2P);
        dev.doppel.tls.Pki.init(tmp.resolve("pki"), "ours");
        dev.doppel.tls.PeerTls backupTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(tmp.resolve("pki"), "127.0.0.1"));
        dev.doppel.tls.PeerTls primaryTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(tmp.resolve("pki"), "primary"));
        try (BackupServer server = new BackupServer(stores.newDir(), dev.doppel.hostnet.HostSockets.LOCAL, backupTls)) {
            BackupServer.Endpoint ep = server.listen(ProtectedVm.named("vm-tls"),
                    new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), EpochListener.NONE);
            try (Socket rogue = new Socket(InetAddress.getLoopbackAddress(), ep.port())) {
                rogue.setSoTimeout(15_000);
                CompletableFuture.runAsync(() -> {
                    try {
                        rogue.getOutputStream().write(p2b);
                    } catch (java.io.IOException expected) {
                        // disconnected
                    }
                });
                byte[] answer = rogue.getInputStream().readAllBytes();   // until the server disconnects
                assertTrue(answer.length == 0 || answer[0] == 0x15, "the plain peer gets at most a TLS alert (no COLO answer)");
            }
            assertEquals(-1, ep.store().committedEpoch(), "nothing of the plain peer's stream was committed");
            assertTrue(!ep.sessionActive(), "the plain peer never held the session");
            Socket plain = new Socket(InetAddress.getLoopbackAddress(), ep.port());
            plain.setSoTimeout(10_000);
            try (Socket s = primaryTls.client(plain, "test primary")) {
                assertArrayEquals(b2p, primary(s, p2b, b2p.length).get(30, TimeUnit.SECONDS));
            }
            awaitTrue(() -> !ep.sessionActive());
            assertEquals(3, ep.store().committedEpoch());
        }
    }

    /** Plays the recorded primary: writes its bytes, reads the backup's answers, then closes its side. */
    private static CompletableFuture<byte[]> primary(Socket s, byte[] p2b, int answerBytes) {
        CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
            try {
                s.getOutputStream().write(p2b);
                s.getOutputStream().flush();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        return CompletableFuture.supplyAsync(() -> {
            try {
                InputStream in = s.getInputStream();
                byte[] got = in.readNBytes(answerBytes);
                writer.join();
                s.shutdownOutput();      // the primary goes away between checkpoints: a normal end
                return got;
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    private static void awaitTrue(java.util.function.BooleanSupplier c) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("condition not met within 10 s");
            }
            Thread.sleep(10);
        }
    }
}

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

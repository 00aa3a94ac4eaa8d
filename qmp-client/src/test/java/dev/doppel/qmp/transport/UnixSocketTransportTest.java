package dev.doppel.qmp.transport;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("unit")
@Timeout(10)
class UnixSocketTransportTest {

    @TempDir
    Path dir;

    @Test
    void missingSocketIsNoSuchFile() {
        NoSuchFileException e = assertThrows(NoSuchFileException.class,
                () -> UnixSocketTransport.connect(dir.resolve("absent.sock")));
        assertTrue(e.getMessage().contains("absent.sock"), e.getMessage());
    }

    @Test
    void socketWithoutListenerIsConnectionRefused() throws Exception {
        Path p = dir.resolve("stale.sock");
        ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        s.bind(UnixDomainSocketAddress.of(p));
        s.close(); // the file stays, nobody listens: what a crashed QEMU leaves behind
        assertThrows(ConnectException.class, () -> UnixSocketTransport.connect(p));
    }

    @Test
    void overlongPathIsRejectedUpFront() {
        Path p = dir.resolve("x".repeat(120));
        assertThrows(IllegalArgumentException.class, () -> UnixSocketTransport.connect(p));
    }

    @Test
    void sendAndReadOverSocketPair() throws Exception {
        int[] sv = UnixSocketTransport.socketPair();
        UnixSocketTransport a = UnixSocketTransport.adopt(sv[0], "pair:a");
        UnixSocketTransport b = UnixSocketTransport.adopt(sv[1], "pair:b");
        try {
            byte[] msg = "{\"execute\": \"query-status\"}\n".getBytes(StandardCharsets.US_ASCII);
            a.send(msg, null);
            byte[] buf = new byte[100];
            int n = b.read(buf);
            assertEquals(msg.length, n);
            byte[] got = new byte[n];
            System.arraycopy(buf, 0, got, 0, n);
            assertArrayEquals(msg, got);
            // a descriptor rides along without disturbing the bytes
            a.send(msg, new int[]{sv[0]});
            assertEquals(msg.length, b.read(buf));
            a.close();
            assertEquals(-1, b.read(buf), "EOF after peer close");
        } finally {
            a.close();
            b.close();
        }
    }

    @Test
    void closeUnblocksABlockedReader() throws Exception {
        int[] sv = UnixSocketTransport.socketPair();
        UnixSocketTransport a = UnixSocketTransport.adopt(sv[0], "pair:a");
        UnixSocketTransport b = UnixSocketTransport.adopt(sv[1], "pair:b");
        try {
            CompletableFuture<Integer> read = CompletableFuture.supplyAsync(() -> {
                try {
                    return a.read(new byte[10]);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            Thread.sleep(100);
            long t0 = System.nanoTime();
            a.close();
            assertEquals(-1, read.get(2, TimeUnit.SECONDS));
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(1));
            assertThrows(java.io.IOException.class, () -> a.send(new byte[]{1}, null));
        } finally {
            b.close();
        }
    }
}

package dev.doppel.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutual TLS between two hosts of one CA, over real loopback sockets: the handshake succeeds and bytes
 * flow; a peer with a certificate from another CA, or with none (plain TCP), is refused by the server
 * before it reads anything. Also checked with a stock client: openssl s_client with the issued PEM files.
 */
class PeerTlsTest {
    @TempDir Path tmp;

    @Test
    void hostsOfOneCaTalkAndStrangersAreRefused() throws Exception {
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "test CA");
        PeerTls a = PeerTls.load(Pki.issue(pki, "10.0.0.1"));
        PeerTls b = PeerTls.load(Pki.issue(pki, "backup.example"));
        Path other = tmp.resolve("other");
        Pki.init(other, "someone else's CA");
        PeerTls stranger = PeerTls.load(Pki.issue(other, "10.0.0.1"));

        assertEquals(Files.getPosixFilePermissions(pki.resolve("10.0.0.1/client-key.pem")),
                java.util.Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE), "keys are private to the owner");
        // QEMU's TLS server end reads the DH group from the host directory instead of generating one per process.
        assertTrue(Files.readString(pki.resolve("10.0.0.1/dh-params.pem")).startsWith("-----BEGIN DH PARAMETERS-----"));

        // A good pair: one line each way.
        assertEquals("pong", exchange(b, a, "ping"));
        // Another CA's certificate: the server refuses the handshake.
        assertThrows(IOException.class, () -> exchange(b, stranger, "primary-down"));
        // No TLS at all: the server's handshake fails; the plaintext is never read as protocol.
        assertThrows(IOException.class, () -> exchange(b, PeerTls.INSECURE, "{\"vm\":\"x\",\"type\":\"primary-down\"}"));
    }

    @Test
    void aCaAlreadyThereIsNotOverwritten() throws Exception {
        Pki.init(tmp, "first");
        IOException e = assertThrows(IOException.class, () -> Pki.init(tmp, "second"));
        assertTrue(e.getMessage().contains("already exists"), e.getMessage());
        assertThrows(IOException.class, () -> Pki.issue(tmp, "bad host name with spaces"));
    }

    @Test
    void theIssuedFilesAreWhatAStockTlsClientUses() throws Exception {
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "test CA");
        PeerTls server = PeerTls.load(Pki.issue(pki, "127.0.0.1"));
        Path client = Pki.issue(pki, "client.example");
        try (ServerSocket ss = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CompletableFuture<String> got = CompletableFuture.supplyAsync(() -> {
                try (Socket s = server.server(ss.accept(), "test")) {
                    String peer = ((SSLSocket) s).getSession().getPeerPrincipal().getName();
                    s.getOutputStream().write("hello\n".getBytes());
                    s.getOutputStream().flush();
                    return peer;
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            Process p = new ProcessBuilder("openssl", "s_client", "-connect", "127.0.0.1:" + ss.getLocalPort(),
                    "-CAfile", client.resolve("ca-cert.pem").toString(), "-cert", client.resolve("client-cert.pem").toString(),
                    "-key", client.resolve("client-key.pem").toString(), "-verify_return_error", "-quiet")
                    .redirectErrorStream(true).start();
            p.getOutputStream().close();
            String out = new String(p.getInputStream().readAllBytes());
            p.waitFor(20, TimeUnit.SECONDS);
            assertTrue(out.contains("hello"), "openssl s_client did not get the server's line: " + out);
            assertTrue(got.get(20, TimeUnit.SECONDS).contains("CN=client.example"), "the server saw the client's certificate");
        }
    }

    /** Server {@code srv} answers "pong" to one line from client {@code cli}; returns the answer. */
    private static String exchange(PeerTls srv, PeerTls cli, String line) throws Exception {
        try (ServerSocket ss = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CompletableFuture<String> server = CompletableFuture.supplyAsync(() -> {
                try (Socket s = srv.server(ss.accept(), "test")) {
                    String got = new java.io.BufferedReader(new java.io.InputStreamReader(s.getInputStream())).readLine();
                    s.getOutputStream().write("pong\n".getBytes());
                    s.getOutputStream().flush();
                    return got;
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            Socket plain = new Socket(InetAddress.getLoopbackAddress(), ss.getLocalPort());
            plain.setSoTimeout(5000);
            try (Socket s = cli.client(plain, "test")) {
                s.getOutputStream().write((line + "\n").getBytes());
                s.getOutputStream().flush();
                String answer = new java.io.BufferedReader(new java.io.InputStreamReader(s.getInputStream())).readLine();
                String got;
                try {
                    got = server.get(15, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    throw new IOException("server side: " + e.getCause().getMessage(), e.getCause());
                }
                assertEquals(line, got);
                if (answer == null) {
                    throw new IOException("no answer");
                }
                return answer;
            } catch (IOException e) {
                // The client may or may not see its failure before the server's; the server's verdict decides.
                try {
                    server.get(15, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException se) {
                    throw new IOException("refused: " + se.getCause().getMessage(), e);
                }
                throw e;
            }
        }
    }
}

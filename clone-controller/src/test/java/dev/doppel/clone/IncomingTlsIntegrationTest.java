package dev.doppel.clone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A fresh remote clone's incoming side with {@link IncomingTls}, on a real QEMU that waits with
 * {@code -incoming defer} (empty RAM, postcopy on, as a remote fork starts it): after
 * {@code migrate-incoming}, peers without a certificate of the CA are refused before QEMU reads a
 * byte of migration — the clone stays waiting — and a client with the host's certificate still
 * completes the handshake afterwards.
 */
@Tag("integration")
@Timeout(120)
class IncomingTlsIntegrationTest {

    @TempDir Path tmp;
    @AutoClose TestVms vms = new TestVms();

    @Test
    void aWaitingCloneRefusesPeersWithoutACertificateAndStillAcceptsItsPageServer() throws Exception {
        Pki.init(tmp.resolve("pki"), "test CA");
        Path host = Pki.issue(tmp.resolve("pki"), "clone-host");
        PeerTls tls = PeerTls.load(host);
        Pki.init(tmp.resolve("foreign"), "someone else's CA");
        Path foreignHost = Pki.issue(tmp.resolve("foreign"), "clone-host");

        VmSpec spec = vms.guestSpec("rc-in", "none", Map.of()).memory(new MemoryBackend.Anonymous()).incomingDefer(true).build();
        VmProcess clone = vms.start(spec);
        clone.qmp().execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "postcopy-ram", "state", true))));
        IncomingTls.require(spec.name(), clone.qmp(), tls);
        IncomingTls.Rejections rejections = new IncomingTls.Rejections(clone.runDir().qemuLog());
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        clone.qmp().execute("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:" + port));
        InetSocketAddress incoming = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);

        // Plain TCP speaking migration at once; openssl without a certificate; openssl with another CA's;
        // Doppel's client with another CA's identity (it distrusts the clone first and sends an alert).
        assertEquals(0, TlsRogues.plainRogue(incoming), "a plain TCP peer got bytes from the clone");
        String noCert = TlsRogues.openssl(incoming, "-CAfile", host.resolve("ca-cert.pem").toString());
        String foreign = TlsRogues.openssl(incoming, "-cert", foreignHost.resolve("client-cert.pem").toString(),
                "-key", foreignHost.resolve("client-key.pem").toString(), "-CAfile", foreignHost.resolve("ca-cert.pem").toString());
        try (Socket plain = new Socket()) {
            plain.connect(incoming, 5000);
            assertThrows(IOException.class, () -> PeerTls.load(foreignHost).client(plain, "rogue page server"));
        }
        List<String> refused = awaitRefusals(rejections, 4);
        System.out.printf("refused: %s%nopenssl without a certificate: %s%nopenssl with another CA's: %s%n", refused,
                noCert.replace('\n', ' '), foreign.replace('\n', ' '));
        assertTrue(refused.get(0).contains("unexpected TLS packet"), refused.get(0));
        assertTrue(refused.get(1).contains("No certificate was found"), refused.get(1));
        assertTrue(refused.get(2).contains("known issuer"), refused.get(2));

        // Nothing changed: still waiting for its migration, guest not started.
        assertEquals("setup", clone.qmp().execute("query-migrate").path("status").asText());
        assertEquals("inmigrate", clone.qmp().execute("query-status").path("status").asText());

        // The page server's end (the host's certificate) is accepted: the handshake completes, and QEMU
        // takes the connection as its migration stream (it starts loading from it).
        try (Socket plain = new Socket()) {
            plain.connect(incoming, 5000);
            Socket s = tls.client(plain, "page server");
            assertEquals("TLSv1.3", ((javax.net.ssl.SSLSocket) s).getSession().getProtocol());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            String status = "";
            while (System.nanoTime() < deadline && !(status = clone.qmp().execute("query-migrate").path("status").asText()).equals("active")) {
                Thread.sleep(20);
            }
            assertEquals("active", status, "QEMU did not take the certified connection as its migration");
            assertEquals(List.of(), rejections.poll(), "the certified client was refused");
        }
        // (the stream then ends without a byte: that incoming migration fails and this QEMU exits)
    }

    private static List<String> awaitRefusals(IncomingTls.Rejections w, int n) throws InterruptedException {
        List<String> all = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (all.size() < n && System.nanoTime() < deadline) {
            all.addAll(w.poll());
            Thread.sleep(50);
        }
        assertEquals(n, all.size(), "refusals: " + all);
        return all;
    }
}

package dev.doppel.clone;

import static dev.doppel.clone.ForkFixture.nextDirtierLine;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Remote fork with mutual TLS between the page server and the clones (a CA made for each test): the
 * clones start, run, resume after a lost page server and end cleanly over TLS; and a peer without a certificate
 * of the CA — plain TCP, openssl s_client with no certificate or with another CA's — that reaches a
 * clone's incoming port is refused by the clone's QEMU, which stays paused and is then served by the
 * real page server.
 */
@Tag("integration")
@Timeout(300)
class RemoteForkTlsIntegrationTest extends RemoteForkTestBase {
    /** What a migration stream starts with: QEMU_VM_FILE_MAGIC "QEVM", version 3. */

    private PeerTls hostTls() throws IOException {
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "test CA");
        return PeerTls.load(Pki.issue(pki, "clone-host"));
    }

    @Test
    void remoteClonesStartRunAndResumeOverMutualTls() throws Exception {
        PeerTls tls = hostTls();
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withPageServer(PageServerOptions.defaults().withTls(tls)));
        hosts = new RemoteHosts(2);
        ForkableVm parent = fx.startDirtier("rc-tls", 16, 20000, fx.dataDisk("rc-tls"));

        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 2, hosts.hosts);
        System.out.printf("remote fork over mutual TLS: fork_ms=%.1f prestart_ms=%.1f pause_ms=%.1f%n", r.fork().forkMs(),
                r.fork().prestartMs(), r.fork().parentPauseMs());
        for (ForkableVm c : r.clones()) {
            // in-band is fine here: the clone runs and nothing holds its BQL
            assertEquals(IncomingTls.CREDS, c.qmp().execute("query-migrate-parameters").path("tls-creds").asText(),
                    c.name() + ": incoming migration without TLS credentials");
            nextDirtierLine(c.console(), 0);
        }
        ForkFixture.allCleanFor(List.of(parent, r.clones().get(0), r.clones().get(1)), 10);
        for (ForkableVm c : r.clones()) {
            SessionStats s = r.remote().stats(c.name());
            System.out.printf("%s over TLS: %s%n", c.name(), s);
            assertTrue(s.pagesSent() > 4096, c.name() + " fetched only " + s.pagesSent() + " pages");
            assertEquals(RemoteFork.CloneStatus.RUNNING, r.remote().status(c.name()));
        }

        // The reconnect path is TLS too: migrate-recover's new incoming channel, the new server's handshake.
        r.remote().killPageServer();
        for (ForkableVm c : r.clones()) {
            awaitMigrationStatus(r.remote(), c, "postcopy-paused", 20);
        }
        r.remote().restartPageServer();
        for (ForkableVm c : r.clones()) {
            awaitStatus(r.remote(), c, RemoteFork.CloneStatus.RUNNING, 30);
        }
        ForkFixture.allCleanFor(List.of(parent, r.clones().get(0), r.clones().get(1)), 8);
        for (ForkableVm c : r.clones()) {
            assertEquals(List.of(), r.remote().rejectedPeers(c.name()), "the page server's own connections were refused");
            System.out.printf("recovered %s over TLS: %s%n", c.name(), r.remote().stats(c.name()));
        }

        // The clean end over TLS: every page pushed, END, EOF, SHUT, close_notify; then no page server is needed.
        ForkableVm first = r.clones().get(0);
        r.remote().finish(first.name()).get(60, TimeUnit.SECONDS);
        assertEquals(RemoteFork.CloneStatus.INDEPENDENT, r.remote().status(first.name()));
        assertEquals("completed", first.qmp().execute("query-migrate").path("status").asText());
        r.remote().killPageServer();
        ForkFixture.assertCleanFor(first, 4);
    }

    /**
     * A clone whose page server died waits for a new one on a fresh incoming port (migrate-recover):
     * the moment a rogue peer could feed it memory of its own. Without TLS it could; with it, four
     * rogues are refused and the clone stays paused, and the real page server resumes it afterwards.
     */
    @Test
    void roguePeersOnAPausedClonesIncomingPortAreRefusedAndChangeNothing() throws Exception {
        PeerTls tls = hostTls();
        Path foreignPki = tmp.resolve("foreign-pki");
        Pki.init(foreignPki, "someone else's CA");
        Path foreignHost = Pki.issue(foreignPki, "clone-host");
        PeerTls stranger = PeerTls.load(foreignHost);
        Path ourHost = tmp.resolve("pki/clone-host");

        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withPageServer(PageServerOptions.defaults().withTls(tls))
                .withRemoteRecoverTimeout(Duration.ofSeconds(120)));
        hosts = new RemoteHosts(1);
        RemoteHost host = hosts.get(0);
        ForkableVm parent = fx.startDirtier("rc-rogue", 16, 20000, fx.dataDisk("rc-rogue"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        nextDirtierLine(clone.console(), 0);

        r.remote().killPageServer();
        awaitMigrationStatus(r.remote(), clone, "postcopy-paused", 20);
        SessionStats before = r.remote().stats(clone.name());
        // What the guard does when a page server is back, but nobody is: the port waits for anyone.
        int port = host.nextPort();
        clone.qmp().executeOob("migrate-recover", Map.of("uri", "tcp:" + host.address() + ":" + port), Duration.ofSeconds(5));
        // (QEMU listens when migrate-recover returns)
        InetSocketAddress incoming = new InetSocketAddress(host.address(), port);

        List<String> expected = new ArrayList<>();
        // 1. Plain TCP that speaks the migration protocol at once.
        assertEquals(0, TlsRogues.plainRogue(incoming), "a plain TCP peer got bytes from the clone");
        expected.add("unexpected TLS packet");
        awaitRejections(r.remote(), clone, expected);
        // 2. openssl s_client trusting our CA but with no certificate of its own.
        String noCert = TlsRogues.openssl(incoming, "-CAfile", ourHost.resolve("ca-cert.pem").toString());
        expected.add("No certificate was found");
        awaitRejections(r.remote(), clone, expected);
        // 3. openssl s_client with a certificate of another CA.
        String foreign = TlsRogues.openssl(incoming, "-cert", foreignHost.resolve("client-cert.pem").toString(),
                "-key", foreignHost.resolve("client-key.pem").toString(), "-CAfile", foreignHost.resolve("ca-cert.pem").toString());
        expected.add("known issuer");
        awaitRejections(r.remote(), clone, expected);
        // 4. Doppel's own TLS client with another CA's identity: it distrusts the clone first.
        try (Socket plain = new Socket()) {
            plain.connect(incoming, 5000);
            assertThrows(IOException.class, () -> stranger.client(plain, "rogue page server"));
        }
        expected.add("");
        awaitRejections(r.remote(), clone, expected);
        System.out.printf("rogues refused by %s: %s%nopenssl without a certificate: %s%nopenssl with another CA's: %s%n",
                clone.name(), r.remote().rejectedPeers(clone.name()), oneLine(noCert), oneLine(foreign));

        // Nothing changed: the clone still waits, paused, for its page server.
        Thread.sleep(1000);
        assertEquals("postcopy-paused", r.remote().migrationStatus(clone.name()));
        assertEquals(RemoteFork.CloneStatus.RECOVERING, r.remote().status(clone.name()));
        assertTrue(clone.isRunning());
        assertEquals(before, r.remote().stats(clone.name()));

        // The real page server can still serve it: the guard recovers it over TLS on a new port.
        r.remote().restartPageServer();
        awaitStatus(r.remote(), clone, RemoteFork.CloneStatus.RUNNING, 30);
        ForkFixture.allCleanFor(List.of(parent, clone), 8);
        assertEquals(4, r.remote().rejectedPeers(clone.name()).size(), "the page server's own connection was refused: "
                + r.remote().rejectedPeers(clone.name()));
    }

    /** A stock TLS client: openssl s_client, which sends a migration header once connected. */
    /** Waits until the clone has refused exactly the peers in {@code expected} (each entry a part of QEMU's reason). */
    private static void awaitRejections(RemoteFork f, ForkableVm clone, List<String> expected) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        List<String> got = List.of();
        while (System.nanoTime() < deadline) {
            got = f.rejectedPeers(clone.name());
            if (got.size() >= expected.size()) {
                break;
            }
            Thread.sleep(50);
        }
        assertEquals(expected.size(), got.size(), clone.name() + " refused " + got + ", expected " + expected);
        for (int i = 0; i < expected.size(); i++) {
            assertTrue(got.get(i).contains(expected.get(i)), "refusal " + (i + 1) + ": " + got.get(i) + ", expected " + expected.get(i));
        }
    }

    private static String oneLine(String s) {
        return s.replace('\n', ' ').trim();
    }
}

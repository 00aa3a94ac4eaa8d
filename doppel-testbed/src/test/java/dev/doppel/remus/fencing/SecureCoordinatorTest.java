package dev.doppel.remus.fencing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.testbed.RemusTestbed;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ZooKeeper over mutual TLS, against real servers: a host with a certificate of the installation's CA
 * takes leases; a client without TLS, or with another CA's certificate, gets no session, and the lease
 * and ownership record stay exactly as they were (same data, same version, same creation zxid). A stock
 * client (openssl s_client) shows that the secure client port and the ensemble's election port demand a
 * client certificate. The ensemble runs one member per network namespace, reachable only from inside
 * the testbed's namespaces, so a working session also shows the Netty client's socket was made there.
 */
class SecureCoordinatorTest {
    /** Long enough that a loaded machine does not expire the legitimate holder's session mid-test. */
    private static final Duration SESSION = Duration.ofSeconds(15);
    private static final Duration REFUSED_WITHIN = Duration.ofSeconds(3);

    @TempDir Path tmp;

    @Test
    void onlyHostsOfTheCaReachTheServerAndStrangersChangeNothing() throws Exception {
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "test CA");
        PeerTls serverTls = PeerTls.load(Pki.issue(pki, "127.0.0.1"));
        PeerTls primaryTls = PeerTls.load(Pki.issue(pki, "primary.example"));
        PeerTls backupTls = PeerTls.load(Pki.issue(pki, "backup.example"));
        Path other = tmp.resolve("other");
        Pki.init(other, "someone else's CA");
        Path strangerDir = Pki.issue(other, "primary.example");
        PeerTls strangerTls = PeerTls.load(strangerDir);
        // The same stranger, trusting this installation's CA (its certificate is no secret): only the
        // server's check of the client certificate stands in its way.
        Path strangerTrustingUs = tmp.resolve("stranger-trusting-us");
        Files.createDirectories(strangerTrustingUs);
        for (String f : List.of("client-cert.pem", "client-key.pem", "server-cert.pem", "server-key.pem")) {
            Files.copy(strangerDir.resolve(f), strangerTrustingUs.resolve(f));
        }
        Files.copy(pki.resolve("ca/ca-cert.pem"), strangerTrustingUs.resolve("ca-cert.pem"));
        PeerTls strangerTrustingUsTls = PeerTls.load(strangerTrustingUs);

        try (EmbeddedCoordinator zk = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), tmp.resolve("zk"),
                HostSockets.LOCAL, serverTls);
             Coordinator primary = Coordinator.connect(zk.connectString(), SESSION, HostSockets.LOCAL, Duration.ofSeconds(10),
                     primaryTls)) {
            VmLease lease = VmLease.acquire(primary, "vm1", "primary@a", Duration.ZERO, null);
            lease.claimAsPrimary();
            lease.setBackup("backup@b/1");
            Stat leaseBefore = stat(primary, VmLease.leasePath("vm1"));
            Stat recordBefore = stat(primary, VmLease.recordPath("vm1"));
            byte[] recordData = primary.client().getData().forPath(VmLease.recordPath("vm1"));

            // No TLS: the server reads a TLS record header where a ZooKeeper connect request came; no session.
            FencingException plain = assertThrows(FencingException.class,
                    () -> Coordinator.connect(zk.connectString(), SESSION, HostSockets.LOCAL, REFUSED_WITHIN, PeerTls.INSECURE).close());
            assertTrue(plain.getMessage().contains("did not answer"), plain.getMessage());
            // A raw plain client trying to delete the lease: it never gets a connection to send the request on.
            ZooKeeper raw = new ZooKeeper(zk.connectString(), (int) SESSION.toMillis(), e -> { });
            try {
                assertThrows(org.apache.zookeeper.KeeperException.ConnectionLossException.class,
                        () -> raw.delete(VmLease.leasePath("vm1"), -1));
            } finally {
                raw.close();
            }
            // Another CA's certificate: the handshake fails (neither end trusts the other); no session.
            assertThrows(FencingException.class,
                    () -> Coordinator.connect(zk.connectString(), SESSION, HostSockets.LOCAL, REFUSED_WITHIN, strangerTls).close());
            assertThrows(FencingException.class, () -> Coordinator.connect(zk.connectString(), SESSION, HostSockets.LOCAL,
                    REFUSED_WITHIN, strangerTrustingUsTls).close());

            // Intact: same lease node (holder, creation zxid = token), same record version and data.
            Stat leaseAfter = stat(primary, VmLease.leasePath("vm1"));
            assertEquals(leaseBefore.getCzxid(), leaseAfter.getCzxid());
            assertEquals(leaseBefore.getEphemeralOwner(), leaseAfter.getEphemeralOwner());
            assertEquals(recordBefore.getVersion(), stat(primary, VmLease.recordPath("vm1")).getVersion());
            assertArrayEquals(recordData, primary.client().getData().forPath(VmLease.recordPath("vm1")));
            assertEquals(new OwnershipRecord("primary@a", lease.token(), "backup@b/1"), lease.record());

            // A second host of the CA gets a session; the live holder's lease is not given to it.
            try (Coordinator backup = Coordinator.connect(zk.connectString(), SESSION, HostSockets.LOCAL, Duration.ofSeconds(10),
                    backupTls)) {
                FencingException held = assertThrows(FencingException.class,
                        () -> VmLease.acquire(backup, "vm1", "backup@b", Duration.ofMillis(300), null));
                assertTrue(held.getMessage().contains("held by primary@a"), held.getMessage());
            }

            // A stock client: with the host's certificate the handshake completes and the server keeps the
            // connection; without one the server's first record is a fatal alert (the JDK's: bad_certificate).
            int port = Integer.parseInt(zk.connectString().substring(zk.connectString().lastIndexOf(':') + 1));
            Path host = primaryTls.directory();
            String withCert = sClient(List.of(), "127.0.0.1:" + port, host, true);
            assertTrue(withCert.contains("Verification: OK") || withCert.contains("Verify return code: 0 (ok)"), withCert);
            assertTrue(!withCert.contains("alert"), withCert);
            String withoutCert = sClient(List.of(), "127.0.0.1:" + port, host, false);
            assertTrue(withoutCert.contains("alert bad certificate"), withoutCert);
            lease.close();
        }
    }

    @Test
    void aSecureEnsembleInNamespacesHasItsClientsConnectFromTheirNamespaces() throws Exception {
        try (RemusTestbed bed = RemusTestbed.create("zt" + ProcessHandle.current().pid() % 10000, 150, 3)) {
            Path pki = tmp.resolve("pki");
            Pki.init(pki, "testbed CA");
            // All members share one identity: ZooKeeper keeps server TLS settings process-wide.
            PeerTls memberTls = PeerTls.load(Pki.issue(pki, bed.coordinator().ip()));
            PeerTls primaryTls = PeerTls.load(Pki.issue(pki, bed.primary().ip()));
            PeerTls backupTls = PeerTls.load(Pki.issue(pki, bed.backup().ip()));
            List<InetSocketAddress> members = bed.coordinators().stream().map(h -> new InetSocketAddress(h.ip(), 2181)).toList();
            List<EmbeddedCoordinator> ensemble = new ArrayList<>();
            try {
                for (int i = 0; i < members.size(); i++) {
                    ensemble.add(EmbeddedCoordinator.member(i + 1, members, tmp.resolve("zk" + (i + 1)),
                            bed.coordinators().get(i).sockets(), memberTls));
                }
                String cs = ensemble.get(0).connectString();
                // A second identity for a server of this process is refused, not silently swapped in.
                PeerTls otherIdentity = PeerTls.load(Pki.issue(pki, "elsewhere.example"));
                assertThrows(java.io.IOException.class, () -> EmbeddedCoordinator.standalone(
                        new InetSocketAddress(bed.coordinator().ip(), 2191), tmp.resolve("zk-x"), bed.coordinator().sockets(),
                        otherIdentity));
                try (Coordinator primary = Coordinator.connect(cs, SESSION, bed.primary().sockets(),
                        Duration.ofSeconds(30), primaryTls);
                     Coordinator backup = Coordinator.connect(cs, SESSION, bed.backup().sockets(),
                             Duration.ofSeconds(30), backupTls)) {
                    VmLease lease = VmLease.acquire(primary, "vm2", "primary@a", Duration.ZERO, null);
                    lease.claimAsPrimary();
                    // Written through one member, read through whichever the backup reached: the quorum (TLS) works.
                    backup.client().sync().forPath(VmLease.recordPath("vm2"));
                    assertNotEquals(null, backup.client().checkExists().forPath(VmLease.recordPath("vm2")));
                    assertThrows(FencingException.class,
                            () -> VmLease.acquire(backup, "vm2", "backup@b", Duration.ofMillis(300), null));

                    // From the root namespace the ensemble cannot be reached at all: the sessions above were
                    // made from inside the hosts' namespaces.
                    assertThrows(FencingException.class,
                            () -> Coordinator.connect(cs, SESSION, HostSockets.LOCAL, REFUSED_WITHIN, primaryTls).close());
                    // The testbed's client host, without TLS, is in the right place but gets no session.
                    assertThrows(FencingException.class,
                            () -> Coordinator.connect(cs, SESSION, bed.client().sockets(), REFUSED_WITHIN, PeerTls.INSECURE).close());
                    assertEquals("primary@a", lease.record().owner());

                    // The election port (client port + 2) of a member is TLS and wants a certificate too.
                    List<String> inClientHost = List.of("ip", "netns", "exec", bed.client().ns().name());
                    String election = bed.coordinators().get(1).ip() + ":2183";
                    String noCert = sClient(inClientHost, election, primaryTls.directory(), false);
                    assertTrue(noCert.contains("alert bad certificate"), noCert);
                    lease.close();
                }
                // One member stops (the last started, whose configuration set the process's TLS settings):
                // the other two still take new TLS sessions.
                ensemble.remove(2).close();
                try (Coordinator late = Coordinator.connect(cs, SESSION, bed.backup().sockets(), Duration.ofSeconds(30), backupTls)) {
                    VmLease.acquire(late, "vm3", "backup@b", Duration.ZERO, null).close();
                }
            } finally {
                ensemble.forEach(EmbeddedCoordinator::close);
            }
        }
    }

    private static Stat stat(Coordinator c, String path) throws Exception {
        Stat s = c.client().checkExists().forPath(path);
        assertNotEquals(null, s, path + " is gone");
        return s;
    }

    /** openssl s_client against {@code target}, trusting the host's CA, with or without its client certificate. */
    private static String sClient(List<String> prefix, String target, Path host, boolean withCert) throws Exception {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(List.of("openssl", "s_client", "-connect", target, "-CAfile", host.resolve("ca-cert.pem").toString(),
                "-verify_return_error", "-tls1_3"));
        if (withCert) {
            cmd.addAll(List.of("-cert", host.resolve("client-cert.pem").toString(), "-key", host.resolve("client-key.pem").toString()));
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        // Stay connected a moment: with TLS 1.3 the server judges the client's certificate after the
        // client's handshake finished, so its alert comes with the first read.
        Thread.sleep(1000);
        p.getOutputStream().close();
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
            p.destroyForcibly();
        }
        return new String(p.getInputStream().readAllBytes());
    }
}

package dev.doppel.remus.fencing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The ownership rules against a real ZooKeeper server (embedded, on loopback): one lease holder at a
 * time with growing tokens, and compare-and-set on the record so that "the primary goes on without a
 * backup" and "the backup takes over" can never both succeed, in either order.
 */
class VmLeaseTest {
    private EmbeddedCoordinator zk;
    private Coordinator primary;
    private Coordinator backup;
    private Path dir;

    @BeforeEach
    void start() throws Exception {
        dir = Files.createTempDirectory("doppel-zk-test");
        zk = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), dir, HostSockets.LOCAL, PeerTls.INSECURE);
        primary = Coordinator.connect(zk.connectString(), Duration.ofMillis(1000), HostSockets.LOCAL, Duration.ofSeconds(10),
                PeerTls.INSECURE);
        backup = Coordinator.connect(zk.connectString(), Duration.ofMillis(1000), HostSockets.LOCAL, Duration.ofSeconds(10),
                PeerTls.INSECURE);
    }

    @AfterEach
    void stop() {
        backup.close();
        primary.close();
        zk.close();
    }

    @Test
    void aLiveHoldersLeaseIsNotTakenAndTokensGrow() throws Exception {
        VmLease a = VmLease.acquire(primary, "vm1", "primary@a", Duration.ZERO, null);
        long t0 = System.nanoTime();
        FencingException held = assertThrows(FencingException.class,
                () -> VmLease.acquire(backup, "vm1", "backup@b", Duration.ofMillis(400), null));
        assertTrue(held.getMessage().contains("held by primary@a"), held.getMessage());
        assertTrue(System.nanoTime() - t0 >= Duration.ofMillis(400).toNanos(), "gave up before the wait");
        a.close();
        VmLease b = VmLease.acquire(backup, "vm1", "backup@b", Duration.ofSeconds(2), null);
        assertTrue(b.token() > a.token(), "token must grow: " + a.token() + " then " + b.token());
        b.close();
    }

    @Test
    void anExpiredSessionFreesTheLeaseWithinTheSessionTimeout() throws Exception {
        VmLease a = VmLease.acquire(primary, "vm2", "primary@a", Duration.ZERO, null);
        a.claimAsPrimary();
        a.setBackup("backup@b/1");
        // The primary's host vanishes: its session is never closed, only expires.
        primary.client().getZookeeperClient().getZooKeeper().getTestable().injectSessionExpiration();
        long t0 = System.nanoTime();
        VmLease b = VmLease.acquire(backup, "vm2", "backup@b", Duration.ofSeconds(5), null);
        assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(3).toNanos());
        OwnershipRecord r = b.takeOver("backup@b/1");
        assertEquals(new OwnershipRecord("backup@b", b.token(), null), r);
        // The old primary cannot let output out without a backup any more.
        assertThrows(FencingException.Fenced.class, () -> a.setBackup(null));
        b.close();
    }

    @Test
    void aPrimaryThatWentOnWithoutTheBackupMakesTheBackupStale() throws Exception {
        VmLease a = VmLease.acquire(primary, "vm3", "primary@a", Duration.ZERO, null);
        a.claimAsPrimary();
        a.setBackup("backup@b/1");
        a.setBackup(null);     // backup lost: the primary continues unprotected
        a.close();             // ... and later dies
        VmLease b = VmLease.acquire(backup, "vm3", "backup@b", Duration.ofSeconds(2), null);
        FencingException.Fenced stale = assertThrows(FencingException.Fenced.class, () -> b.takeOver("backup@b/1"));
        assertTrue(stale.getMessage().contains("stale"), stale.getMessage());
        b.close();
    }

    @Test
    void aTakenOverVmCannotBeClaimedByItsOldPrimary() throws Exception {
        VmLease a = VmLease.acquire(primary, "vm4", "primary@a", Duration.ZERO, null);
        a.claimAsPrimary();
        a.setBackup("backup@b/7");
        a.close();
        VmLease b = VmLease.acquire(backup, "vm4", "backup@b", Duration.ofSeconds(2), null);
        b.takeOver("backup@b/7");
        b.close();
        VmLease again = VmLease.acquire(primary, "vm4", "primary@a", Duration.ofSeconds(2), null);
        assertThrows(FencingException.Fenced.class, again::claimAsPrimary);
        again.close();
    }

    @Test
    void aBackupWaitingForTheLeaseStopsWhenTheRecordNamesAnotherStore() throws Exception {
        VmLease a = VmLease.acquire(primary, "vm5", "primary@a", Duration.ZERO, null);
        a.claimAsPrimary();
        a.setBackup("backup@b/1");
        Thread later = new Thread(() -> {
            try {
                Thread.sleep(300);
                a.setBackup(null);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        later.start();
        long t0 = System.nanoTime();
        FencingException e = assertThrows(FencingException.Fenced.class, () -> VmLease.acquire(backup, "vm5", "backup@b",
                Duration.ofSeconds(10), rec -> rec == null || !"backup@b/1".equals(rec.backup()) ? "stale" : null));
        later.join();
        assertTrue(e.getMessage().contains("not taking the lease"), e.getMessage());
        assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(3).toNanos(), "kept waiting after the record changed");
        a.close();
    }
}

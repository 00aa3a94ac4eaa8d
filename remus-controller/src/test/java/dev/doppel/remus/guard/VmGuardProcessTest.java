package dev.doppel.remus.guard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.OwnershipRecord;
import dev.doppel.remus.fencing.ProcessDeath;
import dev.doppel.remus.fencing.VmLease;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The guard as a process of its own, against a real ZooKeeper server, guarding a real process (a
 * {@code sleep}: what is under test is the guard's handling of the guarded process's life, which is
 * the same for any process; the CLI test does it with QEMU). Checked: the controller going away
 * changes nothing; the guard's death (SIGKILL) kills the guarded process; the guarded process's death
 * frees the lease at once; a lost session with a backup named kills the guarded process; release
 * leaves it running and frees the lease.
 */
class VmGuardProcessTest {
    private static final Duration SESSION = Duration.ofMillis(1000);
    private EmbeddedCoordinator zk;
    private Coordinator backupSide;
    private Path runDir;
    private Process guarded;
    private PeerTls tls;

    @BeforeEach
    void start() throws Exception {
        runDir = Files.createTempDirectory("doppel-guard-test");
        // Over mutual TLS, as in production: the guard's own ZooKeeper session included.
        Pki.init(runDir.resolve("pki"), "guard test CA");
        tls = PeerTls.load(Pki.issue(runDir.resolve("pki"), "127.0.0.1"));
        zk = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), runDir.resolve("zk"), HostSockets.LOCAL, tls);
        backupSide = Coordinator.connect(zk.connectString(), SESSION, HostSockets.LOCAL, Duration.ofSeconds(10), tls);
        guarded = new ProcessBuilder("sleep", "600").start();
    }

    @AfterEach
    void stop() {
        guarded.destroyForcibly();
        backupSide.close();
        if (zk != null) {
            zk.close();
        }
    }

    private GuardClient startGuard(String vm) throws Exception {
        return GuardProcess.attachOrStart(new GuardProcess.Spec(vm, guarded.pid(), "primary@test", runDir, runDir.resolve("guard.log"),
                null, zk.connectString(), null, tls, SESSION, Duration.ofSeconds(5), true));
    }

    @Test
    void aControllerThatGoesAwayChangesNothingAndOneThatComesBackReattaches() throws Exception {
        GuardClient first = startGuard("g1");
        long token = first.status().token();
        first.protectWith("backup@b/1");
        // The controller is gone (this client is simply dropped): the lease stays with the guard.
        FencingException held = assertThrows(FencingException.class,
                () -> VmLease.acquire(backupSide, "g1", "backup@b", SESSION.plusMillis(1500), null));
        assertTrue(held.getMessage().contains("held by primary@test"), held.getMessage());
        assertTrue(guarded.isAlive(), "the guarded process runs on");

        GuardClient second = startGuard("g1");
        assertTrue(second.reattached(), "a second controller re-attaches to the running guard");
        assertEquals(token, second.status().token(), "same lease, same token");
        assertTrue(second.goUnprotected("test: the controller came back"));
        OwnershipRecord r = recordOf("g1");
        assertEquals("primary@test", r.owner());
        assertEquals(null, r.backup(), "unprotected: no store may take over");
        second.close();   // release: the guard ends, the process lives on
        assertTrue(awaitGone(guardPidFrom(runDir), Duration.ofSeconds(5)), "a released guard ends");
        assertTrue(guarded.isAlive(), "release leaves the guarded process running");
        VmLease.acquire(backupSide, "g1", "backup@b", Duration.ofSeconds(1), null).close();
    }

    @Test
    void theGuardsDeathKillsTheGuardedProcessAndItsLeaseExpires() throws Exception {
        GuardClient c = startGuard("g2");
        c.protectWith("backup@b/1");
        long guardPid = c.status().guardPid();
        ProcessHandle.of(guardPid).orElseThrow().destroyForcibly();   // SIGKILL: no hook of the guard runs
        assertTrue(guarded.waitFor(2, TimeUnit.SECONDS), "the dead man killed the guarded process");
        long t0 = System.nanoTime();
        VmLease lease = VmLease.acquire(backupSide, "g2", "backup@b", SESSION.plusMillis(2000), null);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms <= SESSION.toMillis() + 1500, "lease free within the session timeout, took " + ms + " ms");
        lease.close();
        assertTrue(ProcessDeath.gone(guarded.toHandle()));
    }

    @Test
    void theGuardedProcessExitingGivesTheLeaseBackAtOnce() throws Exception {
        GuardClient c = startGuard("g3");
        c.protectWith("backup@b/1");
        guarded.destroyForcibly();
        long t0 = System.nanoTime();
        VmLease lease = VmLease.acquire(backupSide, "g3", "backup@b", Duration.ofSeconds(3), null);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms < SESSION.toMillis(), "given back before any session could expire, took " + ms + " ms");
        lease.takeOver("backup@b/1");
        lease.close();
    }

    @Test
    void aLostSessionWithABackupNamedKillsTheGuardedProcess() throws Exception {
        GuardClient c = startGuard("g4");
        c.protectWith("backup@b/1");
        zk.close();   // the coordination service is gone for the guard: it cannot know it still owns the VM
        zk = null;
        assertTrue(guarded.waitFor(SESSION.toMillis() * 3 + 2000, TimeUnit.MILLISECONDS),
                "self-fenced: the guarded process was killed after the session was lost");
    }

    /**
     * A VM whose manager says why its QEMU ended (libvirt): the guard keeps the lease after the exit until the
     * controller's verdict. "Stopped by its owner" is recorded (no backup named) before the lease is free, so a
     * backup that takes the lease finds the record refusing it: no failover of a VM its owner stopped.
     */
    @Test
    void anOwnersStopIsRecordedBeforeTheLeaseIsGivenBack() throws Exception {
        GuardClient c = startGuard("g5", Duration.ofSeconds(5));
        c.protectWith("backup@b/1");
        guarded.destroyForcibly();
        guarded.waitFor();
        // While the verdict is pending the lease is still the guard's: a backup's attempt finds it held.
        assertThrows(FencingException.class, () -> VmLease.acquire(backupSide, "g5", "backup@b", Duration.ofMillis(500), null));
        assertTrue(c.stoppedByOwner("test: stopped/destroyed"));
        VmLease lease = VmLease.acquire(backupSide, "g5", "backup@b", Duration.ofSeconds(3), null);
        try {
            OwnershipRecord r = lease.record();
            assertEquals("primary@test", r.owner());
            assertEquals(null, r.backup(), "the owner's stop is in the record: no store may take over");
        } finally {
            lease.close();
        }
    }

    /** A crash verdict gives the lease back at once; without any verdict (controller gone) it is given back after the wait. */
    @Test
    void aCrashVerdictOrNoVerdictLetsTheBackupTakeOver() throws Exception {
        GuardClient c = startGuard("g6", Duration.ofSeconds(3));
        c.protectWith("backup@b/1");
        guarded.destroyForcibly();
        guarded.waitFor();
        c.crashed("test: stopped/failed");
        long t0 = System.nanoTime();
        VmLease lease = VmLease.acquire(backupSide, "g6", "backup@b", Duration.ofSeconds(2), null);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        // Well under the 3 s verdict wait: the crash verdict, not the wait's end, freed the lease.
        assertTrue(ms < 2000, "lease free after the crash verdict, took " + ms + " ms");
        assertEquals("backup@b/1", lease.record().backup(), "a crash leaves the backup named: it may take over");
        lease.close();

        Process other = new ProcessBuilder("sleep", "600").start();
        try {
            GuardClient silent = GuardProcess.attachOrStart(new GuardProcess.Spec("g7", other.pid(), "primary@test", runDir.resolve("g7"),
                    runDir.resolve("g7/guard.log"), null, zk.connectString(), null, tls, SESSION, Duration.ofSeconds(5), true)
                    .withVerdictWait(Duration.ofSeconds(2)));
            silent.protectWith("backup@b/1");
            other.destroyForcibly();
            other.waitFor();
            long t1 = System.nanoTime();
            VmLease late = VmLease.acquire(backupSide, "g7", "backup@b", Duration.ofSeconds(6), null);
            long waited = (System.nanoTime() - t1) / 1_000_000;
            assertTrue(waited >= 1500, "no verdict: the guard kept the lease for its wait (2 s), took " + waited + " ms");
            assertEquals("backup@b/1", late.record().backup());
            late.close();
        } finally {
            other.destroyForcibly();
        }
    }

    private GuardClient startGuard(String vm, Duration verdictWait) throws Exception {
        return GuardProcess.attachOrStart(new GuardProcess.Spec(vm, guarded.pid(), "primary@test", runDir, runDir.resolve("guard.log"),
                null, zk.connectString(), null, tls, SESSION, Duration.ofSeconds(5), true).withVerdictWait(verdictWait));
    }

    private OwnershipRecord recordOf(String vm) throws FencingException {
        try {
            byte[] data = backupSide.client().getData().forPath("/doppel/vms/" + vm + "/record");
            return new com.fasterxml.jackson.databind.ObjectMapper().readValue(data, OwnershipRecord.class);
        } catch (Exception e) {
            throw new FencingException(vm, "cannot read the record: " + e.getMessage(), e);
        }
    }

    private static long guardPidFrom(Path runDir) throws Exception {
        // The guard's pid as its own log says it (event=guard-ready pid=...).
        for (String line : Files.readAllLines(runDir.resolve("guard.log"))) {
            int i = line.indexOf("event=guard-ready pid=");
            if (i >= 0) {
                return Long.parseLong(line.substring(i + "event=guard-ready pid=".length()).split(" ")[0]);
            }
        }
        throw new AssertionError("no guard-ready line in " + runDir.resolve("guard.log"));
    }

    private static boolean awaitGone(long pid, Duration wait) {
        return ProcessHandle.of(pid).map(p -> ProcessDeath.await(p, wait)).orElse(true);
    }
}

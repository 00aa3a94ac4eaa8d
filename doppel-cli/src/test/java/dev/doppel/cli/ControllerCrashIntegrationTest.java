package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.ProcessDeath;
import dev.doppel.remus.guard.GuardClient;
import dev.doppel.remus.guard.GuardProcess;
import dev.doppel.remus.testbed.CpuHog;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.time.Duration;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The controller ({@code doppel protect}) is not what keeps a protected VM from running twice; the VM's
 * guard is. Real CLI processes (vm start, backup serve, protect), real QEMU, a real ZooKeeper server
 * outside all of them, mutual TLS:
 * <ol>
 *   <li>kill -9 of {@code protect} while both cores are saturated: no failover (the backup's attempt is
 *       deferred: the guard holds the lease), the guest runs on, still exactly one copy;</li>
 *   <li>{@code protect} started again re-attaches to the guard and protects the VM anew (new store,
 *       checkpoints again);</li>
 *   <li>kill -9 of the guard: its QEMU dies with it, the backup takes the lease once the guard's session
 *       expired and runs the VM: again exactly one copy.</li>
 * </ol>
 */
class ControllerCrashIntegrationTest {
    private static final Pattern CHECKPOINTING = Pattern.compile("PROTECTED\\s+checkpoints=[1-9]");
    private final String vm = "cc" + ProcessHandle.current().pid();
    private HaHosts hosts;

    @AfterEach
    void stopAll() throws Exception {
        if (hosts != null) {
            hosts.close();
        }
    }

    @Test
    void killingTheControllerNeitherFencesNorFailsOverAndTheGuardsDeathDoes() throws Exception {
        hosts = new HaHosts("cc");
        hosts.vm(vm);
        hosts.vm(vm + "-bk");
        Path disk = hosts.work.resolve("disk.qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
        int port = HaHosts.freePort();
        CliChild backup = hosts.backup(port);
        CliChild.run(Duration.ofSeconds(180), "vm", "start", vm, "--run", "dirtier", "--colo", "--disk", disk.toString(), "--user-net", "--wait-ready");
        long qemuPid = VmRecord.readFrom(VmRunDir.of(vm)).pid();

        // 1. The controller dies by SIGKILL on a saturated machine.
        CliChild first = hosts.protect(vm, port, 50);
        first.awaitLine(CHECKPOINTING, Duration.ofSeconds(180));
        try (CpuHog hog = CpuHog.allCores()) {
            first.process().destroyForcibly();
            assertTrue(first.process().waitFor(10, TimeUnit.SECONDS));
            Thread.sleep(6000);   // detection (500 ms) + the session timeout (2 s) several times over
        }
        assertFalse(backup.printed(Pattern.compile("event=failover-done")), "no failover while the guard lives:" + backup.tail());
        assertTrue(backup.printed(Pattern.compile("event=failover-deferred")),
                "the backup did try (replication ended, heartbeats silent) and was refused the lease:" + backup.tail());
        assertTrue(ProcessHandle.of(qemuPid).map(ProcessHandle::isAlive).orElse(false), "the primary QEMU runs on");
        assertFalse(Files.exists(VmRunDir.root().resolve("vms").resolve(vm + "-bk")), "no second copy was started");
        GuardClient guard = GuardProcess.attach(vm, VmRunDir.root().resolve("vms").resolve(vm), qemuPid).orElseThrow(
                () -> new AssertionError("the guard outlived its controller"));

        // 2. A new controller re-attaches and protects again.
        CliChild second = hosts.protect(vm, port, 50);
        second.awaitLine("re-attached to the running guard", Duration.ofSeconds(60));
        second.awaitLine(CHECKPOINTING, Duration.ofSeconds(180));
        // The guest runs (its console goes on; QMP is the controller's while it protects).
        List<String> before = CliChild.run(Duration.ofSeconds(60), "vm", "console", vm, "-n", "2");
        Thread.sleep(3000);
        List<String> after = CliChild.run(Duration.ofSeconds(60), "vm", "console", vm, "-n", "2");
        assertFalse(before.equals(after), "the guest's console goes on: " + before + " then " + after);

        // 3. The guard dies by SIGKILL: the QEMU dies with it, and the backup takes over.
        long guardPid = guard.status().guardPid();
        long killedAt = System.nanoTime();
        ProcessHandle.of(guardPid).orElseThrow().destroyForcibly();
        assertTrue(ProcessDeath.await(ProcessHandle.of(qemuPid).orElseThrow(), java.time.Duration.ofSeconds(2)),
                "the primary QEMU died with its guard");
        backup.awaitLine("event=failover-done", Duration.ofSeconds(30));
        long ms = (System.nanoTime() - killedAt) / 1_000_000;
        assertTrue(ms < 10_000, "failed over " + ms + " ms after the guard's death");
        long bkPid = VmRecord.readFrom(VmRunDir.of(vm + "-bk")).pid();
        assertTrue(ProcessHandle.of(bkPid).map(ProcessHandle::isAlive).orElse(false), "the backup's copy runs");
        assertEquals(1, List.of(qemuPid, bkPid).stream().filter(p -> ProcessHandle.of(p).map(h -> !ProcessDeath.gone(h)).orElse(false))
                .count(), "exactly one copy runs");
    }
}

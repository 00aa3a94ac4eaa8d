package dev.doppel.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.daemon.testbed.DaemonRestartRound;
import dev.doppel.vm.testing.TestVms;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * VMs outlive the daemon: kill -9 of the primary host's daemon, then of the backup host's, each
 * restarted — the protected KV guest runs on in the same QEMU, protection comes back by itself, no
 * failover happens (curl's record of both event streams), and every acknowledged PUT is there.
 * Then everything is stopped through the API and nothing of the VM is left.
 */
@Tag("integration")
@Timeout(900)
class DaemonRestartIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(DaemonRestartIntegrationTest.class);

    @TempDir Path tmp;

    @Test
    void killedDaemonsComeBackWithoutAFailoverOrALostWrite() throws Exception {
        String vm = TestVms.uniqueName("dr");
        DaemonRestartRound.Outcome o;
        Path work = Path.of("/dev/shm", "doppel-test-" + vm);
        try (DaemonRestartRound round = new DaemonRestartRound(work, Path.of("target/cli-logs"), line -> log.info("{}", line))) {
            o = round.run(vm);
            log.info("outcome: {}", o);
        }
        assertTrue(o.qemuKept(), "the guest's QEMU must be the same running process: " + o);
        assertEquals(0, o.failovers(), "no failover may happen while QEMU and its guard are fine: " + o);
        assertTrue(o.verification().ok(), "acknowledged PUTs lost: " + o.verification());
        assertTrue(o.acked() >= 600, "too few PUTs acknowledged: " + o.acked());
        assertTrue(o.checkpointsAfter() > 0, "no checkpoint after the backup's restart: " + o);
        assertTrue(ProcessHandle.of(o.qemuPid()).isEmpty() || !ProcessHandle.of(o.qemuPid()).get().isAlive(),
                "'vm stop' through the API must end the QEMU");
        assertTrue(!Files.exists(work), "the daemons' directories must be gone: " + work);
        List<String> left = dev.doppel.hostnet.HostCommand.tryRun(List.of("pgrep", "-af", vm)).stdout().lines().toList();
        assertEquals(List.of(), left.stream().filter(l -> !l.isBlank()).toList(), "processes of the VM left behind");
    }
}

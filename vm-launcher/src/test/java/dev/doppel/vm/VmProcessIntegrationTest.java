package dev.doppel.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.testing.TestVms;
import java.nio.file.Files;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Boots the real guest under the chosen accelerator (TCG on this kind of host). */
@Tag("integration")
@Timeout(180)
class VmProcessIntegrationTest {
    private static final Pattern DIRTIER = Pattern.compile(
            "dirtier t=(\\d+) writes=(\\d+) passes=(\\d+) rate=(\\d+) corrupt=(\\d+)");

    @AutoClose TestVms vms = new TestVms();

    @Test
    void bootsAndTicksAndAnswersQmp() throws Exception {
        VmProcess vm = vms.startReady(vms.guestSpec("boot", "ticker", Map.of()).build());
        vm.console().awaitLine(Pattern.compile("^tick 3$"), Duration.ofSeconds(60));

        QmpClient qmp = vm.qmp();
        assertEquals(10, qmp.greeting().version().major());
        assertEquals("running", qmp.execute("query-status").get("status").asText());

        try (EventSubscription events = qmp.subscribe("STOP", "RESUME")) {
            qmp.execute("stop");
            events.await("STOP", Duration.ofSeconds(5));
            assertEquals("paused", qmp.execute("query-status").get("status").asText());
            int ticksWhilePaused = vm.console().mark();
            Thread.sleep(1500);
            assertEquals(ticksWhilePaused, vm.console().mark(), "a paused guest must not tick");
            qmp.execute("cont");
            events.await("RESUME", Duration.ofSeconds(5));
        }
        vm.console().awaitLine(Pattern.compile("^tick \\d+$"), vm.console().mark(), Duration.ofSeconds(30));
    }

    @Test
    void dirtierRunsAndVerifiesItself() throws Exception {
        VmProcess vm = vms.startReady(vms.guestSpec("dirty", "dirtier",
                Map.of("doppel.dirty_mb", "16", "doppel.dirty_rate", "20000")).build());
        Matcher first = vm.console().awaitMatch(DIRTIER, 0, Duration.ofSeconds(60));
        Matcher later = vm.console().awaitMatch(DIRTIER, vm.console().mark() + 2, Duration.ofSeconds(60));
        assertTrue(Long.parseLong(later.group(2)) > Long.parseLong(first.group(2)), "write counter must grow");
        assertTrue(Long.parseLong(later.group(4)) > 1000, "dirtier rate too low: " + later.group());
        assertEquals("0", later.group(5), "corrupt count");
        assertFalse(vm.console().lines().stream().anyMatch(l -> l.startsWith("CORRUPT")));
    }

    @Test
    void closeStopsQemuAndRemovesRunDir() throws Exception {
        VmProcess vm = vms.start(vms.guestSpec("close", "none", Map.of()).build());
        long pid = vm.pid();
        VmRunDir dir = vm.runDir();
        assertTrue(Files.exists(dir.qmpSocket()));
        assertEquals("rwx------", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.path())));
        vm.close();
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "QEMU still alive after close");
        assertFalse(Files.exists(dir.path()), "run dir left behind");
    }

    @Test
    void killedQemuIsReportedAndCleaned() throws Exception {
        VmProcess vm = vms.start(vms.guestSpec("kill", "none", Map.of()).build());
        vm.kill();
        assertFalse(vm.isAlive());
        vm.close();   // closing a dead VM is fine and idempotent
        vm.close();
        assertFalse(Files.exists(vm.runDir().path()));
    }

    @Test
    void badCommandLineFailsFastWithQemusMessage() {
        VmSpec bad = vms.guestSpec("bad", "none", Map.of()).extraArgument("-device", "no-such-device").build();
        VmStartException e = assertThrows(VmStartException.class, () -> vms.start(bad));
        assertTrue(e.getMessage().contains("no-such-device"), e.getMessage());
        assertFalse(Files.exists(VmRunDir.of(bad.name()).path()), "run dir of a failed start must be removed");
    }

    @Test
    void sameNameTwiceIsRefused() throws Exception {
        VmSpec spec = vms.guestSpec("dup", "none", Map.of()).build();
        vms.start(spec);
        assertThrows(IllegalStateException.class, () -> vms.start(spec));
    }

    @Test
    void guestAgentAnswersPing() throws Exception {
        VmProcess vm = vms.startReady(vms.guestSpec("agent", "none", Map.of()).build());
        try (GuestAgentClient agent = GuestAgentClient.connect(vm.name(), vm.runDir().agentSocket())) {
            JsonNode pong = agent.command("ping", Map.of(), Duration.ofSeconds(20));
            assertTrue(pong.path("ok").asBoolean());
            assertTrue(pong.has("uptime_ms"), pong.toString());
        }
    }
}

package dev.doppel.clone;

import static dev.doppel.clone.ForkFixture.awaitFollowing;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Fork called from inside the guest (vmfork / vmwait / vmexit), with the seed's example programs. */
@Tag("integration")
@Timeout(300)
class GuestForkIntegrationTest {
    @TempDir Path tmp;
    @AutoClose ForkFixture fx;

    @Test
    void parallelSumWithFourClonesReturnsTheRightTotal() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        int count = 20_000;
        Path disk = fx.dataSetDisk("psum", count);
        ForkableVm parent = fx.startWorkload("psum", "parallel-sum", Map.of("doppel.example_args", "4,/dev/vda"), disk);

        Matcher total = awaitFollowing(parent, Pattern.compile("PSUM total=(\\d+)"), Duration.ofSeconds(240));
        assertEquals(ExampleDataSet.expectedSum(count), Long.parseLong(total.group(1)));
        long partials = parent.console().lines().stream().filter(l -> l.startsWith("PSUM partial")).count();
        assertEquals(4, partials, "one partial per clone");
        Matcher wait = awaitFollowing(parent, Pattern.compile("PSUM wait (.*)"), Duration.ofSeconds(5));
        for (int k = 1; k <= 4; k++) {
            assertTrue(wait.group(1).contains("\"" + k + "\":0"), "clone " + k + " exit code in " + wait.group(1));
        }
        // Every clone exited through vmexit and was cleaned up; only the parent is left in the family.
        assertEquals(1, parent.family().members().size(), "members: " + parent.family().members());
        for (ForkableVm c : parent.children()) {
            assertEquals(0, c.exitCode().get());
        }
    }

    @Test
    void guestKillsItsCloneAndWaitReportsIt() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        ForkableVm parent = fx.startIdle("kill", fx.dataDisk("kill"));
        // Run detached (output to the console): vmfork replaces the process the agent answers from.
        ForkFixture.sh(parent, "( id=$(vmfork 1); if [ \"$id\" -gt 0 ]; then while :; do sleep 1; done; fi; "
                + "vmkill 1 >/dev/null && echo KILLED-CLONE; echo \"KWAIT $(vmwait)\" ) </dev/null >/dev/console 2>&1 &");
        awaitFollowing(parent, Pattern.compile("KILLED-CLONE"), Duration.ofSeconds(120));
        Matcher wait = awaitFollowing(parent, Pattern.compile("KWAIT (.*)"), Duration.ofSeconds(60));
        assertTrue(wait.group(1).contains("\"1\":-1"), "a killed clone's code is -1: " + wait.group(1));
        assertEquals(1, parent.children().size());
        assertEquals(-1, parent.children().get(0).exitCode().get());
        assertEquals(1, parent.family().members().size());
    }

    @Test
    void sandboxedCloneCannotChangeTheParentsState() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        ForkableVm parent = fx.startWorkload("sbox", "sandbox", Map.of("doppel.example_args", "/dev/vda"), fx.dataDisk("sbox"));
        Matcher verdict = awaitFollowing(parent, Pattern.compile("SANDBOX parent-(intact|damaged).*"), Duration.ofSeconds(180));
        assertEquals("intact", verdict.group(1), verdict.group());
        assertTrue(verdict.group().contains("\"1\":3"), "the clone's exit code 3 must reach vmwait: " + verdict.group());
        assertEquals(3, parent.children().get(0).exitCode().get());
    }
}

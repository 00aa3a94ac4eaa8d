package dev.doppel.clone;

import static dev.doppel.clone.ForkFixture.assertCleanFor;
import static dev.doppel.clone.ForkFixture.nextDirtierLine;
import static dev.doppel.clone.ForkFixture.writes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.pageserver.SessionStats;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Remote fork against real QEMU destinations in other network namespaces, fed by the page server. */
@Tag("integration")
@Timeout(300)
class RemoteForkIntegrationTest {
    @TempDir Path tmp;
    private ForkFixture fx;
    private RemoteHosts hosts;

    @AfterEach
    void cleanUp() throws Exception {
        try {
            if (fx != null) {
                fx.close();
            }
        } finally {
            if (hosts != null) {
                hosts.close();
            }
        }
    }

    @Test
    void remoteClonesOfARunningDirtierStayCorrectAndFetchOnlyWhatTheyTouch() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        hosts = new RemoteHosts(2);
        ForkableVm parent = fx.startDirtier("rc-rf", 16, 20000, fx.dataDisk("rc-rf"));
        long writesBeforeFork = writes(nextDirtierLine(parent.console(), parent.console().mark() + 1));

        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 2, hosts.hosts);
        assertEquals(2, r.clones().size());
        System.out.printf("remote fork: fork_ms=%.1f pause_ms=%.1f%n", r.fork().forkMs(), r.fork().parentPauseMs());

        List<ForkableVm> all = List.of(parent, r.clones().get(0), r.clones().get(1));
        for (ForkableVm vm : all) {
            Matcher first = nextDirtierLine(vm.console(), 0);
            assertTrue(writes(first) >= writesBeforeFork, vm.name() + " restarted its counter: " + first.group());
        }
        List<CompletableFuture<Long>> watches = new ArrayList<>();
        for (ForkableVm vm : all) {
            watches.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return assertCleanFor(vm, 12);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        for (CompletableFuture<Long> w : watches) {
            assertTrue(w.join() > writesBeforeFork);
        }
        long total = r.remote().totalPages();
        for (ForkableVm c : r.clones()) {
            SessionStats s = r.remote().stats(c.name());
            System.out.printf("%s: %s of %d pages%n", c.name(), s, total);
            assertEquals(RemoteFork.CloneStatus.RUNNING, r.remote().status(c.name()));
            assertEquals(0, s.pagesPushed(), "no background push configured");
            assertEquals(s.pagesRequested(), s.pagesSent(), "every page sent was asked for");
            // The dirtier's working set is 16 MiB (4,096 pages); the kernel and agent touch a few more.
            assertTrue(s.pagesSent() > 4096 && s.pagesSent() < total / 4, c.name() + " fetched " + s.pagesSent());
        }
        c(r).forEach(ForkableVm::kill);
        assertTrue(parent.isRunning());
    }

    private static List<ForkableVm> c(RemoteForkService.RemoteForkResult r) {
        return r.clones();
    }
}

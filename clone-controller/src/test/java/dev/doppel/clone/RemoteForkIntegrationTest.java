package dev.doppel.clone;

import static dev.doppel.clone.ForkFixture.assertCleanFor;
import static dev.doppel.clone.ForkFixture.nextDirtierLine;
import static dev.doppel.clone.ForkFixture.writes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static dev.doppel.clone.ForkFixture.sh;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.clone.pageserver.ClonePageSession;
import dev.doppel.clone.pageserver.PageServer;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Remote fork against real QEMU destinations in other network namespaces, fed by the page server. */
@Tag("integration")
@Timeout(300)
class RemoteForkIntegrationTest extends RemoteForkTestBase {
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
        List<Long> writes = ForkFixture.allCleanFor(all, 30);
        for (long w : writes) {
            assertTrue(w > writesBeforeFork);
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
        r.clones().forEach(ForkableVm::kill);
        assertTrue(parent.isRunning());
    }

    @Test
    void parallelSumForkedFromInsideTheGuestOntoTwoHostsReturnsTheRightTotal() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        hosts = new RemoteHosts(2);
        fx.controller.placeGuestForksOn(hosts.hosts);
        int count = 20_000;
        ForkableVm parent = fx.startWorkload("rc-psum", "parallel-sum", Map.of("doppel.example_args", "2,/dev/vda"),
                fx.dataSetDisk("rc-psum", count));
        java.util.regex.Matcher total = ForkFixture.awaitFollowing(parent, java.util.regex.Pattern.compile("PSUM total=(\\d+)"),
                Duration.ofSeconds(240));
        assertEquals(ExampleDataSet.expectedSum(count), Long.parseLong(total.group(1)));
        assertEquals(2, parent.console().lines().stream().filter(l -> l.startsWith("PSUM partial")).count());
        for (ForkableVm c : parent.children()) {
            assertEquals(0, c.exitCode().get(10, TimeUnit.SECONDS), c.name());
        }
        assertEquals(1, parent.family().members().size(), "members: " + parent.family().members());
    }

    @Test
    void idleRemoteCloneFetchesLittleHasItsOwnIdentityAndBecomesIndependentOnFinish() throws Exception {
        ForkableVm parent = idleParentAndHosts("rc-idle", 1);

        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        clone.identity().get(120, TimeUnit.SECONDS);
        assertEquals("before\n", sh(clone, "cat /tmp/before"));
        assertEquals(clone.address().ip(), sh(clone, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").trim());
        assertEquals(clone.address().mac(), sh(clone, "cat /sys/class/net/eth0/address").trim());
        assertEquals(clone.name(), sh(clone, "hostname").trim());
        // The clone network spans the hosts: the remote clone and the parent reach each other.
        sh(clone, "ping -c 2 -W 3 " + parent.address().ip() + " >/dev/null");
        sh(parent, "ping -c 2 -W 3 " + clone.address().ip() + " >/dev/null");

        Thread.sleep(3000);   // idle for a while: the guest kernel's own background activity
        SessionStats s = r.remote().stats(clone.name());
        long total = r.remote().totalPages();
        System.out.printf("idle %s: %s of %d pages (%.1f %%)%n", clone.name(), s, total, 100.0 * s.pagesSent() / total);
        assertTrue(s.pagesSent() < total / 10, "an idle clone fetched " + s.pagesSent() + " of " + total + " pages");

        // Clean end: the rest is pushed (zero pages skipped), then the clone needs no page server.
        long t0 = System.nanoTime();
        r.remote().finish(clone.name()).get(60, TimeUnit.SECONDS);
        System.out.printf("finish: %.0f ms, %s%n", (System.nanoTime() - t0) / 1e6, r.remote().stats(clone.name()));
        assertEquals(RemoteFork.CloneStatus.INDEPENDENT, r.remote().status(clone.name()));
        assertEquals("completed", clone.qmp().execute("query-migrate").path("status").asText());
        r.remote().killPageServer();
        assertEquals("ok\n", sh(clone, "cat /tmp/before >/dev/null && echo ok"));
        assertEquals(0, ForkFixture.shStatus(clone, "dd if=/dev/urandom of=/tmp/fill bs=1M count=32 2>/dev/null"));
        assertTrue(clone.isRunning());
    }

    /**
     * {@code prepareRemote} starts the clones' QEMUs on their hosts (and the parent's next process) ahead of
     * the fork; the fork then starts no process and only moves device state.
     */
    @Test
    void preparedRemoteForkTakesItsClonesFromThePool() throws Exception {
        ForkableVm parent = idleParentAndHosts("rc-pool", 2);

        double prepareMs = fx.controller.prepareRemote(parent, 2, hosts.hosts);
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 2, hosts.hosts);
        System.out.printf("prepared remote fork: prepare_ms=%.1f fork_ms=%.1f prestart_ms=%.1f pause_ms=%.1f%n",
                prepareMs, r.fork().forkMs(), r.fork().prestartMs(), r.fork().parentPauseMs());
        assertTrue(prepareMs > 50, "preparing starts 3 QEMU processes: " + prepareMs + " ms");
        assertTrue(r.fork().prestartMs() < 20, "the fork took its processes from the pool, started none: "
                + r.fork().prestartMs() + " ms");
        for (ForkableVm clone : r.clones()) {
            clone.identity().get(120, TimeUnit.SECONDS);
            assertEquals("before\n", sh(clone, "cat /tmp/before"), clone.name());
            assertEquals(clone.name(), sh(clone, "hostname").trim());
            assertEquals(RemoteFork.CloneStatus.RUNNING, r.remote().status(clone.name()));
        }
        assertEquals(3, parent.family().members().size(), "members: " + parent.family().members());
    }

    @Test
    void cloneThatFillsFreshMemoryRightAfterTheForkKeepsRunning() throws Exception {
        fillAfterFork(PageServerOptions.defaults());
    }

    /**
     * Regression test for a hang: while zero pages were left out of the background push, this clone
     * stopped 3 times of 3 (see ClonePageSession#nextUnsent). Pushing them as ZERO records avoids it;
     * the root cause is unknown.
     */
    @Test
    void cloneThatFillsFreshMemoryWhilePagesArePushedKeepsRunning() throws Exception {
        fillAfterFork(PageServerOptions.defaults().withBackgroundPush(true));
    }

    private void fillAfterFork(PageServerOptions pageServer) throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withPageServer(pageServer));
        hosts = new RemoteHosts(1);
        ForkableVm parent = fx.startIdle("rc-fill", fx.dataDisk("rc-fill"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        // Fresh guest pages are zero in the snapshot: each first touch is a request answered with a zero page.
        JsonNode out = clone.agent().command("exec", Map.of("argv", List.of("/bin/sh", "-c",
                "dd if=/dev/zero of=/dev/shm/fill bs=1M count=96 2>/dev/null && rm /dev/shm/fill && echo filled")), Duration.ofSeconds(90));
        SessionStats s = r.remote().stats(clone.name());
        System.out.printf("fill %s: %s%n", clone.name(), s);
        assertEquals("filled\n", out.path("stdout").asText(), out.toString());
        assertTrue(s.zeroPagesSent() > 10_000, "fresh memory should have come as zero pages: " + s);
        assertTrue(clone.isRunning());
    }

    @Test
    void backgroundPushMakesACloneIndependentWhileItRuns() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withPageServer(PageServerOptions.defaults().withBackgroundPush(true)));
        hosts = new RemoteHosts(1);
        ForkableVm parent = fx.startDirtier("rc-push", 16, 20000, fx.dataDisk("rc-push"));
        // Fork once the dirtier's working set exists: a clone that faults in fresh memory while pages
        // are pushed can hang (see cloneThatFillsFreshMemoryWhilePagesArePushedKeepsRunning).
        nextDirtierLine(parent.console(), parent.console().mark() + 1);
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        try {
            assertCleanFor(clone, 8);
        } catch (java.util.concurrent.TimeoutException | AssertionError e) {
            throw new AssertionError(e.getMessage() + "; page server: " + r.remote().stats(clone.name()) + ", session "
                    + r.remote().pageServer().session(clone.name()).state() + ", migration " + r.remote().migrationStatus(clone.name())
                    + ", QEMU log: " + clone.process().vm.qemuLogTail(), e);
        }
        SessionStats s = r.remote().stats(clone.name());
        System.out.printf("push %s: %s%n", clone.name(), s);
        assertTrue(s.pagesPushed() > 0, "nothing pushed: " + s);
        assertTrue(s.pagesRequested() > 0, "the clone still asked for the pages it touched first: " + s);
        // Everything non-zero has been sent (or is about to be): the clean end is then only END + EOF.
        r.remote().finish(clone.name()).get(60, TimeUnit.SECONDS);
        assertEquals(RemoteFork.CloneStatus.INDEPENDENT, r.remote().status(clone.name()));
        r.remote().killPageServer();
        assertCleanFor(clone, 4);
        // Nothing is fetched twice: a duplicate page would have made the destination exit.
        assertTrue(clone.isRunning());
        assertEquals(s.pagesRequested() + s.pagesPushed(), s.pagesSent());
    }

    @Test
    void killedPageServerIsReplacedAndTheClonesResumeWithMigrateRecover() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        hosts = new RemoteHosts(2);
        ForkableVm parent = fx.startDirtier("rc-rec", 16, 20000, fx.dataDisk("rc-rec"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 2, hosts.hosts);
        for (ForkableVm c : r.clones()) {
            nextDirtierLine(c.console(), 0);
        }
        r.remote().killPageServer();
        for (ForkableVm c : r.clones()) {
            awaitMigrationStatus(r.remote(), c, "postcopy-paused", 20);
        }
        Thread.sleep(1000);   // the clones wait paused; then a new page server comes up
        r.remote().restartPageServer();
        for (ForkableVm c : r.clones()) {
            awaitStatus(r.remote(), c, RemoteFork.CloneStatus.RUNNING, 20);
        }
        ForkFixture.allCleanFor(List.of(parent, r.clones().get(0), r.clones().get(1)), 10);
        for (ForkableVm c : r.clones()) {
            assertEquals("postcopy-active", c.qmp().execute("query-migrate").path("status").asText());
            System.out.printf("recovered %s: %s%n", c.name(), r.remote().stats(c.name()));
        }
    }

    @Test
    void cloneWhosePageServerNeverComesBackIsReportedFailedAndStopped() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withRemoteRecoverTimeout(Duration.ofSeconds(3)));
        hosts = new RemoteHosts(1);
        ForkableVm parent = fx.startDirtier("rc-gone", 16, 20000, fx.dataDisk("rc-gone"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        nextDirtierLine(clone.console(), 0);
        long pid = clone.pid();

        r.remote().killPageServer();
        long t0 = System.nanoTime();
        r.remote().ended(clone.name()).get(30, TimeUnit.SECONDS);
        double ms = (System.nanoTime() - t0) / 1e6;
        assertEquals(RemoteFork.CloneStatus.FAILED, r.remote().status(clone.name()));
        String why = r.remote().failure(clone.name());
        assertTrue(why.contains(clone.name()) && why.contains("no page server came back"), why);
        assertTrue(ms >= 3000 && ms < 15000, "failed after " + ms + " ms, recover timeout 3000 ms");
        assertFalse(clone.isRunning());
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "clone QEMU " + pid + " still alive");
        assertEquals(-1, clone.exitCode().get(5, TimeUnit.SECONDS));
        assertTrue(parent.isRunning());
        assertCleanFor(parent, 6);
    }

    @Test
    void badPageRequestsFailOnlyTheirOwnConnection() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        hosts = new RemoteHosts(1);
        ForkableVm parent = fx.startDirtier("rc-bad", 16, 20000, fx.dataDisk("rc-bad"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        nextDirtierLine(clone.console(), 0);
        PageServer server = r.remote().pageServer();

        Map<String, byte[]> hostile = new LinkedHashMap<>();
        hostile.put("rc-hostile-block", HostileDestination.requestPagesId("no.such.block", 0, 4096));
        hostile.put("rc-hostile-range", HostileDestination.requestPagesId("pc.ram", 1L << 40, 4096));
        hostile.put("rc-hostile-unaligned", HostileDestination.requestPagesId("pc.ram", 100, 4096));
        hostile.put("rc-hostile-garbage", new byte[] {0x77, 0x77, 0, 4, 1, 2, 3, 4});
        Map<String, String> expected = Map.of(
                "rc-hostile-block", "unknown RAM block 'no.such.block'",
                "rc-hostile-range", "which has 0x10000000 bytes",
                "rc-hostile-unaligned", "page-aligned",
                "rc-hostile-garbage", "message type 30583");
        for (Map.Entry<String, byte[]> h : hostile.entrySet()) {
            try (HostileDestination peer = HostileDestination.listen(h.getValue())) {
                ClonePageSession s = server.serve(h.getKey(), peer.address());
                ExecutionException e = assertThrows(ExecutionException.class, () -> s.completed().get(20, TimeUnit.SECONDS));
                String m = e.getCause().getMessage();
                assertEquals(ClonePageSession.State.FAILED, s.state());
                assertTrue(m.contains(h.getKey()) && m.contains(expected.get(h.getKey())), m);
                System.out.println("hostile: " + m);
            }
        }
        // The real clone and the parent never noticed.
        assertEquals(ClonePageSession.State.SERVING, server.session(clone.name()).state());
        assertEquals(RemoteFork.CloneStatus.RUNNING, r.remote().status(clone.name()));
        ForkFixture.allCleanFor(List.of(parent, clone), 6);
    }
}

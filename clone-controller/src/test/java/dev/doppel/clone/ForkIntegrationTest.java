package dev.doppel.clone;

import static dev.doppel.clone.ForkFixture.assertCleanFor;
import static dev.doppel.clone.ForkFixture.nextDirtierLine;
import static dev.doppel.clone.ForkFixture.sh;
import static dev.doppel.clone.ForkFixture.shStatus;
import static dev.doppel.clone.ForkFixture.writes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.NetNamespace;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.stream.Stream;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** VM fork against real QEMU processes, with the dirtier and the guest agent as oracles. */
@Tag("integration")
@Timeout(420)
class ForkIntegrationTest {
    @TempDir Path tmp;
    @AutoClose ForkFixture fx;

    private ForkFixture fixture() {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        return fx;
    }

    @Test
    void forkWhileDirtierRunsKeepsParentAndClonesCorrectAndCleansUp() throws Exception {
        ForkFixture f = fixture();
        ForkableVm parent = f.startDirtier("fork", 16, 20000, f.dataDisk("fork"));
        Matcher before = nextDirtierLine(parent.console(), parent.console().mark() + 1);
        long writesBeforeFork = writes(before);

        ForkResult r = f.controller.fork(parent, 2);
        assertEquals(2, r.clones().size());
        assertTrue(r.descriptorBytes() > 10_000 && r.descriptorBytes() < 1_000_000, "descriptor " + r.descriptorBytes());

        // Every VM continues from the fork-time state: its counter does not restart.
        for (ForkableVm vm : List.of(parent, r.clones().get(0), r.clones().get(1))) {
            Matcher first = nextDirtierLine(vm.console(), 0);
            assertTrue(writes(first) >= writesBeforeFork, vm.name() + " restarted its counter: " + first.group()
                    + " < " + writesBeforeFork);
        }
        List<CompletableFuture<Long>> watches = new ArrayList<>();
        for (ForkableVm vm : List.of(parent, r.clones().get(0), r.clones().get(1))) {
            watches.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return assertCleanFor(vm, 30);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        for (CompletableFuture<Long> w : watches) {
            assertTrue(w.join() > writesBeforeFork);
        }

        // Clean-up: clones exit, then the parent; nothing may remain.
        Set<Long> pids = new HashSet<>(List.of(parent.pid(), r.clones().get(0).pid(), r.clones().get(1).pid()));
        String netns = parent.family().network().namespace();
        r.clones().forEach(ForkableVm::kill);
        assertTrue(parent.isRunning());
        parent.stop();
        awaitFamilyClosed(parent.family());
        for (long pid : pids) {
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "QEMU " + pid + " still alive");
        }
        assertFalse(NetNamespace.exists(netns), "namespace " + netns + " left behind");
        assertFalse(Files.exists(tmp.resolve("disks").resolve(parent.family().name())), "overlay directory left behind");
        assertFalse(Files.exists(Path.of("/dev/shm/doppel-test").resolve(parent.family().name())), "generation files left");
    }

    @Test
    void memoryDiskAndNetworkAreIsolatedBothWays() throws Exception {
        ForkFixture f = fixture();
        ForkableVm parent = f.startIdle("iso", f.dataDisk("iso"));
        sh(parent, "echo before > /tmp/before && printf BEFORE | dd of=/dev/vda bs=512 seek=100 count=1 conv=fsync,notrunc 2>/dev/null");

        ForkResult r = f.controller.fork(parent, 2);
        ForkableVm c1 = r.clones().get(0);
        ForkableVm c2 = r.clones().get(1);
        c1.identity().get(120, java.util.concurrent.TimeUnit.SECONDS);
        c2.identity().get(120, java.util.concurrent.TimeUnit.SECONDS);

        // Parent's writes after the fork reach neither clone.
        sh(parent, "echo after > /tmp/after && printf PARENT | dd of=/dev/vda bs=512 seek=100 count=1 conv=fsync,notrunc 2>/dev/null");
        for (ForkableVm c : List.of(c1, c2)) {
            assertEquals("before\n", sh(c, "cat /tmp/before"));
            assertNotEquals(0, shStatus(c, "test -e /tmp/after"), c.name() + " sees the parent's later file");
            assertEquals("BEFORE", readSector(c, 100), c.name() + " sees the parent's later disk write");
        }
        // A clone's writes reach neither the parent nor its sibling.
        sh(c1, "echo mine > /tmp/c1 && printf CLONE1 | dd of=/dev/vda bs=512 seek=200 count=1 conv=fsync,notrunc 2>/dev/null");
        for (ForkableVm other : List.of(parent, c2)) {
            assertNotEquals(0, shStatus(other, "test -e /tmp/c1"), other.name() + " sees clone 1's file");
            assertNotEquals("CLONE1", readSector(other, 200), other.name() + " sees clone 1's disk write");
        }
        assertEquals("PARENT", readSector(parent, 100));

        // Identity: derived addresses and hostnames, each clone its own.
        assertEquals(c1.address().ip(), sh(c1, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").trim());
        assertEquals(c1.address().mac(), sh(c1, "cat /sys/class/net/eth0/address").trim());
        assertEquals(c1.name(), sh(c1, "hostname").trim());
        // Fresh entropy per clone: without the agent's reseed both would continue the parent's RNG state.
        String random1 = sh(c1, "head -c 16 /dev/urandom | od -An -tx1");
        String random2 = sh(c2, "head -c 16 /dev/urandom | od -An -tx1");
        assertNotEquals(random1, random2, "two clones produced the same random bytes");
        assertNotEquals(sh(c1, "hostname"), sh(c2, "hostname"));

        // Clone network: clones reach the parent and each other by derived IPs ...
        sh(c1, "ping -c 2 -W 3 " + parent.address().ip() + " >/dev/null");
        sh(c2, "ping -c 2 -W 3 " + c1.address().ip() + " >/dev/null");
        sh(parent, "ping -c 2 -W 3 " + c2.address().ip() + " >/dev/null");
        // ... but nothing outside: a test host reachable from the host's namespace is not reachable from a clone.
        try (NetNamespace outside = NetNamespace.create("dpt-out-" + ProcessHandle.current().pid())) {
            String hostSide = "dpto" + (ProcessHandle.current().pid() % 100000);
            HostCommand.run("ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", outside.name());
            try {
                HostCommand.run("ip", "addr", "add", "10.79.0.1/24", "dev", hostSide);
                HostCommand.run("ip", "link", "set", hostSide, "up");
                outside.address("eth0", "10.79.0.2/24");
                HostCommand.run("ping", "-c", "1", "-W", "3", "10.79.0.2");   // the host can
                assertNotEquals(0, shStatus(c1, "ping -c 2 -W 2 10.79.0.2 >/dev/null 2>&1"), "a clone reached outside its network");
            } finally {
                HostCommand.tryRun(List.of("ip", "link", "del", hostSide));
            }
        }
    }

    @Test
    void secondGenerationForksWork() throws Exception {
        ForkFixture f = fixture();
        ForkableVm root = f.startDirtier("gen2", 8, 5000, f.dataDisk("gen2"));
        ForkResult first = f.controller.fork(root, 1);
        ForkableVm child = first.clones().get(0);
        nextDirtierLine(child.console(), 0);

        ForkResult grand = f.controller.fork(child, 1);           // a clone forks (reshare first)
        ForkResult second = f.controller.fork(root, 1);           // the parent forks again
        List<ForkableVm> all = List.of(root, child, grand.clones().get(0), second.clones().get(0));
        Set<String> ips = new HashSet<>();
        for (ForkableVm vm : all) {
            assertTrue(ips.add(vm.address().ip()), "duplicate address " + vm.address());
        }
        List<CompletableFuture<Long>> watches = new ArrayList<>();
        for (ForkableVm vm : all) {
            watches.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return assertCleanFor(vm, 15);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        watches.forEach(CompletableFuture::join);
    }

    @Test
    void badForkRequestsLeaveTheParentRunning() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withCloneExtraArguments("-device", "no-such-device-for-clones"));
        ForkFixture f = fx;
        ForkableVm parent = f.startIdle("bad", f.dataDisk("bad"));

        assertThrows(IllegalArgumentException.class, () -> f.controller.fork(parent, 0));
        assertThrows(IllegalArgumentException.class, () -> f.controller.fork(parent, -3));
        IllegalArgumentException tooMany = assertThrows(IllegalArgumentException.class, () -> f.controller.fork(parent, 17));
        assertTrue(tooMany.getMessage().contains("1..16"), tooMany.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> f.controller.fork("no-such-vm", 1));
        assertTrue(unknown.getMessage().contains("no-such-vm"), unknown.getMessage());

        parent.qmp().execute("stop");
        ForkException paused = assertThrows(ForkException.class, () -> f.controller.fork(parent, 1));
        assertTrue(paused.getMessage().contains("paused"), paused.getMessage());
        parent.qmp().execute("cont");

        long pid = parent.pid();
        ForkException broken = assertThrows(ForkException.class, () -> f.controller.fork(parent, 2));
        assertTrue(broken.getMessage().contains(parent.name()) && broken.getMessage().contains("no-such-device"), broken.getMessage());
        assertEquals(pid, parent.pid(), "a failed pre-start must not touch the parent's process");
        assertEquals("running", parent.qmp().execute("query-status").path("status").asText());
        assertEquals("ok\n", sh(parent, "echo ok"));
        assertEquals(1, f.controller.list().size(), "no clone may be left: " + f.controller.list());
        try (Stream<Path> overlays = Files.list(tmp.resolve("disks").resolve(parent.family().name()))) {
            assertEquals(0, overlays.count(), "overlays of failed clones left behind");
        }
    }

    /** Reads the start of a sector with the guest's page cache dropped, so the disk answers. */
    private static String readSector(ForkableVm vm, int sector) throws Exception {
        return sh(vm, "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=" + sector + " count=1 2>/dev/null | head -c 6");
    }

    private static void awaitFamilyClosed(ForkFamily family) throws InterruptedException {
        for (int i = 0; i < 200 && !family.isClosed(); i++) {
            Thread.sleep(50);
        }
        assertTrue(family.isClosed(), "family did not close after its last member ended");
        try (Stream<Path> s = Files.list(Path.of("/dev/shm"))) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(family.name())));
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }
}

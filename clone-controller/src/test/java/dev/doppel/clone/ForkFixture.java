package dev.doppel.clone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.ConsoleLog;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.testing.TestVms;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Helpers shared by the fork tests: a controller, forkable guests, the dirtier oracle, agent exec. */
final class ForkFixture implements AutoCloseable {
    static final Pattern DIRTIER = Pattern.compile("dirtier t=(\\d+) writes=(\\d+) passes=(\\d+) rate=(\\d+) corrupt=(\\d+)");

    final CloneController controller;
    final Path workDir;
    private final List<String> families = new java.util.ArrayList<>();

    ForkFixture(Path workDir, ForkOptions options) {
        this.workDir = workDir;
        this.controller = new CloneController(TestVms.launcher(), options
                .withKeepOverlays(false));
    }

    static ForkOptions options(Path tmp) {
        ForkOptions d = ForkOptions.defaults();
        return new ForkOptions(16, Path.of("/dev/shm/doppel-test"), tmp.resolve("disks"), true, false, 64, d.stepTimeout());
    }

    /** A data disk with known contents: 64 MiB qcow2. */
    Path dataDisk(String name) {
        Path img = workDir.resolve(name + ".qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", img.toString(), "64M");
        return img;
    }

    ForkableVm startDirtier(String prefix, int mb, int rate, Path disk) throws TimeoutException {
        VmSpec spec = new TestVms().guestSpec(prefix, "dirtier",
                Map.of("doppel.dirty_mb", Integer.toString(mb), "doppel.dirty_rate", Integer.toString(rate))).build();
        ForkableVm vm = controller.start(spec, disk, "qcow2");
        families.add(vm.family().name());
        vm.console().awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
        return vm;
    }

    ForkableVm startIdle(String prefix, Path disk) throws TimeoutException {
        return startIdle(prefix, disk, false);
    }

    /** An idle guest, optionally with a balloon that reports free pages (they then read as zero). */
    ForkableVm startIdle(String prefix, Path disk, boolean freePageReporting) throws TimeoutException {
        VmSpec spec = new TestVms().guestSpec(prefix, "none", Map.of()).freePageReporting(freePageReporting).build();
        ForkableVm vm = controller.start(spec, disk, "qcow2");
        families.add(vm.family().name());
        vm.console().awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
        return vm;
    }

    /** Boots a forkable guest running {@code workload} with extra parameters; waits for DOPPEL-READY. */
    ForkableVm startWorkload(String prefix, String workload, Map<String, String> params, Path disk) throws TimeoutException {
        VmSpec spec = new TestVms().guestSpec(prefix, workload, params).build();
        ForkableVm vm = controller.start(spec, disk, "qcow2");
        families.add(vm.family().name());
        vm.console().awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
        return vm;
    }

    /** Waits for a console line of {@code vm} (its whole history, across forks and reshares). */
    static Matcher awaitFollowing(ForkableVm vm, Pattern pattern, Duration timeout) throws TimeoutException {
        return vm.console().awaitMatch(pattern, 0, timeout);
    }

    /** A qcow2 data disk holding the parallel-sum data set (see {@link ExampleDataSet}). */
    Path dataSetDisk(String name, int count) throws Exception {
        Path img = workDir.resolve(name + ".qcow2");
        ExampleDataSet.writeQcow2(img, count);
        return img;
    }

    /** The next dirtier status line at or after console index {@code from}. */
    static Matcher nextDirtierLine(ConsoleLog console, int from) throws TimeoutException {
        return console.awaitMatch(DIRTIER, from, Duration.ofSeconds(60));
    }

    static long writes(Matcher m) {
        return Long.parseLong(m.group(2));
    }

    /**
     * Watches a VM's dirtier for {@code seconds}: it must keep printing status lines with
     * corrupt=0 and no CORRUPT line. Returns the last write counter.
     */
    static long assertCleanFor(ForkableVm vm, int seconds) throws TimeoutException {
        long end = System.nanoTime() + Duration.ofSeconds(seconds).toNanos();
        ConsoleLog console = vm.console();
        int from = console.mark();
        long last = -1;
        int lines = 0;
        while (System.nanoTime() < end) {
            Matcher m = console.awaitMatch(DIRTIER, from, Duration.ofSeconds(30));
            assertEquals("0", m.group(5), vm.name() + ": " + m.group());
            assertTrue(writes(m) >= last, vm.name() + ": write counter went backwards: " + m.group());
            last = writes(m);
            from = console.mark();
            lines++;
        }
        assertTrue(lines >= seconds / 3, vm.name() + ": too few dirtier lines (" + lines + ") in " + seconds + " s");
        assertNoCorruptLine(vm, console);
        return last;
    }

    private static void assertNoCorruptLine(ForkableVm vm, ConsoleLog console) {
        for (String l : console.lines()) {
            assertTrue(!l.startsWith("CORRUPT"), vm.name() + " reported " + l);
        }
    }

    /** Watches every VM's dirtier for {@code seconds} in parallel (each must stay clean); their last write counts. */
    static List<Long> allCleanFor(List<ForkableVm> vms, int seconds) {
        List<CompletableFuture<Long>> watches = new ArrayList<>();
        for (ForkableVm vm : vms) {
            watches.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return assertCleanFor(vm, seconds);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        return watches.stream().map(CompletableFuture::join).toList();
    }

    /** Runs a shell command in the guest through the agent; returns stdout; asserts exit 0. */
    static String sh(ForkableVm vm, String script) throws Exception {
        JsonNode r = vm.agent().command("exec", Map.of("argv", List.of("/bin/sh", "-c", script)), Duration.ofSeconds(60));
        assertEquals(0, r.path("exit").asInt(-1), vm.name() + ": '" + script + "' failed: " + r);
        return r.path("stdout").asText();
    }

    /** Exit code of a guest shell command (no assertion). */
    static int shStatus(ForkableVm vm, String script) throws Exception {
        JsonNode r = vm.agent().command("exec", Map.of("argv", List.of("/bin/sh", "-c", script)), Duration.ofSeconds(60));
        return r.path("exit").asInt(-1);
    }

    @Override
    public void close() throws Exception {
        controller.close();
        // Whatever the test did, closing the controller must leave no generation file, overlay or namespace.
        for (String family : families) {
            assertTrue(!Files.exists(Path.of("/dev/shm/doppel-test", family)), "generation files of " + family + " left");
            assertTrue(!Files.exists(workDir.resolve("disks").resolve(family)), "overlays of " + family + " left");
            assertTrue(!dev.doppel.hostnet.NetNamespace.exists("dpf-" + family), "namespace of " + family + " left");
        }
    }
}

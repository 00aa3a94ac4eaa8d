package dev.doppel.cli.bench;

import dev.doppel.clone.CloneController;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.ForkResult;
import dev.doppel.clone.ForkableVm;
import dev.doppel.clone.memory.MappingRss;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.MemorySize;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel bench fork}: fork a parent running the dirtier into N clones and measure the fork,
 * the parent's pause and what each clone's guest RAM costs 10 s later; beside it, in the same run,
 * the baseline of a full suspend/copy/resume of an identical VM (SnowFlock's Figure 2 alternative).
 */
@Command(name = "fork", description = "VM fork latency, parent pause and clone memory vs. a full suspend/copy/resume.")
public final class ForkBench implements Callable<Integer> {
    private static final Pattern DIRTIER = Pattern.compile("dirtier t=\\d+ writes=(\\d+) .* corrupt=(\\d+)");

    @Option(names = "--clones", defaultValue = "8", description = "number of clones (default ${DEFAULT-VALUE})") int clones;
    @Option(names = "--mem", defaultValue = "512M", description = "guest RAM, e.g. 512M, 1G (default ${DEFAULT-VALUE})") String mem;
    @Option(names = "--dirty-mb", defaultValue = "16", description = "dirtier working set in MiB (default ${DEFAULT-VALUE})") int dirtyMb;
    @Option(names = "--dirty-rate", defaultValue = "1000", description = "dirtier pages/s per VM (default ${DEFAULT-VALUE})") int dirtyRate;
    @Option(names = "--settle", defaultValue = "10", description = "seconds after the fork before reading clone RSS (default ${DEFAULT-VALUE})") int settleSeconds;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        long memMiB = MemorySize.mib(mem);
        VmLauncher launcher = VmLauncher.create(accel.forced());
        GuestImage guest = GuestImage.locate();
        Path work = Files.createTempDirectory("doppel-bench-fork");
        Map<String, String> params = Map.of("doppel.dirty_mb", Integer.toString(dirtyMb), "doppel.dirty_rate", Integer.toString(dirtyRate));
        String tag = Long.toString(ProcessHandle.current().pid());
        try {
            progress("baseline: full suspend/copy/resume of an identical VM");
            double baselineMs = baseline(launcher, guest, params, memMiB, work, tag);

            ForkOptions options = ForkOptions.defaults().withMaxClones(Math.max(clones, 1)).withReshareAfterFork(false);
            try (CloneController controller = new CloneController(launcher, options)) {
                Path disk = work.resolve("parent.qcow2");
                HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
                VmSpec spec = VmLauncher.guestSpec("bf" + tag, guest, "dirtier", params).memoryMiB(memMiB).build();
                progress("booting the parent (" + memMiB + " MiB, dirtier " + dirtyMb + " MiB at " + dirtyRate + " pages/s)");
                ForkableVm parent = controller.start(spec, disk, "qcow2");
                parent.console().awaitLine(DIRTIER, Duration.ofSeconds(180));
                progress("pre-starting " + (clones + 1) + " QEMU processes");
                double prestartMs = controller.prepare(parent, clones);
                progress("forking into " + clones + " clones");
                long forkStart = System.nanoTime();
                ForkResult r = controller.fork(parent, clones);
                long forkEnd = forkStart + (long) (r.forkMs() * 1e6);
                progress("fork done in " + Math.round(r.forkMs()) + " ms; clones get their identities, then "
                        + settleSeconds + " s after the fork the clones' memory is read");
                int identities = 0;
                for (ForkableVm c : r.clones()) {
                    try {
                        c.identity().get(120, java.util.concurrent.TimeUnit.SECONDS);
                        identities++;
                    } catch (Exception e) {
                        progress("clone " + c.name() + ": " + e.getMessage());
                    }
                }
                double identityMs = (System.nanoTime() - forkStart) / 1e6;
                long settleLeft = forkEnd + settleSeconds * 1_000_000_000L - System.nanoTime();
                if (settleLeft > 0) {
                    Thread.sleep(settleLeft / 1_000_000);
                }

                List<Long> rss = new ArrayList<>();
                List<Long> dirty = new ArrayList<>();
                int running = 0;
                long corrupt = 0;
                for (ForkableVm c : r.clones()) {
                    MappingRss m = MappingRss.of(c.pid(), "/gen-");
                    rss.add(m.rssKiB());
                    dirty.add(m.privateDirtyKiB());
                    var status = c.console().lines().stream().map(DIRTIER::matcher).filter(java.util.regex.Matcher::find).toList();
                    if (!status.isEmpty()) {
                        running++;
                        corrupt += Long.parseLong(status.get(status.size() - 1).group(2));
                    }
                }
                Percentiles rssP = new Percentiles(rss.stream().mapToLong(Long::longValue).toArray(), rss.size());
                Percentiles dirtyP = new Percentiles(dirty.stream().mapToLong(Long::longValue).toArray(), dirty.size());
                double perCloneBaseline = baselineMs;
                new BenchReport("VM fork: " + clones + " clones of a " + memMiB + " MiB guest (dirtier " + dirtyMb + " MiB @ "
                        + dirtyRate + " pages/s)")
                        .note("accelerator", launcher.accelerator())
                        .note("qemu", launcher.qemu().version())
                        .figure("clones", "clones", clones)
                        .figure("mem_mib", "guest RAM (MiB)", memMiB)
                        .figure("prestart_ms", "pre-start of N+1 processes, before the request (ms)", round(prestartMs))
                        .figure("parent_pause_ms", "parent pause, stop → running (ms)", round(r.parentPauseMs()))
                        .figure("fork_ms", "fork request → all clones running (ms)", round(r.forkMs()))
                        .figure("descriptor_bytes", "VM descriptor (bytes)", r.descriptorBytes())
                        .figure("identity_all_ms", "fork request → every clone has its own MAC/IP (ms)", round(identityMs))
                        .figure("identities_applied", "clones with their own identity", identities)
                        .figure("clone_rss_mib_p50", "clone guest-RAM RSS p50, " + settleSeconds + " s after the fork (MiB)", round(rssP.at(50) / 1024.0))
                        .figure("clone_rss_mib_max", "clone guest-RAM RSS max (MiB)", round(rssP.at(100) / 1024.0))
                        .figure("clone_private_mib_p50", "clone private (CoW) pages p50 (MiB)", round(dirtyP.at(50) / 1024.0))
                        .figure("clones_running", "clones whose dirtier reported", running)
                        .figure("corrupt", "CORRUPT reports in clones", corrupt)
                        .figure("baseline_ms", "baseline: one full suspend/copy/resume (ms)", round(baselineMs))
                        .figure("baseline_n_ms", "baseline × N clones (ms)", round(perCloneBaseline * clones))
                        .figure("speedup_vs_baseline", "speed-up: baseline × N ÷ fork", round(perCloneBaseline * clones / r.forkMs()))
                        .figure("accel", "accel", launcher.accelerator().accelerator().qemuName())
                        .print(System.out);
            }
        } finally {
            dev.doppel.vm.FileTrees.deleteRecursively(work);
        }
        return 0;
    }

    /**
     * Stop an identical VM, write its whole state (all RAM) to a file, start a new QEMU that loads
     * it and runs: the classic way to copy a VM. Returns stop → copy running in ms.
     */
    private static double baseline(VmLauncher launcher, GuestImage guest, Map<String, String> params, long memMiB, Path work,
                                   String tag) throws Exception {
        VmSpec spec = VmLauncher.guestSpec("bb" + tag, guest, "dirtier", params).memoryMiB(memMiB)
                .nic("net0", "52:54:00:77:ff:01", new NicSpec.Netdev.User()).build();
        VmSpec copySpec = spec.toBuilder().name("bb" + tag + "-copy").incomingDefer(true).startPaused(true).build();
        Path state = work.resolve("full.state");
        try (VmProcess original = launcher.start(spec); VmProcess copy = launcher.start(copySpec)) {
            original.console().awaitLine(DIRTIER, Duration.ofSeconds(180));
            long t0 = System.nanoTime();
            original.qmp().execute("stop");
            migrate(original, "file:" + state, false);
            migrate(copy, "file:" + state, true);
            copy.qmp().execute("cont");
            double ms = (System.nanoTime() - t0) / 1e6;
            copy.console().awaitLine(DIRTIER, Duration.ofSeconds(60));
            return ms;
        }
    }

    private static void migrate(VmProcess vm, String uri, boolean incoming) throws InterruptedException {
        vm.qmp().execute(incoming ? "migrate-incoming" : "migrate", Map.of("uri", uri));
        while (true) {
            String status = vm.qmp().execute("query-migrate").path("status").asText();
            if (status.equals("completed")) {
                return;
            }
            if (status.equals("failed") || status.equals("cancelled")) {
                throw new IllegalStateException("baseline migration " + status + " on " + vm.name());
            }
            Thread.sleep(2);
        }
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }

    private static void progress(String s) {
        System.err.println("[bench fork] " + s);
    }
}

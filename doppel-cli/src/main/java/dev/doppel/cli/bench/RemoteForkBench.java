package dev.doppel.cli.bench;

import dev.doppel.cli.AccelOption;
import dev.doppel.clone.CloneController;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.ForkableVm;
import dev.doppel.clone.RemoteFork;
import dev.doppel.clone.RemoteForkService;
import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel bench fork-remote}: fork a parent running the dirtier into N clones on other hosts
 * (network namespaces created for the run), fed by the page server; after a settle time, how many
 * pages each clone fetched and how many bytes went over the wire.
 *
 * <p>With multicast (the default) {@code bytes_on_wire} is what crossed the network between the
 * origin and the hosts: each page datagram once, the requests, one descriptor per host. {@code
 * bytes_on_wire_unicast} is what the clones' page-server sessions carried in the same run: the very
 * streams the origin sends each clone by unicast (the clones ask for the same pages either way).
 * {@code --unicast} runs without multicast; then the two are equal.
 */
@Command(name = "fork-remote", description = "Remote fork: clones on other hosts fetch pages from the page server.")
public final class RemoteForkBench implements Callable<Integer> {
    private static final Pattern DIRTIER = Pattern.compile("dirtier t=\\d+ writes=(\\d+) .* corrupt=(\\d+)");

    @Option(names = "--clones", defaultValue = "2", description = "number of clones (default ${DEFAULT-VALUE})") int clones;
    @Option(names = "--mem", defaultValue = "256M", description = "guest RAM, e.g. 256M, 1G (default ${DEFAULT-VALUE})") String mem;
    @Option(names = "--hosts", defaultValue = "2", description = "other hosts (network namespaces) (default ${DEFAULT-VALUE})") int hostCount;
    @Option(names = "--dirty-mb", defaultValue = "16", description = "dirtier working set in MiB (default ${DEFAULT-VALUE})") int dirtyMb;
    @Option(names = "--dirty-rate", defaultValue = "1000", description = "dirtier pages/s per VM (default ${DEFAULT-VALUE})") int dirtyRate;
    @Option(names = "--unicast", description = "serve every clone from this host by unicast (no multicast)") boolean unicast;
    @Option(names = "--prepare", description = "start the clones' QEMUs on their hosts before the fork request (the pool), as `bench fork` does") boolean prepare;
    @Option(names = "--settle", defaultValue = "10", description = "seconds after the fork before reading the counters (default ${DEFAULT-VALUE})") int settleSeconds;
    @Mixin AccelOption accel;

    @Override
    public Integer call() throws Exception {
        long memMiB = MemorySize.mib(mem);
        VmLauncher launcher = VmLauncher.create(accel.forced());
        GuestImage guest = GuestImage.locate();
        Path work = Files.createTempDirectory("doppel-bench-fork-remote");
        String tag = Long.toString(ProcessHandle.current().pid());
        List<RemoteHost> hosts = new ArrayList<>();
        try {
            for (int i = 0; i < hostCount; i++) {
                hosts.add(RemoteHost.create("dpr-bench-" + (char) ('a' + i) + "-" + tag));
            }
            ForkOptions options = ForkOptions.defaults().withMaxClones(Math.max(clones, 1)).withReshareAfterFork(false)
                    .withPageServer(PageServerOptions.defaults().withMulticast(!unicast));
            try (CloneController controller = new CloneController(launcher, options)) {
                Path disk = work.resolve("parent.qcow2");
                HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
                VmSpec spec = VmLauncher.guestSpec("rc-bench" + tag, guest, "dirtier", Map.of(
                        "doppel.dirty_mb", Integer.toString(dirtyMb), "doppel.dirty_rate", Integer.toString(dirtyRate)))
                        .memoryMiB(memMiB).build();
                progress("booting the parent (" + memMiB + " MiB, dirtier " + dirtyMb + " MiB at " + dirtyRate + " pages/s)");
                ForkableVm parent = controller.start(spec, disk, "qcow2");
                parent.console().awaitLine(DIRTIER, Duration.ofSeconds(180));
                double prepareMs = 0;
                if (prepare) {
                    progress("starting the clones' QEMUs on their hosts ahead of the fork");
                    prepareMs = controller.prepareRemote(parent, clones, hosts);
                }
                progress("forking into " + clones + " clones on " + hostCount + " hosts");
                long request = System.nanoTime();
                RemoteForkService.RemoteForkResult r = controller.forkRemote(parent, clones, hosts);
                RemoteFork remote = r.remote();
                long firstRun = Long.MAX_VALUE;
                for (ForkableVm c : r.clones()) {
                    firstRun = Math.min(firstRun, remote.runningSinceNanos(c.name()));
                }
                progress("fork done in " + Math.round(r.fork().forkMs()) + " ms; watching " + settleSeconds + " s");
                Thread.sleep(settleSeconds * 1000L);

                long[] fetched = new long[r.clones().size()];
                long bytes = 0;
                int running = 0;
                long corrupt = 0;
                for (int i = 0; i < fetched.length; i++) {
                    ForkableVm c = r.clones().get(i);
                    SessionStats s = remote.stats(c.name());
                    fetched[i] = s.pagesSent();
                    bytes += s.bytesOnWire();
                    List<Matcher> status = c.console().lines().stream().map(DIRTIER::matcher).filter(Matcher::find).toList();
                    if (!status.isEmpty()) {
                        running++;
                        corrupt += Long.parseLong(status.get(status.size() - 1).group(2));
                    }
                }
                Percentiles p = new Percentiles(fetched.clone(), fetched.length);
                long wire = remote.multicast() == null ? bytes : remote.multicast().bytesOnWire();
                long totalPages = remote.totalPages();
                new BenchReport("Remote fork: " + clones + " clones of a " + memMiB + " MiB guest on " + hostCount
                        + " hosts (dirtier " + dirtyMb + " MiB @ " + dirtyRate + " pages/s), " + settleSeconds + " s")
                        .note("accelerator", launcher.accelerator())
                        .note("qemu", launcher.qemu().version())
                        .note("multicast", unicast ? "off (--unicast): every clone served from this host"
                                : "on: each host's clones served by that host's page cache, filled by multicast")
                        .figure("clones", "clones", clones)
                        .figure("mem_mib", "guest RAM (MiB)", memMiB)
                        .figure("prepared", "clone QEMUs started before the request (--prepare)", prepare)
                        .figure("prepare_ms", "starting them ahead of the fork (ms; not in fork_ms)", round(prepareMs))
                        .figure("fork_ms", "fork request → all clones running (ms)", round(r.fork().forkMs()))
                        .figure("prestart_ms", "of which starting the clones' QEMUs (ms)", round(r.fork().prestartMs()))
                        .figure("parent_pause_ms", "parent pause (ms)", round(r.fork().parentPauseMs()))
                        .figure("first_run_ms", "request → first clone running (ms)", round((firstRun - request) / 1e6))
                        .figure("pages_fetched_p50", "pages fetched per clone p50", p.at(50))
                        .figure("pages_fetched_max", "pages fetched per clone max", p.at(100))
                        .figure("ram_pages", "guest pages in the snapshot", totalPages)
                        .figure("bytes_on_wire", "bytes between this host and the clone hosts", wire)
                        .figure("bytes_on_wire_unicast", "bytes of the clones' page-server sessions (= unicast)", bytes)
                        .figure("multicast_saving", "unicast ÷ multicast bytes", Math.round(100.0 * bytes / wire) / 100.0)
                        .figure("clones_running", "clones whose dirtier reported", running)
                        .figure("corrupt", "CORRUPT reports in clones", corrupt)
                        .figure("accel", "accel", launcher.accelerator().accelerator().qemuName())
                        .print(System.out);
            }
        } finally {
            for (RemoteHost h : hosts) {
                h.close();
            }
            dev.doppel.vm.FileTrees.deleteRecursively(work);
        }
        return 0;
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }

    private static void progress(String s) {
        System.err.println("[bench fork-remote] " + s);
    }
}

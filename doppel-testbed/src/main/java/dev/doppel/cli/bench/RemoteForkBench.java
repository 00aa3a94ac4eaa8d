package dev.doppel.cli.bench;

import dev.doppel.clone.CloneController;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.ForkableVm;
import dev.doppel.clone.RemoteFork;
import dev.doppel.clone.RemoteForkService;
import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.MemorySize;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
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
 *
 * <p>{@code --tls DIR | --insecure} as for every link between hosts. Unless {@code --no-tls-compare},
 * the same fork runs a second time with the links the other way (a second parent, after the first
 * fork's VMs are gone), and the report gives both clone start latencies ({@code first_run_ms_plain},
 * {@code first_run_ms_tls}) and their difference. Before a fork with TLS the JVM does one loopback
 * handshake ({@code tls_first_handshake_ms}): its first one loads the TLS stack, once per controller.
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
    @Option(names = "--tls-compare", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "also run the same fork with the page server's links the other way (plain if --tls, mutual TLS"
                    + " with a CA made for the run if --insecure) and report both clone start latencies (default on)")
    boolean compareTls;
    @Mixin BenchTlsOption tlsOption;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        long memMiB = MemorySize.mib(mem);
        PeerTls tls = tlsOption.load();
        VmLauncher launcher = VmLauncher.create(accel.forced());
        GuestImage guest = GuestImage.locate();
        Path work = Files.createTempDirectory("doppel-bench-fork-remote");
        String tag = Long.toString(ProcessHandle.current().pid());
        List<RemoteHost> hosts = new ArrayList<>();
        try {
            for (int i = 0; i < hostCount; i++) {
                hosts.add(RemoteHost.create("dpr-bench-" + (char) ('a' + i) + "-" + tag));
            }
            Phase main = phase(launcher, guest, work, hosts, memMiB, tls, "rc-bench" + tag, settleSeconds);
            // The same fork with the page server's links the other way (TLS or plain), after the first
            // fork's VMs are gone, so that both latencies come from one run on one machine.
            Phase other = null;
            if (compareTls) {
                PeerTls otherTls = tls.secure() ? PeerTls.INSECURE : runCa(work);
                progress("the same fork " + (otherTls.secure() ? "with" : "without") + " mutual TLS, for comparison");
                other = phase(launcher, guest, work, hosts, memMiB, otherTls, "rc-bencht" + tag, Math.min(settleSeconds, 3));
            }
            PageFigures m = main.figures();
            Percentiles p = new Percentiles(m.fetched().clone(), m.fetched().length);
            long wire = m.wire();
            BenchReport report = new BenchReport("Remote fork: " + clones + " clones of a " + memMiB + " MiB guest on " + hostCount
                    + " hosts (dirtier " + dirtyMb + " MiB @ " + dirtyRate + " pages/s), " + settleSeconds + " s")
                    .note("accelerator", launcher.accelerator())
                    .note("qemu", launcher.qemu().version())
                    .note("multicast", unicast ? "off (--unicast): every clone served from this host"
                            : "on: each host's clones served by that host's page cache, filled by multicast")
                    .note("page server links", tls)
                    .figure("clones", "clones", clones)
                    .figure("mem_mib", "guest RAM (MiB)", memMiB)
                    .figure("tls", "page server links over mutual TLS", tls.secure())
                    .figure("prepared", "clone QEMUs started before the request (--prepare)", prepare)
                    .figure("prepare_ms", "starting them ahead of the fork (ms; not in fork_ms)", round(main.prepareMs()))
                    .figure("fork_ms", "fork request → all clones running (ms)", round(main.forkMs()))
                    .figure("prestart_ms", "of which starting the clones' QEMUs (ms)", round(main.prestartMs()))
                    .figure("parent_pause_ms", "parent pause (ms)", round(main.parentPauseMs()))
                    .figure("first_run_ms", "request → first clone running (ms)", round(main.firstRunMs()))
                    .figure("pages_fetched_p50", "pages fetched per clone p50", p.at(50))
                    .figure("pages_fetched_max", "pages fetched per clone max", p.at(100))
                    .figure("ram_pages", "guest pages in the snapshot", m.totalPages())
                    .figure("bytes_on_wire", "bytes between this host and the clone hosts", wire)
                    .figure("bytes_on_wire_unicast", "bytes of the clones' page-server sessions (= unicast)", m.bytes())
                    .figure("multicast_saving", "unicast ÷ multicast bytes", Math.round(100.0 * m.bytes() / wire) / 100.0)
                    .figure("clones_running", "clones whose dirtier reported", m.running())
                    .figure("corrupt", "CORRUPT reports in clones", m.corrupt());
            if (other != null) {
                Phase plain = tls.secure() ? other : main;
                Phase secure = tls.secure() ? main : other;
                report.figure("fork_ms_plain", "plain TCP: fork request → all clones running (ms)", round(plain.forkMs()))
                        .figure("fork_ms_tls", "mutual TLS: fork request → all clones running (ms)", round(secure.forkMs()))
                        .figure("first_run_ms_plain", "plain TCP: request → first clone running (ms)", round(plain.firstRunMs()))
                        .figure("first_run_ms_tls", "mutual TLS: request → first clone running (ms)", round(secure.firstRunMs()))
                        .figure("prestart_ms_plain", "plain TCP: starting the clones' QEMUs (ms)", round(plain.prestartMs()))
                        .figure("prestart_ms_tls", "mutual TLS: starting the clones' QEMUs, credentials included (ms)",
                                round(secure.prestartMs()))
                        .figure("tls_first_run_cost_ms", "mutual TLS cost on the first clone's start (ms)",
                                round(secure.firstRunMs() - plain.firstRunMs()))
                        .figure("tls_fork_cost_ms", "mutual TLS cost on the whole fork (ms)", round(secure.forkMs() - plain.forkMs()))
                        .figure("tls_first_handshake_ms", "the JVM's first TLS handshake, paid before the timed fork (ms)",
                                round(secure.firstHandshakeMs()))
                        .figure("clones_running_" + (other.tls().secure() ? "tls" : "plain"), "clones whose dirtier reported"
                                + " in the comparison", other.figures().running())
                        .figure("corrupt_" + (other.tls().secure() ? "tls" : "plain"), "CORRUPT reports in the comparison",
                                other.figures().corrupt());
            }
            report.figure("accel", "accel", launcher.accelerator().accelerator().qemuName()).print(System.out);
        } finally {
            for (RemoteHost h : hosts) {
                h.close();
            }
            dev.doppel.vm.FileTrees.deleteRecursively(work);
        }
        return 0;
    }

    /** What one fork measured. */
    private record Phase(PeerTls tls, double prepareMs, double forkMs, double prestartMs, double parentPauseMs, double firstRunMs,
                         PageFigures figures, double firstHandshakeMs) {
    }

    /** The page counters of one fork's clones after the settle time. */
    private record PageFigures(long[] fetched, long bytes, long wire, long totalPages, int running, long corrupt) {
    }

    /** A CA and a host certificate made for the run (removed with the work directory). */
    private static PeerTls runCa(Path work) throws IOException {
        Path pki = work.resolve("pki");
        Pki.init(pki, "bench CA");
        return PeerTls.load(Pki.issue(pki, "bench-host"));
    }

    /**
     * One loopback handshake with {@code tls} at both ends; returns its time in ms. The JVM's first
     * handshake loads and compiles the TLS stack (hundreds of ms on a busy 2-core machine), which a
     * controller pays once, not per fork.
     */
    private static double warmUp(PeerTls tls) throws Exception {
        long t0 = System.nanoTime();
        try (ServerSocket ss = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CompletableFuture<Void> server = CompletableFuture.runAsync(() -> {
                try (Socket s = tls.server(ss.accept(), "bench warm-up")) {
                    s.getOutputStream().write(1);
                    s.getOutputStream().flush();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            try (Socket s = tls.client(new Socket(InetAddress.getLoopbackAddress(), ss.getLocalPort()),
                    "bench warm-up")) {
                if (s.getInputStream().read() != 1) {
                    throw new IOException("TLS warm-up: no byte from the loopback server");
                }
            }
            server.get(30, TimeUnit.SECONDS);
        }
        return (System.nanoTime() - t0) / 1e6;
    }

    /** Boots a parent running the dirtier, forks it onto {@code hosts} with {@code tls}, watches, then stops it all. */
    private Phase phase(VmLauncher launcher, GuestImage guest, Path work, List<RemoteHost> hosts, long memMiB, PeerTls tls,
                        String name, int settle) throws Exception {
        ForkOptions options = ForkOptions.defaults().withMaxClones(Math.max(clones, 1)).withReshareAfterFork(false)
                .withPageServer(PageServerOptions.defaults().withMulticast(!unicast).withTls(tls));
        try (CloneController controller = new CloneController(launcher, options)) {
            Path disk = work.resolve(name + ".qcow2");
            HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
            VmSpec spec = VmLauncher.guestSpec(name, guest, "dirtier", Map.of(
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
            double coldMs = 0;
            if (tls.secure()) {
                coldMs = warmUp(tls);
                progress("the JVM's first TLS handshake took " + Math.round(coldMs) + " ms (before the timed fork, as in a"
                        + " controller that has forked before)");
            }
            progress("forking into " + clones + " clones on " + hosts.size() + " hosts, page server links: " + tls);
            long request = System.nanoTime();
            RemoteForkService.RemoteForkResult r = controller.forkRemote(parent, clones, hosts);
            RemoteFork remote = r.remote();
            long firstRun = Long.MAX_VALUE;
            for (ForkableVm c : r.clones()) {
                firstRun = Math.min(firstRun, remote.runningSinceNanos(c.name()));
            }
            progress("fork done in " + Math.round(r.fork().forkMs()) + " ms; watching " + settle + " s");
            Thread.sleep(settle * 1000L);

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
            long wire = remote.multicast() == null ? bytes : remote.multicast().bytesOnWire();
            return new Phase(tls, prepareMs, r.fork().forkMs(), r.fork().prestartMs(), r.fork().parentPauseMs(),
                    (firstRun - request) / 1e6, new PageFigures(fetched, bytes, wire, remote.totalPages(), running, corrupt),
                    coldMs);
        }
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }

    private static void progress(String s) {
        System.err.println("[bench fork-remote] " + s);
    }
}

package dev.doppel.cli;

import dev.doppel.clone.CloneController;
import dev.doppel.clone.ExampleDataSet;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.ForkResult;
import dev.doppel.clone.ForkableVm;
import dev.doppel.clone.RemoteFork;
import dev.doppel.clone.RemoteForkService;
import dev.doppel.clone.net.RemoteHost;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.DiskImageVm;
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
import java.util.regex.Pattern;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel fork run|example}: VM fork from the host or from inside the guest, end to end in one
 * command (the fork controller and its family live as long as the command, also when a daemon runs:
 * they are self-contained demonstrations, and {@code --host} clones run on namespaces the command
 * creates). Families that outlive the command live in the daemon: {@code fork start|clone|list|kill|wait}
 * ({@link FamilyCommands}).
 */
@Command(name = "fork", description = "Fork a running VM into clones (SnowFlock-style).",
        subcommands = {ForkCommand.Run.class, ForkCommand.Example.class, FamilyCommands.Start.class, FamilyCommands.Clone.class,
                FamilyCommands.ListFamilies.class, FamilyCommands.Kill.class, FamilyCommands.Wait.class})
public final class ForkCommand {

    @Command(name = "run", description = "Boot a forkable guest, fork it into N clones, show them, then clean up.")
    static final class Run implements Callable<Integer> {
        @Option(names = {"-n", "--clones"}, defaultValue = "2", description = "number of clones (default ${DEFAULT-VALUE})") int clones;
        @Option(names = "--mem", description = "guest RAM in MiB (default 256, with --image 1024)") Long memMiB;
        @Option(names = "--image", description = "fork your own BIOS-bootable disk image (qcow2 or raw) with qemu-guest-agent"
                + " inside, instead of Doppel's guest; clones get hostname, MAC/IP, SSH host keys, RNG and clock through qemu-ga."
                + " The image is not written (the family runs on overlays)") Path image;
        @Option(names = "--cpus", defaultValue = "1", description = "vCPUs (default ${DEFAULT-VALUE})") int cpus;
        @Option(names = "--ready-timeout", defaultValue = "600", description = "with --image: seconds to wait for the booted"
                + " guest's agent, and for each clone's identity (default ${DEFAULT-VALUE})") int readyTimeoutS;
        @Option(names = "--run", defaultValue = "dirtier", description = "guest workload (default ${DEFAULT-VALUE})") String run;
        @Option(names = "--seconds", defaultValue = "10", description = "how long to watch the clones (default ${DEFAULT-VALUE})") int seconds;
        @Option(names = "--name", description = "the parent VM's name (default fork<pid>)") String vmName;
        @Option(names = "--host", split = ",", paramLabel = "H",
                description = "run the clones on these other hosts (round-robin), fed by the page server; a host here is a"
                        + " network namespace dpr-H created for the run") List<String> hosts = new ArrayList<>();
        @Option(names = "--unicast", description = "with --host: serve every clone from this host (default: pages go to the"
                + " hosts by multicast, each host serves its own clones)") boolean unicast;
        /** With --host: how the page server's connections to the clones are protected (required then, like protect's). */
        @ArgGroup(exclusive = true, multiplicity = "0..1") TlsOption.Choice tls;
        @Mixin AccelOption accel;
        @Spec CommandSpec commandSpec;

        @Override
        public Integer call() throws Exception {
            if (image != null && !hosts.isEmpty()) {
                throw new ParameterException(commandSpec.commandLine(),
                        "--image with --host is not supported yet (remote clones of a real guest are untested)");
            }
            if (!hosts.isEmpty() && tls == null) {
                throw new ParameterException(commandSpec.commandLine(),
                        "--host needs --tls DIR (mutual TLS between the page server and the clones) or --insecure");
            }
            List<RemoteHost> remoteHosts = new ArrayList<>();
            // the clones' hosts (namespaces) too are removed before the JVM exits on Ctrl-C
            GracefulStop stop = new GracefulStop("fork-run", Duration.ofSeconds(30));
            try {
                for (String h : hosts) {
                    remoteHosts.add(RemoteHost.create("dpr-" + h));
                }
                return run(remoteHosts, stop);
            } finally {
                remoteHosts.forEach(RemoteHost::close);
                stop.close();
            }
        }

        private Integer run(List<RemoteHost> remoteHosts, GracefulStop stop) throws Exception {
            VmLauncher launcher = VmLauncher.create(accel.forced());
            Path work = Files.createTempDirectory("doppel-fork");
            String name = vmName != null ? vmName : "fork" + ProcessHandle.current().pid();
            Path disk;
            String diskFormat;
            VmSpec spec;
            if (image != null) {
                disk = image.toAbsolutePath();
                diskFormat = DiskImageVm.format(disk);
                spec = DiskImageVm.spec(name, disk, diskFormat).memoryMiB(memMiB == null ? 1024 : memMiB).vcpus(cpus).build();
            } else {
                disk = work.resolve("disk.qcow2");
                diskFormat = "qcow2";
                HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
                spec = VmLauncher.guestSpec(name, GuestImage.locate(), run, Map.of("doppel.dirty_rate", "2000"))
                        .memoryMiB(memMiB == null ? 256 : memMiB).vcpus(cpus).build();
            }
            PageServerOptions pageServer = PageServerOptions.defaults().withMulticast(!unicast);
            if (tls != null) {
                pageServer = pageServer.withTls(tls.load());
            }
            ForkOptions options = ForkOptions.defaults().withPageServer(pageServer);
            try (CloneController controller = new CloneController(launcher, options)) {
                long tStart = System.nanoTime();
                ForkableVm parent = controller.start(spec, disk, diskFormat);
                if (image != null) {
                    awaitIdentity(stop, parent, "booting: waiting for the guest agent", Duration.ofSeconds(readyTimeoutS));
                    System.out.printf("guest agent answers, address set: %.1f s after start%n", (System.nanoTime() - tStart) / 1e9);
                } else {
                    stop.awaitLine(parent.console(), Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
                }
                System.out.printf("parent %s running at %s (pid %d)%n", parent.name(), parent.address().ip(), parent.pid());
                RemoteFork remote = null;
                ForkResult r;
                if (remoteHosts.isEmpty()) {
                    r = controller.fork(parent, clones);
                } else {
                    RemoteForkService.RemoteForkResult rr = controller.forkRemote(parent, clones, remoteHosts);
                    r = rr.fork();
                    remote = rr.remote();
                }
                System.out.printf("forked into %d clones in %.1f ms (parent paused %.1f ms, descriptor %d bytes)%n",
                        clones, r.forkMs(), r.parentPauseMs(), r.descriptorBytes());
                if (remote != null) {
                    System.out.printf("page server links: %s%n", options.pageServer().tls());
                }
                System.out.printf("%-24s %-14s %-18s %8s %-22s%n", "CLONE", "IP", "MAC", "PID", "HOST");
                for (int k = 0; k < r.clones().size(); k++) {
                    ForkableVm c = r.clones().get(k);
                    String host = remoteHosts.isEmpty() ? "local" : remoteHosts.get(k % remoteHosts.size()).name();
                    System.out.printf("%-24s %-14s %-18s %8d %-22s%n", c.name(), c.address().ip(), c.address().mac(), c.pid(), host);
                }
                if (image != null) {
                    long tForked = System.nanoTime();
                    for (ForkableVm c : r.clones()) {
                        awaitIdentity(stop, c, "giving " + c.name() + " its identity through qemu-ga", Duration.ofSeconds(readyTimeoutS));
                        System.out.printf("%-24s identity set (hostname %s, %s, new SSH host keys, RNG reseeded, clock set)"
                                + " %.1f s after the fork%n", c.name(), c.name(), c.address().ip(), (System.nanoTime() - tForked) / 1e9);
                    }
                    String ns = parent.family().network().namespace();
                    System.out.printf("the clone network is isolated; to reach it while this runs (--seconds):%n"
                            + "  ip netns exec %s ip addr add 10.77.255.254/16 dev %s%n"
                            + "  ip netns exec %s ssh-keyscan %s%n", ns, dev.doppel.clone.net.CloneNetwork.BRIDGE, ns,
                            r.clones().get(0).address().ip());
                }
                if (stop.await(Duration.ofSeconds(seconds))) {
                    throw new GracefulStop.Requested();
                }
                if (remote != null) {
                    for (ForkableVm c : r.clones()) {
                        var st = remote.stats(c.name());
                        System.out.printf("%-24s fetched %d of %d pages (%d bytes on the wire), %s%n", c.name(), st.pagesSent(),
                                remote.totalPages(), st.bytesOnWire(), remote.status(c.name()));
                    }
                }
                for (ForkableVm vm : controller.list()) {
                    var tail = vm.console().tail(1);
                    System.out.printf("%-24s %s%n", vm.name(), tail.isEmpty() ? "" : tail.get(0));
                }
            } catch (GracefulStop.Requested e) {
                System.out.println("stopped; cleaning up");
                return 130;
            } finally {
                dev.doppel.vm.FileTrees.deleteRecursively(work);
            }
            return 0;
        }
    }

    /**
     * Waits for {@code vm}'s identity (a real guest's agent answered and set it), printing progress
     * every 10 s; a failed identity ends the command with its cause.
     */
    private static void awaitIdentity(GracefulStop stop, ForkableVm vm, String what, Duration timeout) throws Exception {
        long t0 = System.nanoTime();
        while (true) {
            if (System.nanoTime() - t0 > timeout.toNanos()) {
                throw new IllegalStateException("VM '" + vm.name() + "': no identity within " + timeout.toSeconds() + " s (" + what + ")");
            }
            try {
                vm.identity().get(10, java.util.concurrent.TimeUnit.SECONDS);
                return;
            } catch (java.util.concurrent.TimeoutException e) {
                System.out.printf("  %s: %d s%n", what, (System.nanoTime() - t0) / 1_000_000_000L);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException(e.getCause().getMessage(), e.getCause());
            }
            if (stop.await(Duration.ZERO)) {
                throw new GracefulStop.Requested();
            }
        }
    }

    @Command(name = "example", description = "Run a guest program that forks itself: parallel-sum or sandbox (the seed's patterns).")
    static final class Example implements Callable<Integer> {
        @picocli.CommandLine.Parameters(index = "0", description = "parallel-sum or sandbox") String example;
        @Option(names = {"-n", "--clones"}, defaultValue = "4", description = "clones for parallel-sum (default ${DEFAULT-VALUE})") int clones;
        @Mixin AccelOption accel;

        @Override
        public Integer call() throws Exception {
            if (!example.equals("parallel-sum") && !example.equals("sandbox")) {
                throw new IllegalArgumentException("unknown example '" + example + "' (parallel-sum or sandbox)");
            }
            VmLauncher launcher = VmLauncher.create(accel.forced());
            Path work = Files.createTempDirectory("doppel-fork");
            Path disk = work.resolve("data.qcow2");
            int count = 20_000;
            ExampleDataSet.writeQcow2(disk, count);
            String args = example.equals("parallel-sum") ? clones + ",/dev/vda" : "/dev/vda";
            VmSpec spec = VmLauncher.guestSpec("ex" + ProcessHandle.current().pid(), GuestImage.locate(), example,
                    Map.of("doppel.example_args", args)).build();
            Pattern done = Pattern.compile("PSUM total=|SANDBOX parent-");
            GracefulStop stop = new GracefulStop("fork-example", Duration.ofSeconds(30));
            try (CloneController controller = new CloneController(launcher, ForkOptions.defaults())) {
                ForkableVm vm = controller.start(spec, disk, "qcow2");
                vm.console().addListener(l -> {
                    if (l.text().startsWith("PSUM") || l.text().startsWith("SANDBOX")) {
                        System.out.println(l.text());
                    }
                }, true);
                stop.awaitLine(vm.console(), done, Duration.ofSeconds(300));
                if (example.equals("parallel-sum")) {
                    System.out.println("expected total=" + ExampleDataSet.expectedSum(count));
                }
            } catch (GracefulStop.Requested e) {
                System.out.println("stopped; cleaning up");
                return 130;
            } finally {
                dev.doppel.vm.FileTrees.deleteRecursively(work);
                stop.close();
            }
            return 0;
        }
    }
}

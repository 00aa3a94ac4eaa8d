package dev.doppel.cli.bench;

import dev.doppel.clone.CloneController;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.ForkResult;
import dev.doppel.clone.ForkableVm;
import dev.doppel.clone.identity.IdentityProbe;
import dev.doppel.clone.net.CloneNetwork;
import dev.doppel.hostnet.NetNamespace;
import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.qga.QgaClient;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code bench fork-real}: the real Debian guest ({@code scripts/build-real-guest}) forked into N clones,
 * each given its own identity through qemu-guest-agent. Reports the fork time, the parent's pause,
 * the time from the fork until every clone answers Debian's {@code psql} on its own address with its
 * new host name, and how many clones are distinct from every other VM of the family in all four of host
 * name, IP, SSH host key ({@code ssh-keyscan}) and the first bytes of {@code /dev/urandom}.
 */
@Command(name = "fork-real", description = "Fork the real guest into clones with their own identity (qemu-guest-agent): fork time, parent pause, identity time, distinct identities.")
public final class ForkRealBench implements Callable<Integer> {
    /** The host's own address on the clone network, to reach the clones from inside the family's namespace. */
    private static final String HOST_CIDR = "10.77.255.254/16";

    @Option(names = "--clones", defaultValue = "4", description = "clones (default ${DEFAULT-VALUE})") int clones;
    @Option(names = "--mem", defaultValue = "1024", description = "guest RAM in MiB (default ${DEFAULT-VALUE})") long memMiB;
    @Option(names = "--image", description = "the guest disk (default: the real guest scripts/build-real-guest built)") Path image;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        Path disk = dev.doppel.vm.RealGuestDisk.require(image);
        String format = DiskImageVm.format(disk);
        String name = "frb" + ProcessHandle.current().pid() % 100000;
        VmSpec spec = DiskImageVm.spec(name, disk, format).memoryMiB(memMiB).vcpus(1).build();
        VmLauncher launcher = VmLauncher.create(accel.forced());
        try (CloneController controller = new CloneController(launcher, ForkOptions.defaults())) {
            long t0 = System.nanoTime();
            System.err.println("fork-real: booting " + disk + " until its agent answers and PostgreSQL serves on the clone network");
            ForkableVm parent = controller.start(spec, disk, format);
            parent.identity().get(600, TimeUnit.SECONDS);
            NetNamespace ns = parent.family().network().netns();
            ns.address(CloneNetwork.BRIDGE, HOST_CIDR);
            IdentityProbe.awaitPsql(ns, parent.address().ip(), Duration.ofSeconds(300));
            double bootS = (System.nanoTime() - t0) / 1e9;

            System.err.println("fork-real: forking into " + clones + " clones");
            ForkResult r = controller.fork(parent, clones);
            long forked = System.nanoTime();
            List<CompletableFuture<Void>> identities = new ArrayList<>();
            for (ForkableVm c : r.clones()) {
                identities.add(c.identity());
            }
            CompletableFuture.allOf(identities.toArray(CompletableFuture[]::new)).get(600, TimeUnit.SECONDS);
            // Reachable on its own IP with its new host name: psql answers from that address, and the
            // agent says the clone's name.
            for (ForkableVm c : r.clones()) {
                IdentityProbe.awaitPsql(ns, c.address().ip(), Duration.ofSeconds(120));
                try (QgaClient qga = QgaClient.connect(c.name(), c.qgaSocket())) {
                    if (!qga.hostName().equals(c.name())) {
                        throw new IllegalStateException(c.name() + " answers with host name " + qga.hostName());
                    }
                }
            }
            double identityMs = (System.nanoTime() - forked) / 1e6;
            System.err.printf("fork-real: every clone reachable with its own identity %.0f ms after the fork%n", identityMs);

            Map<String, List<String>> identity = new LinkedHashMap<>();   // VM → host name, IP, SSH key, random bytes
            identity.put(parent.name(), describe(parent, ns));
            for (ForkableVm c : r.clones()) {
                identity.put(c.name(), describe(c, ns));
            }
            int distinct = 0;
            for (ForkableVm c : r.clones()) {
                List<String> mine = identity.get(c.name());
                boolean allDiffer = identity.entrySet().stream().filter(e -> !e.getKey().equals(c.name()))
                        .allMatch(e -> differInEveryPart(mine, e.getValue()));
                distinct += allDiffer ? 1 : 0;
            }

            BenchReport rep = new BenchReport("Fork of the real guest (Debian 12 + PostgreSQL), " + clones + " clones, " + memMiB + " MiB");
            rep.note("accelerator", launcher.accelerator());
            rep.figure("boot_s", "parent boot to PostgreSQL on the clone network (s)", bootS);
            rep.figure("fork_ms", "fork (request → clones running)", r.forkMs());
            rep.figure("parent_pause_ms", "parent paused (ms)", r.parentPauseMs());
            rep.figure("identity_ms", "fork → every clone answers psql on its own IP with its own host name (ms)", identityMs);
            rep.figure("distinct_identities", "clones distinct from every other VM in host name, IP, SSH key and random bytes",
                    distinct);
            rep.json("clones", clones);
            identity.forEach((vm, parts) -> rep.note(vm, parts.get(0) + " " + parts.get(1) + " key …"
                    + parts.get(2).substring(Math.max(0, parts.get(2).length() - 8)) + " rnd " + parts.get(3).substring(0, 8)));
            rep.print(System.out);
            return distinct == clones ? 0 : 1;
        }
    }

    private static List<String> describe(ForkableVm vm, NetNamespace ns) throws Exception {
        try (QgaClient qga = QgaClient.connect(vm.name(), vm.qgaSocket())) {
            return List.of(qga.hostName(), vm.address().ip(), IdentityProbe.sshKey(ns, vm.address().ip()), IdentityProbe.urandom32(qga));
        }
    }

    private static boolean differInEveryPart(List<String> a, List<String> b) {
        for (int i = 0; i < a.size(); i++) {
            if (a.get(i).equals(b.get(i))) {
                return false;
            }
        }
        return true;
    }
}

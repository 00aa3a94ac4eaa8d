package dev.doppel.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.qmp.QmpClient;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.control.ControlClient;
import dev.doppel.remus.control.ProtectReply;
import dev.doppel.remus.control.ProtectRequest;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.guard.GuardClient;
import dev.doppel.remus.guard.GuardProcess;
import dev.doppel.remus.guard.GuardReply;
import dev.doppel.remus.primary.DiskReplication;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.primary.ProtectionScope;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.remus.primary.ProtectionTarget;
import dev.doppel.vm.GuestDescriptor;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code doppel protect VM --backup HOST:PORT}: Remus protection of a running VM, in the foreground
 * until interrupted (Ctrl-C stops protection; the VM keeps running). Status every second on stdout
 * and in the VM's run directory for {@code doppel status}.
 *
 * <p>Ownership of the VM is decided in ZooKeeper ({@code --coordinator}). The VM's lease is held by its
 * guard process ({@code remus/guard}), which this command starts or, after a crash of this command,
 * re-attaches to: killing or restarting {@code protect} neither fences the guest nor lets the backup
 * take over. Without {@code --coordinator} the guard embeds a single ZooKeeper server, named to the
 * backup: enough for one machine, not for a primary host that can vanish.
 */
@Command(name = "protect", description = "Protect a running VM (started with 'vm start --colo') with a backup ('backup serve').")
public final class ProtectCommand implements Callable<Integer> {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Parameters(index = "0", description = "VM name") String name;
    @Option(names = "--backup", required = true, description = "the backup service's control address HOST:PORT") String backup;
    @Option(names = "--interval", defaultValue = "50ms", description = "checkpoint interval, e.g. 50ms, 0.1s, 100 (ms) (default ${DEFAULT-VALUE})") String interval;
    @Option(names = "--timeout", description = "backup lost after the guest stood still this many ms (default 3 intervals, at least 300)") Long timeoutMs;
    @Option(names = "--seconds", defaultValue = "0", description = "stop after this many seconds (0 = until interrupted)") long seconds;
    @Option(names = "--memory-only", description = "replicate memory and devices only: no output commit, no disk replication") boolean memoryOnly;
    @Option(names = "--coordinator", description = "ZooKeeper ensemble HOST:PORT,... (default: an embedded single server, one machine only)") String coordinator;
    @Option(names = "--name", description = "this primary host's name in ownership records (default: primary@HOSTNAME)") String holder;
    @picocli.CommandLine.Mixin TlsOption tlsOption;
    @Option(names = "--detach", description = "with a daemon: return once protected; the daemon keeps the protection "
            + "(also across its restarts) until 'doppel unprotect'") boolean detach;

    @Override
    public Integer call() throws Exception {
        try (DaemonMode daemon = DaemonMode.find()) {
            if (daemon != null) {
                return protectThroughDaemon(daemon);
            }
        }
        if (detach) {
            throw new IllegalArgumentException("--detach needs a running daemon (doppel daemon start): without one, "
                    + "protection lasts as long as this command");
        }
        VmRunDir dir = VmCommand.existing(name);
        if (!VmRecord.readFrom(dir).alive()) {
            throw new IllegalStateException("VM '" + name + "' is not running");
        }
        if (!Files.exists(dir.guestFile())) {
            throw new IllegalStateException("VM '" + name + "' has no guest description (" + dir.guestFile() + "): start it with 'doppel vm start'");
        }
        GuestDescriptor guest = GuestDescriptor.read(dir.guestFile());
        InetSocketAddress control = parse(backup);
        ProtectionOptions options = ProtectionOptions.withInterval(Duration.ofMillis(millis(interval)));
        if (timeoutMs != null) {
            options = new ProtectionOptions(options.interval(), Duration.ofMillis(timeoutMs), options.initialSyncTimeout(), options.reprotectDelay());
        }
        dev.doppel.tls.PeerTls tls = tlsOption.load();
        GracefulStop stop = new GracefulStop("protect", Duration.ofSeconds(20));
        long pid = VmRecord.readFrom(dir).pid();
        String me = holder != null ? holder : "primary@" + InetAddress.getLocalHost().getHostName();
        // The lease (and, without --coordinator, the single ZooKeeper server) lives in the VM's guard
        // process, not here: this command may crash or be restarted without a failover.
        GuardClient fencing = GuardProcess.attachOrStart(new GuardProcess.Spec(name, pid, me, dir.path(),
                dir.path().resolve("guard.log"), null, coordinator,
                coordinator != null ? null : new InetSocketAddress(localAddressTowards(control), 0), tls, Coordinator.DEFAULT_SESSION,
                Duration.ofSeconds(10), false));
        GuardReply guardState = fencing.status();
        String connect = guardState.coordinator();
        if (coordinator == null) {
            System.out.println("coordination: the VM's guard runs a single embedded ZooKeeper server at " + connect
                    + " (one machine only; use --coordinator with an ensemble for hosts that can fail)");
        }
        try (fencing;
             QmpClient qmp = QmpClient.connectUnix(dir.qmpSocket(), name, Duration.ofSeconds(5))) {
            if (fencing.reattached()) {
                System.out.println("re-attached to the running guard of " + name + " (pid " + guardState.guardPid()
                        + "): the VM kept its lease while no controller ran");
            }
            System.out.println("VM " + name + " owned by " + me + " (fencing token " + fencing.token() + ") in " + connect);
            // Remus: every NIC's output is held per epoch and every disk is replicated, unless the
            // operator asks for memory only.
            List<String> netdevs = memoryOnly ? List.of() : guest.nics().stream().map(GuestDescriptor.Nic::id).toList();
            List<String> disks = memoryOnly ? List.of() : guest.disks();
            Map<String, Long> sizes = DiskReplication.diskSizes(qmp, disks);
            // Each protection attempt (also after a lost backup) asks the backup for fresh ports.
            Supplier<ProtectionTarget> target = () -> {
                try {
                    ProtectReply r = ControlClient.requestProtection(control,
                            ProtectRequest.of(name, guest, sizes).withCoordinator(connect), Duration.ofSeconds(10), tls);
                    Map<String, InetSocketAddress> exports = new LinkedHashMap<>();
                    if (r.diskPorts() != null) {
                        r.diskPorts().forEach((node, p) -> exports.put(node, new InetSocketAddress(control.getAddress(), p)));
                    }
                    System.out.println("backup " + backup + " accepted VM " + name + "; replication port " + r.port()
                            + (exports.isEmpty() ? "" : ", disk exports " + r.diskPorts()));
                    return new ProtectionTarget(new InetSocketAddress(control.getAddress(), r.port()), r.store(), exports);
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            };
            try (PrimaryProtector protector = new PrimaryProtector(name, qmp, target, control, options,
                    new ProtectionScope(netdevs, disks, HostSockets.LOCAL, dir.path(), tls), fencing, System.out::println)) {
                run(dir, qmp, protector, stop);
            }
        } finally {
            Files.deleteIfExists(dir.protectionFile());
            stop.close();
        }
        if (VmRecord.readFrom(dir).alive()) {
            System.out.println("protection of " + name + " stopped; the VM keeps running");
        } else {
            System.out.println("the primary QEMU of " + name + " is gone; the backup was told to take over");
        }
        return 0;
    }

    /**
     * The daemon protects the VM (its guard, QMP connection and checkpoint loop live there); this
     * command prints the status every second and, unless detached, ends the protection when it ends.
     */
    private Integer protectThroughDaemon(DaemonMode daemon) throws Exception {
        Map<String, Object> intent = new LinkedHashMap<>();
        intent.put("backup", backup);
        intent.put("intervalMs", millis(interval));
        intent.put("timeoutMs", timeoutMs == null ? 0 : timeoutMs);
        intent.put("memoryOnly", memoryOnly);
        intent.put("coordinator", coordinator);
        intent.put("holder", holder);
        dev.doppel.tls.PeerTls tls = tlsOption.load();
        intent.put("tls", tls.secure() ? tls.directory().toAbsolutePath().toString() : null);
        System.out.println("asking doppeld (" + daemon.socket() + ") to protect " + name + " with the backup " + backup);
        var st = daemon.call("POST", "/api/v1/vms/" + name + "/protection", intent);
        System.out.println("VM " + name + " " + st.path("state").asText() + " (backup " + st.path("backup").asText() + ")");
        if (detach) {
            System.out.println("protection of " + name + " is held by doppeld; 'doppel unprotect " + name + "' ends it");
            return 0;
        }
        try (GracefulStop stop = new GracefulStop("protect", Duration.ofSeconds(20))) {
            long end = seconds > 0 ? System.nanoTime() + seconds * 1_000_000_000L : Long.MAX_VALUE;
            while (!stop.requested() && System.nanoTime() < end) {
                var s = daemon.call("GET", "/api/v1/vms/" + name + "/protection", null);
                System.out.printf("%s %-11s checkpoints=%d pause_last=%.1fms p50=%.1fms p99=%.1fms backup_lag=%dms lost_backups=%d%n",
                        name, s.path("state").asText(), s.path("checkpoints").asLong(), s.path("lastPauseMs").asDouble(),
                        s.path("pauseP50Ms").asDouble(), s.path("pauseP99Ms").asDouble(), s.path("lagMs").asLong(),
                        s.path("lostBackups").asLong());
                stop.await(Duration.ofSeconds(1));
            }
            daemon.call("DELETE", "/api/v1/vms/" + name + "/protection", null);
        }
        System.out.println("protection of " + name + " stopped; the VM keeps running");
        return 0;
    }

    /** Protects, then prints and stores the status every second until stopped. */
    private void run(VmRunDir dir, QmpClient qmp, PrimaryProtector protector, GracefulStop stop) throws Exception {
        protector.protect();
        long end = seconds > 0 ? System.nanoTime() + seconds * 1_000_000_000L : Long.MAX_VALUE;
        while (!stop.requested() && System.nanoTime() < end && qmp.isConnected()) {
            ProtectionStatus s = protector.status();
            writeStatus(dir, s);
            System.out.printf("%s %-11s checkpoints=%d pause_last=%.1fms p50=%.1fms p99=%.1fms backup_lag=%dms lost_backups=%d%n",
                    name, s.state(), s.checkpoints(), s.lastPauseMs(), s.pauseP50Ms(), s.pauseP99Ms(), s.lagMs(), s.lostBackups());
            stop.await(Duration.ofSeconds(1));
        }
    }

    private static void writeStatus(VmRunDir dir, ProtectionStatus s) throws java.io.IOException {
        var tmp = dir.path().resolve("protection.json.tmp");
        MAPPER.writeValue(tmp.toFile(), s);
        Files.move(tmp, dir.protectionFile(), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** This host's address on the route to {@code peer} (where the embedded ZooKeeper listens). */
    private static InetAddress localAddressTowards(InetSocketAddress peer) throws java.io.IOException {
        try (DatagramSocket probe = new DatagramSocket()) {
            probe.connect(peer);
            return probe.getLocalAddress();
        }
    }

    /** "50ms", "0.05s", "50" (ms). */
    static long millis(String text) {
        String t = text.trim().toLowerCase(java.util.Locale.ROOT);
        try {
            if (t.endsWith("ms")) {
                return Long.parseLong(t.substring(0, t.length() - 2).trim());
            }
            if (t.endsWith("s")) {
                return Math.round(Double.parseDouble(t.substring(0, t.length() - 1).trim()) * 1000);
            }
            return Long.parseLong(t);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad duration '" + text + "' (use e.g. 50ms or 0.1s)");
        }
    }

    static InetSocketAddress parse(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException("expected HOST:PORT, got '" + hostPort + "'");
        }
        return new InetSocketAddress(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
    }
}

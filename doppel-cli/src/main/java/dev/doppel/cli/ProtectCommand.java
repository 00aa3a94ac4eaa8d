package dev.doppel.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.libvirt.remus.LibvirtPrimaryVm;
import dev.doppel.remus.primary.ProtectionEvents;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.remus.service.PrimarySession;
import dev.doppel.remus.service.ProtectionIntent;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.concurrent.Callable;
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

    @Parameters(index = "0", arity = "0..1", description = "VM name (a VM of 'vm start'; or give --libvirt)") String name;
    @Option(names = "--libvirt", paramLabel = "DOMAIN", description = "protect the running libvirt domain DOMAIN (its device model "
            + "from its XML, QMP through libvirt)") String libvirtDomain;
    @Option(names = "--libvirt-uri", defaultValue = "${env:LIBVIRT_DEFAULT_URI:-qemu:///system}",
            description = "the libvirtd of --libvirt (default ${DEFAULT-VALUE})") String libvirtUri;
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
        if ((name == null) == (libvirtDomain == null)) {
            throw new IllegalArgumentException("give a VM name or --libvirt DOMAIN (one of them)");
        }
        if (libvirtDomain != null) {
            return protectLibvirtDomain();
        }
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
        GracefulStop stop = new GracefulStop("protect", Duration.ofSeconds(20));
        // The lease (and, without --coordinator, the single ZooKeeper server) lives in the VM's guard
        // process, not here: this command may crash or be restarted without a failover.
        try (PrimarySession session = PrimarySession.protect(name, intent(), ProtectionEvents.NONE, System.out::println)) {
            run(dir, session, stop);
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
     * A libvirt domain, protected by this command (the daemon does not protect libvirt domains yet). Its guard's
     * files and the status are under {@code $DOPPEL_RUN_DIR/libvirt/DOMAIN/qemu-PID}. Ends when interrupted (the domain runs
     * on, unprotected), when its QEMU is gone (killed: the backup takes over), or when its owner stops it through
     * libvirt ({@code virsh destroy}/{@code shutdown}: the backup stands down).
     */
    private Integer protectLibvirtDomain() throws Exception {
        if (detach) {
            throw new IllegalArgumentException("--detach: doppeld does not protect libvirt domains yet");
        }
        name = libvirtDomain;   // the VM's name in status lines
        LibvirtPrimaryVm domain = LibvirtPrimaryVm.open(libvirtUri, libvirtDomain);
        System.out.println("libvirt domain " + libvirtDomain + " (UUID " + domain.uuid() + ") at " + libvirtUri + ": QEMU pid "
                + domain.qemuPid() + ", output held on " + domain.descriptor().nics().stream().map(n -> n.id()).toList()
                + ", disks " + domain.descriptor().disks());
        VmRunDir dir = new VmRunDir(domain.stateDir());
        GracefulStop stop = new GracefulStop("protect", Duration.ofSeconds(20));
        ProtectionStatus last;
        try {
            PrimarySession session = PrimarySession.protect(domain, intent(), ProtectionEvents.NONE, System.out::println);
            try {
                run(dir, session, stop);
            } finally {
                session.close();   // waits for libvirt's word on why the QEMU ended, if it did
            }
            last = session.status();
        } finally {
            Files.deleteIfExists(dir.protectionFile());
            stop.close();
        }
        if (last.state() == dev.doppel.remus.primary.ProtectionState.STOPPED && last.lastProblem().startsWith("stopped by its owner")) {
            System.out.println("libvirt domain " + libvirtDomain + " was " + last.lastProblem() + "; the backup stood down");
        } else if (ProcessHandle.of(domain.qemuPid()).map(ProcessHandle::isAlive).orElse(false)) {
            System.out.println("protection of " + libvirtDomain + " stopped; the domain keeps running");
        } else {
            System.out.println("the QEMU of libvirt domain " + libvirtDomain + " is gone; the backup was told to take over");
        }
        return 0;
    }

    /** What this command's options ask for: the same request the daemon takes. */
    private ProtectionIntent intent() throws java.io.IOException {
        dev.doppel.tls.PeerTls tls = tlsOption.load();
        return new ProtectionIntent(backup, millis(interval), timeoutMs == null ? 0 : timeoutMs, memoryOnly, coordinator, holder,
                tls.secure() ? tls.directory().toAbsolutePath().toString() : null);
    }

    /**
     * The daemon protects the VM (its guard, QMP connection and checkpoint loop live there); this
     * command prints the status every second and, unless detached, ends the protection when it ends.
     */
    private Integer protectThroughDaemon(DaemonMode daemon) throws Exception {
        ProtectionIntent intent = intent();
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

    /** Prints and stores the status every second until stopped (or the QEMU is gone). */
    private void run(VmRunDir dir, PrimarySession session, GracefulStop stop) throws Exception {
        long end = seconds > 0 ? System.nanoTime() + seconds * 1_000_000_000L : Long.MAX_VALUE;
        while (!stop.requested() && System.nanoTime() < end && session.qemuConnected()) {
            ProtectionStatus s = session.status();
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
        return PrimarySession.parse(hostPort);
    }
}

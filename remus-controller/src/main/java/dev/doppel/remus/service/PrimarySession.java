package dev.doppel.remus.service;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.qmp.QmpClient;
import dev.doppel.remus.control.ControlClient;
import dev.doppel.remus.control.ProtectReply;
import dev.doppel.remus.control.ProtectRequest;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.guard.GuardClient;
import dev.doppel.remus.guard.GuardProcess;
import dev.doppel.remus.primary.DiskReplication;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.remus.primary.ProtectionEvents;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.primary.ProtectionScope;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.remus.primary.ProtectionTarget;
import dev.doppel.tls.PeerTls;
import dev.doppel.vm.GuestDescriptor;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * One VM protected from this host, the primary side's one path for {@code doppel protect} and the
 * daemon alike: its guard (the lease, in a process of its own, started or re-attached to), a QMP
 * connection to its QEMU, and the {@link PrimaryProtector} running the checkpoint loop. Every
 * protection attempt (also after a lost backup) asks the backup's control port for fresh ports.
 */
public final class PrimarySession implements AutoCloseable {
    private final String vm;
    private final GuardClient guard;
    private final QmpClient qmp;
    private final PrimaryProtector protector;

    private PrimarySession(String vm, GuardClient guard, QmpClient qmp, PrimaryProtector protector) {
        this.vm = vm;
        this.guard = guard;
        this.qmp = qmp;
        this.protector = protector;
    }

    /**
     * Attaches to (or starts) the VM's guard, connects to its QEMU and protects it; returns once the
     * initial synchronisation is done. On failure everything opened here is closed again.
     */
    public static PrimarySession protect(String vm, ProtectionIntent intent, ProtectionEvents events,
                                         java.util.function.Consumer<String> progress) throws IOException {
        VmRunDir dir = VmRunDir.of(vm);
        VmRecord rec = VmRecord.readFrom(dir);
        if (!rec.alive()) {
            throw new IllegalStateException("VM '" + vm + "' is not running");
        }
        GuestDescriptor guest = GuestDescriptor.read(dir.guestFile());
        InetSocketAddress control = parse(intent.backup());
        ProtectionOptions options = ProtectionOptions.withInterval(Duration.ofMillis(intent.intervalMs()));
        if (intent.timeoutMs() > 0) {
            options = new ProtectionOptions(options.interval(), Duration.ofMillis(intent.timeoutMs()), options.initialSyncTimeout(),
                    options.reprotectDelay());
        }
        PeerTls tls = intent.tls() == null ? PeerTls.INSECURE : PeerTls.load(Path.of(intent.tls()));
        String me = intent.holder() != null ? intent.holder() : "primary@" + InetAddress.getLocalHost().getHostName();
        GuardClient guard = GuardProcess.attachOrStart(new GuardProcess.Spec(vm, rec.pid(), me, dir.path(),
                dir.path().resolve("guard.log"), null, intent.coordinator(),
                intent.coordinator() != null ? null : new InetSocketAddress(localAddressTowards(control), 0), tls,
                Coordinator.DEFAULT_SESSION, Duration.ofSeconds(10), false));
        QmpClient qmp = null;
        PrimaryProtector protector = null;
        try {
            var guardState = guard.status();
            String connect = guardState.coordinator();
            if (intent.coordinator() == null) {
                progress.accept("coordination: the VM's guard runs a single embedded ZooKeeper server at " + connect
                        + " (one machine only; use --coordinator with an ensemble for hosts that can fail)");
            }
            if (guard.reattached()) {
                progress.accept("re-attached to the running guard of " + vm + " (pid " + guardState.guardPid()
                        + "): the VM kept its lease while no controller ran");
            }
            progress.accept("VM " + vm + " owned by " + me + " (fencing token " + guard.token() + ") in " + connect);
            qmp = QmpClient.connectUnix(dir.qmpSocket(), vm, Duration.ofSeconds(5));
            List<String> netdevs = intent.memoryOnly() ? List.of() : guest.nics().stream().map(GuestDescriptor.Nic::id).toList();
            List<String> disks = intent.memoryOnly() ? List.of() : guest.disks();
            Map<String, Long> sizes = DiskReplication.diskSizes(qmp, disks);
            // Each protection attempt (also after a lost backup) asks the backup for fresh ports.
            Supplier<ProtectionTarget> target = () -> {
                try {
                    ProtectReply r = ControlClient.requestProtection(control,
                            ProtectRequest.of(vm, guest, sizes).withCoordinator(connect), Duration.ofSeconds(10), tls);
                    Map<String, InetSocketAddress> exports = new LinkedHashMap<>();
                    if (r.diskPorts() != null) {
                        r.diskPorts().forEach((node, p) -> exports.put(node, new InetSocketAddress(control.getAddress(), p)));
                    }
                    progress.accept("backup " + intent.backup() + " accepted VM " + vm + "; replication port " + r.port()
                            + (exports.isEmpty() ? "" : ", disk exports " + r.diskPorts()));
                    return new ProtectionTarget(new InetSocketAddress(control.getAddress(), r.port()), r.store(), exports);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            };
            protector = new PrimaryProtector(vm, qmp, target, control, options,
                    new ProtectionScope(netdevs, disks, HostSockets.LOCAL, dir.path(), tls), guard, progress);
            protector.reportTo(events);
            protector.protect();
            return new PrimarySession(vm, guard, qmp, protector);
        } catch (RuntimeException | IOException e) {
            if (protector != null) {
                protector.close();
            }
            if (qmp != null) {
                qmp.close();
            }
            guard.close();
            throw e;
        }
    }

    public String vm() {
        return vm;
    }

    public ProtectionStatus status() {
        return protector.status();
    }

    /** False once the QEMU's monitor connection ended (the primary QEMU died). */
    public boolean qemuConnected() {
        return qmp.isConnected();
    }

    /** Ends protection (the record says unprotected first, then the backup stands down); the VM runs on. */
    @Override
    public void close() {
        try {
            protector.close();
        } finally {
            qmp.close();
            guard.close();
        }
    }

    /** This host's address on the route to {@code peer} (where the guard's embedded ZooKeeper listens). */
    private static InetAddress localAddressTowards(InetSocketAddress peer) throws IOException {
        try (DatagramSocket probe = new DatagramSocket()) {
            probe.connect(peer);
            return probe.getLocalAddress();
        }
    }

    /** HOST:PORT as an address, or a clear error. */
    public static InetSocketAddress parse(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        try {
            return new InetSocketAddress(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("expected HOST:PORT, got '" + hostPort + "'");
        }
    }
}

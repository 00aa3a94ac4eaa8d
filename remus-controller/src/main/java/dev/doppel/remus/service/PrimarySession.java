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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * One VM protected from this host, the primary side's one path for {@code doppel protect} and the
 * daemon alike: its guard (the lease, in a process of its own, started or re-attached to), a QMP
 * connection to its QEMU, and the {@link PrimaryProtector} running the checkpoint loop. Every
 * protection attempt (also after a lost backup) asks the backup's control port for fresh ports.
 */
public final class PrimarySession implements AutoCloseable {
    private final String vm;
    private final PrimaryVm target;
    private final GuardClient guard;
    private final QmpClient qmp;
    private final PrimaryProtector protector;
    /** Completes once the VM's manager said why its QEMU ended and that was acted on (never for a VM of Doppel's launcher). */
    private final CompletableFuture<PrimaryVm.VmExit> exited;

    private PrimarySession(String vm, PrimaryVm target, GuardClient guard, QmpClient qmp, PrimaryProtector protector,
                           CompletableFuture<PrimaryVm.VmExit> exited) {
        this.vm = vm;
        this.exited = exited;
        this.target = target;
        this.guard = guard;
        this.qmp = qmp;
        this.protector = protector;
    }

    /**
     * Attaches to (or starts) the guard of the VM {@code vm} of this host's run directories, connects to its QEMU
     * and protects it; returns once the initial synchronisation is done. On failure everything opened here is
     * closed again.
     */
    public static PrimarySession protect(String vm, ProtectionIntent intent, ProtectionEvents events,
                                         java.util.function.Consumer<String> progress) throws IOException {
        return protect(RunDirVm.of(vm), intent, events, progress);
    }

    /**
     * As {@link #protect(String, ProtectionIntent, ProtectionEvents, java.util.function.Consumer)} for any
     * {@link PrimaryVm} (e.g. a libvirt domain). The session owns {@code target} from here: it is closed with the
     * session, or here on failure.
     */
    public static PrimarySession protect(PrimaryVm target, ProtectionIntent intent, ProtectionEvents events,
                                         java.util.function.Consumer<String> progress) throws IOException {
        String vm = target.name();
        GuestDescriptor guest = target.descriptor();
        Path stateDir = target.stateDir();
        InetSocketAddress control = parse(intent.backup());
        ProtectionOptions options = ProtectionOptions.withInterval(Duration.ofMillis(intent.intervalMs()));
        if (intent.timeoutMs() > 0) {
            options = new ProtectionOptions(options.interval(), Duration.ofMillis(intent.timeoutMs()), options.initialSyncTimeout(),
                    options.reprotectDelay());
        }
        PeerTls tls = intent.tls() == null ? PeerTls.INSECURE : PeerTls.load(Path.of(intent.tls()));
        String me = intent.holder() != null ? intent.holder() : "primary@" + InetAddress.getLocalHost().getHostName();
        GuardClient guard;
        try {
            guard = GuardProcess.attachOrStart(new GuardProcess.Spec(vm, target.qemuPid(), me, stateDir,
                    stateDir.resolve("guard.log"), null, intent.coordinator(),
                    intent.coordinator() != null ? null : new InetSocketAddress(localAddressTowards(control), 0), tls,
                    Coordinator.DEFAULT_SESSION, Duration.ofSeconds(10), false).withVerdictWait(target.exitVerdictWait()));
        } catch (IOException | RuntimeException e) {
            target.close();
            throw e;
        }
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
            qmp = target.connectQmp();
            List<String> netdevs = intent.memoryOnly() ? List.of() : guest.nics().stream().map(GuestDescriptor.Nic::id).toList();
            List<String> disks = intent.memoryOnly() ? List.of() : guest.disks();
            Map<String, Long> sizes = DiskReplication.diskSizes(qmp, disks);
            String definition = target.definition();
            // Each protection attempt (also after a lost backup) asks the backup for fresh ports.
            Supplier<ProtectionTarget> backupTarget = () -> {
                try {
                    ProtectReply r = ControlClient.requestProtection(control,
                            ProtectRequest.of(vm, guest, sizes).withCoordinator(connect).withDefinition(definition),
                            Duration.ofSeconds(10), tls);
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
            protector = new PrimaryProtector(vm, qmp, backupTarget, control, options,
                    new ProtectionScope(netdevs, disks, HostSockets.LOCAL, stateDir, tls), guard, progress);
            protector.reportTo(events);
            // An owner's stop is recorded by the guard (no backup named) before the backup is told to stand down.
            CompletableFuture<PrimaryVm.VmExit> exited = new CompletableFuture<>();
            PrimaryProtector protectorRef = protector;
            target.onExit(exit -> {
                handleExit(exit, guard, protectorRef, vm, progress);
                exited.complete(exit);
            });
            protector.protect();
            return new PrimarySession(vm, target, guard, qmp, protector, exited);
        } catch (RuntimeException | IOException e) {
            if (protector != null) {
                protector.close();
            }
            if (qmp != null) {
                qmp.close();
            }
            guard.close();
            target.close();
            throw e;
        }
    }

    /** The VM's manager said why its QEMU ended: an owner's stop is recorded and stood down, a crash fails over. */
    private static void handleExit(PrimaryVm.VmExit exit, GuardClient guard, PrimaryProtector protector, String vm,
                                   java.util.function.Consumer<String> progress) {
        if (exit.byOwner()) {
            guard.stoppedByOwner(exit.cause());
            protector.ownerStopped(exit.cause());
            progress.accept("VM " + vm + " was stopped by its owner (" + exit.cause() + "): protection ended, the backup stands down");
        } else {
            guard.crashed(exit.cause());
            progress.accept("VM " + vm + ": its QEMU failed (" + exit.cause() + "): the backup takes over");
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
        if (!qmp.isConnected() && !target.exitVerdictWait().isZero()) {
            // The QEMU is gone: let the manager's word on why (an owner's stop, or a crash) be acted on first,
            // else closing the protector here would pre-empt the backup's stand-down.
            try {
                exited.get(target.exitVerdictWait().toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (ExecutionException | TimeoutException e) {
                // no word from the manager: the guard gives the lease back after its own wait
            }
        }
        try {
            protector.close();
        } finally {
            qmp.close();
            guard.close();
            target.close();
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

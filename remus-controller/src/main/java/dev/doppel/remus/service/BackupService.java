package dev.doppel.remus.service;

import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.control.ControlServer;
import dev.doppel.remus.control.ProtectReply;
import dev.doppel.remus.control.ProtectRequest;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.nbd.ReplicatedDisks;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmRunDir;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code doppel backup serve}: the backup host. A primary asks on the control port to have a VM
 * protected; the service opens a replication port and a store for it and arms a guard that fails
 * the VM over when its primary is lost and the coordination service gives this backup the VM's
 * lease. Several VMs at once; a VM protected again (after its backup was lost, or after a failover)
 * gets a fresh store and guard. The coordination service is the one given with {@code --coordinator},
 * or else the one the primary names in its request (its controller's embedded ZooKeeper).
 */
public final class BackupService implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BackupService.class);

    private final VmLauncher launcher;
    private final InetSocketAddress listen;
    private final Duration detection;
    private final NicSpec.Netdev nicBackend;
    private final Consumer<String> events;
    private final ControlServer control;
    private final BackupServer backups;
    private final Map<String, Protected> vms = new ConcurrentHashMap<>();
    /** Failed-over VMs whose protection entry was replaced by a newer one: still owned here. */
    private final List<BackupGuard.Failover> restored = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final String coordinator;
    private final dev.doppel.tls.PeerTls tls;
    private final String holder;
    /** Sessions to coordination services, by connect string (one per ensemble, shared by its VMs). */
    private final Map<String, Coordinator> sessions = new ConcurrentHashMap<>();
    private final Hooks hooks;

    /**
     * How the service is embedded.
     *
     * @param events             structured events (besides the text lines)
     * @param restoredOutliveUs  failed-over VMs are started detached and keep running when the service
     *                           closes (a host daemon's VMs); otherwise they end with it (the foreground
     *                           {@code backup serve})
     */
    public record Hooks(BackupEvents events, boolean restoredOutliveUs, RestoreTarget restoreTarget) {
        public static final Hooks FOREGROUND = new Hooks(BackupEvents.NONE, false);

        public Hooks(BackupEvents events, boolean restoredOutliveUs) {
            this(events, restoredOutliveUs, RestoreTarget.NONE);
        }

        /** The same hooks, restoring VMs that another manager owns into {@code target}. */
        public Hooks withRestoreTarget(RestoreTarget target) {
            return new Hooks(events, restoredOutliveUs, target);
        }
    }

    /**
     * Where a failed-over VM runs when another manager than Doppel owns it on the primary (its protect request
     * carries a {@link ProtectRequest#definition()}): e.g. this host's libvirtd. VMs of Doppel's own launcher are
     * always restored by this service's launcher.
     */
    public interface RestoreTarget {
        /** No such manager on this host: a VM with a definition is refused (it could not be restored as what it is). */
        RestoreTarget NONE = req -> null;

        /** The restorer of the VM {@code request} asks protection for; null when this host cannot restore it. */
        BackupGuard.Restorer restorerFor(ProtectRequest request);
    }

    /** One protected VM's replication endpoint and guard, with its recent epochs' figures. */
    public record Protected(String vm, BackupServer.Endpoint endpoint, BackupGuard guard, EpochWindow epochs) {
    }

    /** The last epochs' figures as the backup measured them (dirty pages, bytes, commit time). */
    public static final class EpochWindow {
        private final java.util.ArrayDeque<EpochMetrics> recent = new java.util.ArrayDeque<>();

        synchronized void add(EpochMetrics m) {
            recent.addLast(m);
            if (recent.size() > 200) {
                recent.removeFirst();
            }
        }

        /** e.g. "epoch 812: 946 dirty pages, 3.9 MB, commit 1.8 ms (p50 of the last 200)". */
        public synchronized String summary() {
            if (recent.isEmpty()) {
                return "no epoch yet";
            }
            long[] pages = recent.stream().mapToLong(EpochMetrics::dataPages).sorted().toArray();
            long[] bytes = recent.stream().mapToLong(EpochMetrics::wireBytes).sorted().toArray();
            long[] commit = recent.stream().mapToLong(EpochMetrics::commitNanos).sorted().toArray();
            int mid = pages.length / 2;
            return String.format("epoch %d: %d dirty pages, %.1f MB, commit %.1f ms (p50 of the last %d)",
                    recent.getLast().epoch(), pages[mid], bytes[mid] / 1e6, commit[mid] / 1e6, pages.length);
        }
    }

    /**
     * @param coordinator the ensemble's connect string, or null to use the one each primary names
     * @param holder      this backup host's name in ownership records
     * @param tls         what a primary must present on the control and replication ports, and this host's
     *                    identity towards the coordination service
     */
    public BackupService(VmLauncher launcher, InetSocketAddress listen, Path storeRoot, Duration detection,
                         NicSpec.Netdev nicBackend, String coordinator, String holder, dev.doppel.tls.PeerTls tls,
                         Consumer<String> events) throws IOException {
        this(launcher, listen, storeRoot, detection, nicBackend, coordinator, holder, tls, events, Hooks.FOREGROUND);
    }

    public BackupService(VmLauncher launcher, InetSocketAddress listen, Path storeRoot, Duration detection,
                         NicSpec.Netdev nicBackend, String coordinator, String holder, dev.doppel.tls.PeerTls tls,
                         Consumer<String> events, Hooks hooks) throws IOException {
        this.hooks = hooks;
        this.coordinator = coordinator;
        this.holder = holder;
        this.tls = tls;
        this.launcher = launcher;
        this.listen = listen;
        this.detection = detection;
        this.nicBackend = nicBackend;
        this.events = events;
        Files.createDirectories(storeRoot);
        this.backups = new BackupServer(storeRoot, HostSockets.LOCAL, tls);
        this.control = new ControlServer(listen, HostSockets.LOCAL, tls);
        control.onProtectRequest(this::protect);
        events.accept("backup service listening on " + listen.getHostString() + ":" + control.port() + " (control), " + tls);
    }

    public int controlPort() {
        return control.port();
    }

    public Map<String, Protected> protectedVms() {
        return Map.copyOf(vms);
    }

    private synchronized ProtectReply protect(ProtectRequest req) {
        String vm = req.vm();
        Protected existing = vms.get(vm);
        if (existing != null) {
            if (existing.endpoint().sessionActive() && existing.guard().state() == BackupGuard.State.ARMED) {
                return ProtectReply.error(vm, "already protected by an active session");
            }
            // The primary starts over (full synchronisation): the old store is stale or consumed.
            retire(existing);
        }
        try {
            EpochWindow window = new EpochWindow();
            if (!req.guest().disks().containsAll(req.diskSizes().keySet())) {
                return ProtectReply.error(vm, "disks " + req.diskSizes().keySet() + " are not all disks of the VM " + req.guest().disks());
            }
            List<ReplicatedDisks.Request> disks = req.diskSizes().entrySet().stream()
                    .map(e -> new ReplicatedDisks.Request(e.getKey(), e.getValue())).toList();
            BackupServer.Endpoint endpoint = backups.listen(
                    new ProtectedVm(vm, req.guest().machineType(), req.guest().memoryMiB() << 20, Duration.ofSeconds(30), Duration.ofSeconds(30)),
                    new InetSocketAddress(listen.getAddress(), 0), new EpochListener() {
                        @Override
                        public void epochCommitted(EpochMetrics m) {
                            window.add(m);
                            hooks.events().epochCommitted(vm, m);
                        }
                    }, disks);
            VmSpec.Builder specBuilder = req.guest().toSpec(localName(vm), nicBackend);
            Map<String, Path> replicas = endpoint.disks() == null ? Map.of() : endpoint.disks().images();
            for (String node : req.guest().disks()) {
                if (!replicas.containsKey(node)) {
                    endpoint.close();
                    return ProtectReply.error(vm, "disk " + node + " of the VM is not replicated; its backup could not be restored");
                }
                specBuilder.disk(node, replicas.get(node), "raw", false);
            }
            VmSpec spec = specBuilder.build();
            Coordinator coord;
            try {
                coord = session(req.coordinator());
            } catch (FencingException e) {
                endpoint.close();
                return ProtectReply.error(vm, e.getMessage());
            }
            BackupGuard guard;
            if (req.definition() == null) {
                guard = new BackupGuard(launcher, spec, endpoint, detection, BackupGuard.Fencing.of(coord, holder),
                        hooks.restoredOutliveUs() ? dev.doppel.vm.VmProcess.StartOptions.detached() : dev.doppel.vm.VmProcess.StartOptions.defaults());
            } else {
                BackupGuard.Restorer restorer = hooks.restoreTarget().restorerFor(req);
                if (restorer == null) {
                    endpoint.close();
                    return ProtectReply.error(vm, "VM " + vm + " is owned by another manager than Doppel (e.g. a libvirt domain) and "
                            + "this backup host cannot restore it as such: start 'backup serve' with --libvirt");
                }
                guard = new BackupGuard(spec, endpoint, detection, BackupGuard.Fencing.of(coord, holder), restorer);
            }
            control.register(vm, guard::onControl);
            guard.failover().thenAccept(f -> {
                describeRestored(f, spec);
                if (hooks.restoredOutliveUs()) {
                    // Off the failover's thread: starting a guard takes a JVM start (seconds), and the
                    // failover's other listeners (events, metrics) must not wait for it.
                    Thread t = new Thread(() -> handOverLease(f, coord), "lease-handover-" + vm);
                    t.setDaemon(true);
                    t.start();
                }
            });
            guard.failover().whenComplete((f, err) -> {
                if (err == null) {
                    hooks.events().failedOver(vm, f);
                } else {
                    hooks.events().failoverRefused(vm, err.getMessage(), guard.state() == BackupGuard.State.STALE);
                }
            });
            guard.failover().whenComplete((f, err) -> events.accept(err == null
                    ? String.format("VM %s FAILED OVER from epoch %d in %.0f ms (%s); running as %s", vm, f.epoch(), f.failoverMs(), f.cause(),
                            f.restored().describe())
                    : guard.state() == BackupGuard.State.STALE
                            // The right outcome, not a fault: the primary went on without this store.
                            ? "VM " + vm + ": not failing over: this store is stale (" + err.getMessage() + ")"
                            : "VM " + vm + ": failover FAILED: " + err.getMessage()));
            vms.put(vm, new Protected(vm, endpoint, guard, window));
            events.accept("VM " + vm + " protected: replication port " + endpoint.port() + ", " + req.guest().memoryMiB() + " MiB");
            hooks.events().vmProtected(vm, endpoint.port(), guard.storeId());
            return ProtectReply.ready(vm, endpoint.port(), guard.storeId(), endpoint.disks() == null ? Map.of() : endpoint.disks().ports());
        } catch (IOException | RuntimeException e) {
            log.warn("vm={} event=protect-refused cause=\"{}\"", vm, e.getMessage());
            return ProtectReply.error(vm, e.getMessage());
        }
    }

    /**
     * The failed-over VM is a VM like any other on this host: its run directory gets the guest
     * description that {@code doppel protect} reads, and its QMP monitor is let go (QEMU serves one
     * client), so it can be protected again (to another backup).
     */
    private void describeRestored(BackupGuard.Failover f, VmSpec spec) {
        if (!(f.restored() instanceof dev.doppel.remus.failover.LaunchedVm)) {
            f.restored().releaseMonitor();   // another manager's VM: it describes the VM itself (libvirt: its XML)
            return;
        }
        try {
            dev.doppel.vm.GuestDescriptor.of(spec).write(f.vm().runDir().guestFile());
            f.vm().releaseQmp();   // its monitor is for whoever protects it next
            if (spec.qemuGuestAgent()) {
                setGuestClock(f, spec.name());
            }
        } catch (IOException | RuntimeException e) {
            log.warn("vm={} epoch={} event=restored-vm-undescribed cause=\"{}\" note=\"it cannot be protected again\"", spec.name(),
                    f.epoch(), e.getMessage());
        }
    }

    /**
     * Hands a restored VM's lease to a guard of the VM's own — a process like a primary's, which outlives
     * this service as the VM does, keeps fencing it (it stops the VM if it loses the lease) and is where
     * {@code doppel protect} finds the VM's ownership when it protects it again from this host. Without the
     * handover the lease would end with this service's session, and a new protection's guard could not
     * claim a VM whose record names this service's holder.
     *
     * <p>The guard claims as this service's holder (the record names it since the takeover), after the
     * service let its own lease go. Only where the coordination service outlived the primary: one embedded
     * in the dead primary's guard took the service's session, and so the lease, with it.
     */
    private void handOverLease(BackupGuard.Failover f, Coordinator coord) {
        if (!(f.restored() instanceof dev.doppel.remus.failover.LaunchedVm)) {
            return;   // another manager's VM (a libvirt domain): its lease stays with this service (docs/libvirt.md)
        }
        String vm = f.vm().name();
        if (!f.lease().held()) {
            events.accept("VM " + vm + ": no lease to hand over (the coordination service went with the primary"
                    + " or the session was lost); it runs unfenced until it is protected again");
            return;
        }
        f.lease().close();
        try {
            var guard = dev.doppel.remus.guard.GuardProcess.attachOrStart(new dev.doppel.remus.guard.GuardProcess.Spec(vm,
                    f.vm().pid(), holder, f.vm().runDir().path(), f.vm().runDir().path().resolve("guard.log"), null,
                    coord.connectString(), null, tls, Coordinator.DEFAULT_SESSION, Duration.ofSeconds(10), false));
            // Not guard.close(): that would ask the guard to give the lease back. The client holds nothing open.
            events.accept("VM " + vm + ": its lease is held by a guard of its own now (fencing token " + guard.token() + ")");
        } catch (IOException | RuntimeException e) {
            log.warn("vm={} epoch={} event=lease-handover-failed cause=\"{}\" note=\"the VM runs unfenced until it is protected again\"",
                    vm, f.epoch(), e.getMessage());
            events.accept("VM " + vm + ": the lease handover to its own guard failed (" + e.getMessage() + ")");
        }
    }

    /**
     * The guest resumed a checkpoint taken on another host; its clock is the primary's at that stop.
     * With the standard guest agent the clock is set to this host's (off the failover path: the VM
     * already runs and serves).
     */
    private void setGuestClock(BackupGuard.Failover f, String name) {
        Thread t = new Thread(() -> {
            try (dev.doppel.vm.qga.QgaClient qga = dev.doppel.vm.qga.QgaClient.awaitAgent(name, f.vm().runDir().qgaSocket(),
                    Duration.ofSeconds(30), waited -> { })) {
                qga.setTime(java.time.Instant.now());
                log.info("vm={} epoch={} event=guest-clock-set via=qemu-guest-agent", name, f.epoch());
            } catch (Exception e) {
                log.warn("vm={} epoch={} event=guest-clock-not-set cause=\"{}\"", name, f.epoch(), e.getMessage());
            }
        }, "guest-clock-" + name);
        t.setDaemon(true);
        t.start();
    }

    /** The session to the configured ensemble, or to the one the primary named. */
    private Coordinator session(String requested) throws FencingException {
        String cs = coordinator != null ? coordinator : requested;
        if (cs == null) {
            throw new FencingException("*", "no coordination service: start 'backup serve' with --coordinator, or the primary "
                    + "must name one");
        }
        Coordinator c = sessions.get(cs);
        if (c == null) {
            c = Coordinator.connect(cs, Coordinator.DEFAULT_SESSION, HostSockets.LOCAL, Duration.ofSeconds(10), tls);
            sessions.put(cs, c);
            events.accept("coordination service " + cs + " connected (session " + Coordinator.DEFAULT_SESSION.toMillis() + " ms)");
        }
        return c;
    }

    /** The VM keeps its name on the backup host, unless this host already runs one of that name (one-machine setups). */
    private static String localName(String vm) {
        return Files.exists(VmRunDir.of(vm).path()) ? vm + "-bk" : vm;
    }

    private void retire(Protected p) {
        control.unregister(p.vm());
        p.guard().close();
        if (p.guard().state() != BackupGuard.State.FAILED_OVER) {
            p.endpoint().close();
        } else {
            restored.add(p.guard().completedFailover());
        }
        vms.remove(p.vm());
    }

    /**
     * A failed-over VM when the service closes: it ends with a foreground service; a daemon's keeps
     * running (QEMU detached, its monitor already let go). Its lease ends with this service's session
     * either way: the ownership record names this host, and no other copy exists to take over.
     */
    private void endRestored(BackupGuard.Failover f) {
        if (!hooks.restoredOutliveUs()) {
            f.restored().close();
        }
        f.lease().close();
    }

    @Override
    public synchronized void close() {
        control.close();
        for (Protected p : vms.values()) {
            p.guard().close();
            p.endpoint().close();
            p.guard().failover().thenAccept(this::endRestored);
        }
        vms.clear();
        restored.forEach(this::endRestored);
        sessions.values().forEach(Coordinator::close);
    }
}

package dev.doppel.daemon.backup;

import dev.doppel.daemon.ApiException;
import dev.doppel.daemon.events.EventHub;
import dev.doppel.daemon.vms.HostVms;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.service.BackupEvents;
import dev.doppel.remus.service.BackupService;
import dev.doppel.tls.PeerTls;
import dev.doppel.vm.NicSpec;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * This host as a Remus backup: the {@link BackupService} (control port, stores, guards) owned by the
 * daemon. Failed-over VMs are started detached: they are this host's VMs from then on and outlive the
 * daemon like any other.
 */
public final class BackupHost implements AutoCloseable {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(BackupHost.class);
    private static final String DEFAULT_STORE = "/dev/shm/doppel-backup";
    private final Path stateDir;
    private final HostVms vms;
    private final EventHub events;
    private final BackupEvents metrics;
    private BackupService service;
    private BackupSettings settings;

    /** One VM this host backs up, as the API lists it. */
    public record BackedUpVm(String vm, String state, long committedEpoch, String summary) {
    }

    /** The backup service's view: null settings when this host serves as no backup. */
    public record View(BackupSettings settings, int port, List<BackedUpVm> vms) {
    }

    public BackupHost(Path stateDir, HostVms vms, EventHub events, BackupEvents metrics) {
        this.stateDir = stateDir;
        this.vms = vms;
        this.events = events;
        this.metrics = metrics;
    }

    /** Starts serving as a backup (and remembers it for the next daemon). */
    public synchronized View start(BackupSettings s) throws IOException {
        if (service != null) {
            throw new ApiException(409, null, "this host already serves as a backup on " + settings.listen());
        }
        open(s);
        s.write(stateDir);
        return view();
    }

    /** Serves again if a previous daemon did; returns whether it does. */
    public synchronized boolean adopt() throws IOException {
        BackupSettings s = BackupSettings.read(stateDir);
        if (s == null) {
            return false;
        }
        open(s);
        events.publish("backup-resumed", null, -1, null, Map.of("listen", s.listen(), "port", service.controlPort()));
        return true;
    }

    private void open(BackupSettings s) throws IOException {
        int colon = s.listen().lastIndexOf(':');
        InetSocketAddress listen = new InetSocketAddress(s.listen().substring(0, colon), Integer.parseInt(s.listen().substring(colon + 1)));
        PeerTls tls = s.tls() == null ? PeerTls.INSECURE : PeerTls.load(Path.of(s.tls()));
        Path store = Path.of(s.store() == null ? DEFAULT_STORE : s.store());
        BackupEvents hooks = new BackupEvents() {
            @Override
            public void vmProtected(String vm, int replicationPort, String storeId) {
                events.publish("backup-armed", vm, 0, null, Map.of("replicationPort", replicationPort, "store", storeId));
            }

            @Override
            public void epochCommitted(String vm, EpochMetrics m) {
                metrics.epochCommitted(vm, m);
                events.publish("backup-epoch", vm, m.epoch(), null, Map.of("dirtyPages", m.dataPages(), "wireBytes", m.wireBytes(),
                        "commitMs", m.commitNanos() / 1e6));
            }

            @Override
            public void failedOver(String vm, BackupGuard.Failover f) {
                metrics.failedOver(vm, f);
                String restoredAs = f.vm().name();
                BackupService.Protected p = service == null ? null : service.protectedVms().get(vm);
                try {
                    // The restored VM's RAM is the store's memory file: 'vm stop' removes the store with it.
                    Files.writeString(f.vm().runDir().path().resolve(HostVms.RESTORED_FROM), "vm=" + vm + "\nepoch=" + f.epoch()
                            + "\nstore=" + (p == null ? "" : p.endpoint().store().directory()) + "\n");
                } catch (IOException e) {
                    log.warn("vm={} epoch={} event=restored-from-unwritten cause=\"{}\"", vm, f.epoch(), e.getMessage());
                }
                vms.watch(restoredAs, f.vm().pid());
                events.publish("failover", vm, f.epoch(), f.cause(), Map.of("restoredAs", restoredAs, "pid", f.vm().pid(),
                        "failoverMs", f.failoverMs(), "leaseMs", f.leaseMs()));
            }

            @Override
            public void failoverRefused(String vm, String cause, boolean stale) {
                metrics.failoverRefused(vm, cause, stale);
                events.publish("failover-refused", vm, -1, cause, Map.of("stale", stale));
            }
        };
        service = new BackupService(vms.patchedLauncher(), listen, store, Duration.ofMillis(s.detectionMs()),
                new NicSpec.Netdev.User(s.forwards()), s.coordinator(), s.holder() != null ? s.holder() : "backup@" + s.listen(), tls,
                line -> events.publish("backup-log", null, -1, null, Map.of("message", line)), new BackupService.Hooks(hooks, true));
        settings = s;
    }

    public synchronized View view() {
        if (service == null) {
            return new View(null, 0, List.of());
        }
        List<BackedUpVm> out = new ArrayList<>();
        for (BackupService.Protected p : service.protectedVms().values()) {
            out.add(new BackedUpVm(p.vm(), p.guard().state().name(), p.endpoint().store().committedEpoch(), p.epochs().summary()));
        }
        return new View(settings, service.controlPort(), out);
    }

    /** Stops serving as a backup and forgets it (restored VMs keep running). */
    public synchronized void stop() throws IOException {
        if (service == null) {
            throw new ApiException(404, null, "this host serves as no backup");
        }
        Path root = Path.of(settings.store() == null ? DEFAULT_STORE : settings.store());
        close();
        Files.deleteIfExists(stateDir.resolve(BackupSettings.FILE));
        deleteIdleStores(root);
    }

    /**
     * The stores nobody can fail over to any more (the service is gone); a store a restored VM runs on
     * (LIVE) stays until that VM is stopped.
     */
    private static void deleteIdleStores(Path root) throws IOException {
        if (!Files.isDirectory(root)) {
            return;
        }
        try (var vmDirs = Files.list(root)) {
            for (Path vmDir : vmDirs.toList()) {
                try (var gens = Files.list(vmDir)) {
                    for (Path gen : gens.toList()) {
                        if (!Files.exists(gen.resolve(dev.doppel.remus.backup.BackupStore.LIVE_FILE))) {
                            dev.doppel.vm.FileTrees.deleteRecursively(gen);
                        }
                    }
                }
                deleteIfEmpty(vmDir);
            }
        }
        deleteIfEmpty(root);
    }

    private static void deleteIfEmpty(Path dir) throws IOException {
        try (var entries = Files.list(dir)) {
            if (entries.findAny().isEmpty()) {
                Files.delete(dir);
            }
        }
    }

    /** Daemon stop: the service ends (primaries see their backup lost and go on); the settings stay. */
    @Override
    public synchronized void close() {
        if (service != null) {
            service.close();
            service = null;
        }
    }
}

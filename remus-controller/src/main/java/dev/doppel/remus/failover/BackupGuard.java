package dev.doppel.remus.failover;

import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.OwnershipRecord;
import dev.doppel.remus.fencing.VmLease;
import java.io.IOException;
import java.nio.file.Path;
import dev.doppel.remus.control.ControlMessage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches one protected VM on the backup host and fails over when — and only when — its primary is
 * lost <em>and</em> the coordination service says this backup may take the VM.
 *
 * <p>Two kinds of evidence start a failover attempt: the primary's controller said "primary down"
 * (it saw its QEMU die), or the primary has been silent on the control channel for the detection
 * timeout while the replication stream ended or stalled. Neither is proof: a primary starved of CPU
 * is silent too. So the attempt first takes the VM's lease ({@link VmLease}), which is free only when
 * the primary released it (confirmed death) or its coordination session expired; then the ownership
 * record must still name this backup's store (the primary did not go on without it) and is switched
 * to this holder by compare-and-set. Only then is the session sealed ({@link BackupServer.Endpoint#seal}:
 * no commit can land after the snapshot) and the VM restored. A lease still held after the wait means
 * the primary is alive: nothing happens, and the guard keeps watching.
 *
 * <p>A primary that is alive but gave up on this backup says "stand down" and clears the record's
 * backup; the stored state is then stale and is never resumed. STALE is final for a guard: a new
 * protection gets a new endpoint, store and guard.
 */
public final class BackupGuard implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BackupGuard.class);

    /** Where the guard stands. */
    public enum State { WAITING, ARMED, STALE, FAILED_OVER, FAILOVER_FAILED }

    /**
     * How a sealed snapshot becomes a running VM: a QEMU of Doppel's launcher ({@link Restore}), a domain of this
     * host's libvirtd (doppel-libvirt), or a stand-in in race tests.
     */
    @FunctionalInterface
    public interface Restorer {
        /**
         * @param spec     the VM's device model on this host, its replicated disks on the backup's copies
         * @param store    the sealed store (its directory is for the restore's own files; a restore that cannot map
         *                 the memory file reads the committed epoch from it as one self-contained stream)
         * @param snapshot the committed checkpoint, taken from the sealed store
         */
        Restore.Restored restore(VmSpec spec, BackupStore store, BackupStore.RestoreSnapshot snapshot) throws IOException;
    }

    /**
     * This backup's standing with the coordination service.
     *
     * @param coordinator the ensemble
     * @param holder      this backup host's holder name (e.g. {@code backup@10.83.1.2})
     * @param leaseWait   how long a failover attempt waits for the primary's lease: at least the
     *                    session timeout, so that a primary that died without releasing it is covered
     */
    public record Fencing(Coordinator coordinator, String holder, Duration leaseWait) {
        public static Fencing of(Coordinator coordinator, String holder) {
            return new Fencing(coordinator, holder, coordinator.sessionTimeout().plusMillis(1000));
        }
    }

    private final VmSpec spec;
    private final BackupServer.Endpoint endpoint;
    private final Duration detection;
    private final Fencing fencing;
    private final Restorer restorer;
    private final Thread watcher;
    private final CompletableFuture<Failover> failover = new CompletableFuture<>();
    private volatile State state = State.WAITING;
    private volatile long lastHeartbeatNanos = System.nanoTime();
    private volatile boolean primaryDown;
    private volatile boolean closed;
    private volatile long deferrals;

    /**
     * What a failover did: the running VM, the checkpoint it resumed, detection → running, and the
     * lease the new copy runs under (its owner keeps it while the VM runs, and closes it after).
     */
    public record Failover(RestoredVm restored, long epoch, double failoverMs, String cause, VmLease lease, double leaseMs) {
        /** The restored QEMU of Doppel's launcher (the default restore); a VM another manager owns has none. */
        public VmProcess vm() {
            if (restored instanceof LaunchedVm launched) {
                return launched.process();
            }
            throw new IllegalStateException("VM '" + restored.name() + "' was restored as " + restored.describe()
                    + ", not as a QEMU of Doppel's launcher");
        }
    }

    public BackupGuard(VmLauncher launcher, VmSpec spec, BackupServer.Endpoint endpoint, Duration detection, Fencing fencing) {
        this(launcher, spec, endpoint, detection, fencing, dev.doppel.vm.VmProcess.StartOptions.defaults());
    }

    /** @param startOptions how the restored QEMU is started ({@code detached()}: it outlives this JVM) */
    public BackupGuard(VmLauncher launcher, VmSpec spec, BackupServer.Endpoint endpoint, Duration detection, Fencing fencing,
                       dev.doppel.vm.VmProcess.StartOptions startOptions) {
        this(spec, endpoint, detection, fencing,
                (s, store, snap) -> Restore.start(launcher, s, snap, store.directory(), Duration.ofSeconds(30), startOptions));
    }

    /** A guard that restores through {@code restorer} (e.g. into this host's libvirtd). */
    public BackupGuard(VmSpec spec, BackupServer.Endpoint endpoint, Duration detection, Fencing fencing, Restorer restorer) {
        this.spec = spec;
        this.endpoint = endpoint;
        this.detection = detection;
        this.fencing = fencing;
        this.restorer = restorer;
        this.watcher = new Thread(this::watch, "backup-guard-" + spec.name());
        watcher.setDaemon(true);
        watcher.start();
    }

    /** The name under which the ownership record lists this guard's store as the VM's backup. */
    public String storeId() {
        return fencing.holder() + "/" + endpoint.store().directory().getFileName();
    }

    /** Failover attempts that found the primary's lease still held (a live primary that was only slow). */
    public long deferrals() {
        return deferrals;
    }

    /** Feed from the control channel. */
    public void onControl(ControlMessage m) {
        switch (m.type()) {
            case ControlMessage.HEARTBEAT -> lastHeartbeatNanos = System.nanoTime();
            case ControlMessage.PRIMARY_DOWN -> {
                log.warn("vm={} epoch={} event=primary-down reason=\"{}\"", spec.name(), m.epoch(), m.reason());
                primaryDown = true;
            }
            case ControlMessage.STAND_DOWN -> {
                // Checked against the record off the control thread (a ZooKeeper read may wait).
                Thread check = new Thread(() -> standDownIfTheRecordAgrees(m), "stand-down-check-" + spec.name());
                check.setDaemon(true);
                check.start();
            }
            default -> {
            }
        }
    }

    /**
     * A stand-down says the primary went on without this store. It is believed only when the ownership
     * record says so too (it no longer names this store): the primary records that before it stands the
     * backup down, and a stand-down that is forged (a peer on an --insecure link), replayed, or from an
     * old protection must not make the backup give up the only copy that may take the VM over.
     */
    private void standDownIfTheRecordAgrees(ControlMessage m) {
        String backupNamed;
        try {
            OwnershipRecord r = VmLease.recordOf(fencing.coordinator(), endpoint.vmName());
            if (r != null && fencing.holder().equals(r.owner())) {
                log.warn("vm={} epoch={} event=stand-down-ignored reason=\"{}\" cause=\"this backup owns the VM (it took it over)\"",
                        spec.name(), m.epoch(), m.reason());
                return;
            }
            backupNamed = r == null ? null : r.backup();
        } catch (FencingException e) {
            log.warn("vm={} epoch={} event=stand-down-ignored reason=\"{}\" cause=\"record unreadable: {}\"", spec.name(), m.epoch(),
                    m.reason(), e.getMessage());
            return;
        }
        if (storeId().equals(backupNamed)) {
            log.warn("vm={} epoch={} event=stand-down-ignored reason=\"{}\" cause=\"the ownership record still names this store "
                    + "as the backup: a stale, replayed or forged stand-down\"", spec.name(), m.epoch(), m.reason());
            return;
        }
        log.warn("vm={} epoch={} event=stand-down reason=\"{}\" record_backup={} action=\"stored state is stale, will not fail over\"",
                spec.name(), m.epoch(), m.reason(), backupNamed);
        if (state != State.FAILED_OVER) {
            state = State.STALE;
            // Final: the record no longer names this store, so no takeover can ever succeed; whoever
            // waits for this guard's failover learns it now rather than never.
            failover.completeExceptionally(new IllegalStateException("VM '" + spec.name() + "' epoch " + m.epoch()
                    + ": not failing over: the primary went on without this store (" + m.reason() + ")"));
        }
    }

    public State state() {
        return state;
    }

    /** The failover, once this guard has failed over; null before, or if it failed or was refused. */
    public Failover completedFailover() {
        CompletableFuture<Failover> f = failover;
        return f.isDone() && !f.isCompletedExceptionally() ? f.join() : null;
    }

    /** Completes when the guard has failed over (or failed trying). */
    public CompletableFuture<Failover> failover() {
        return failover;
    }

    private void watch() {
        long lastEpoch = -1;
        long lastEpochChange = System.nanoTime();
        while (!closed && !failover.isDone()) {
            boolean session = endpoint.sessionActive();
            long epoch = endpoint.store().committedEpoch();
            boolean committed = epoch >= 0;
            if (epoch != lastEpoch) {
                lastEpoch = epoch;
                lastEpochChange = System.nanoTime();
            }
            boolean replicationStalled = System.nanoTime() - lastEpochChange > detection.toNanos();
            if (session && committed && state == State.WAITING) {
                state = State.ARMED;
            }
            if (state == State.ARMED && (primaryDown || ((!session || replicationStalled) && !heartbeatFresh()))) {
                boolean done = failOver(primaryDown ? "primary reported down" : (session ? "replication stalled" : "replication ended")
                        + " and the primary is silent for " + detection.toMillis() + " ms");
                if (done) {
                    return;
                }
                primaryDown = false;
                lastEpochChange = System.nanoTime();
            }
            sleep(5);
        }
    }

    private boolean heartbeatFresh() {
        return System.nanoTime() - lastHeartbeatNanos < detection.toNanos();
    }

    /**
     * One failover attempt. Returns false when the primary turned out to hold its lease (alive): the
     * guard then keeps watching; true when the attempt ended for good (failed over, stale, failed).
     */
    private boolean failOver(String cause) {
        long detected = System.nanoTime();
        long epoch = endpoint.store().committedEpoch();
        String stale = endpoint.staleReason();
        if (stale != null) {
            refuse(epoch, cause, "the backup is stale: " + stale);
            return true;
        }
        log.warn("vm={} epoch={} event=failover-start cause=\"{}\" step=lease", spec.name(), epoch, cause);
        String store = storeId();
        VmLease lease;
        try {
            lease = VmLease.acquire(fencing.coordinator(), endpoint.vmName(), fencing.holder(), fencing.leaseWait(),
                    rec -> rec != null && store.equals(rec.backup()) ? null
                            : "the ownership record " + (rec == null ? "does not exist" : "names backup " + rec.backup()
                            + " (owner " + rec.owner() + ")") + ", not this store");
        } catch (FencingException.Fenced e) {
            refuse(epoch, cause, e.getMessage());
            return true;
        } catch (FencingException e) {
            deferrals++;
            log.warn("vm={} epoch={} event=failover-deferred cause=\"{}\" reason=\"{}\"", spec.name(), epoch, cause, e.getMessage());
            return false;
        }
        double leaseMs = (System.nanoTime() - detected) / 1e6;
        try {
            lease.takeOver(store);
        } catch (FencingException e) {
            lease.close();
            refuse(epoch, cause, e.getMessage());
            return true;
        }
        try {
            // From here this backup owns the VM. Nothing the old primary still sends may change the
            // store: seal it, then read the committed epoch as one snapshot.
            BackupStore.RestoreSnapshot snapshot = endpoint.seal("failover: " + cause);
            VmSpec restoreSpec = endpoint.disks() == null ? spec : withDisks(spec, endpoint.disks().images());
            endpoint.store().markLive(restoreSpec.name());
            Restore.Restored r = restorer.restore(restoreSpec, endpoint.store(), snapshot);
            endpoint.close();
            double ms = (System.nanoTime() - detected) / 1e6;
            state = State.FAILED_OVER;
            log.warn("vm={} epoch={} event=failover-done failover_ms={} lease_ms={} restore_ms={} token={}", spec.name(), r.epoch(),
                    String.format("%.1f", ms), String.format("%.1f", leaseMs), String.format("%.1f", r.millis()), lease.token());
            failover.complete(new Failover(r.vm(), r.epoch(), ms, cause, lease, leaseMs));
        } catch (Exception e) {
            state = State.FAILOVER_FAILED;
            lease.close();
            log.error("vm={} epoch={} event=failover-failed cause=\"{}\"", spec.name(), epoch, e.getMessage());
            failover.completeExceptionally(e);
        }
        return true;
    }

    private void refuse(long epoch, String cause, String why) {
        state = State.STALE;
        log.error("vm={} epoch={} event=failover-refused cause=\"{}\" reason=\"{}\"", spec.name(), epoch, cause, why);
        failover.completeExceptionally(new IllegalStateException("VM '" + spec.name() + "' epoch " + epoch
                + ": not failing over: " + why));
    }

    /** The spec with each replicated disk's image replaced by the backup's copy (same node, same slot). */
    static VmSpec withDisks(VmSpec spec, java.util.Map<String, java.nio.file.Path> images) {
        VmSpec.Builder b = spec.toBuilder().clearDisks();
        for (var d : spec.disks()) {
            java.nio.file.Path backupImage = images.get(d.nodeName());
            if (backupImage != null) {
                b.disk(d.nodeName(), backupImage, "raw", false);
            } else {
                b.disk(d.nodeName(), d.image(), d.format(), d.readOnly());
            }
        }
        return b.build();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        closed = true;
        watcher.interrupt();
    }
}

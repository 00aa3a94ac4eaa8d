package dev.doppel.remus.failover;

import dev.doppel.remus.backup.BackupServer;
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
 * lost: the primary's controller said "primary down", or it has been silent on the control channel
 * for the detection timeout AND the replication stream has ended or stalled (no epoch committed for
 * that long either: a host that vanished leaves its TCP connections open and silent). A primary that
 * is alive but gave up on this backup says "stand down": the stored state is then stale and is never
 * resumed (two copies of one VM on one network would be worse than none). STALE is final for a
 * guard: when the primary protects itself again it does a full synchronisation, which gets a new
 * endpoint and a new guard.
 */
public final class BackupGuard implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BackupGuard.class);

    /** Where the guard stands. */
    public enum State { WAITING, ARMED, STALE, FAILED_OVER, FAILOVER_FAILED }

    private final VmLauncher launcher;
    private final VmSpec spec;
    private final BackupServer.Endpoint endpoint;
    private final Duration detection;
    private final Thread watcher;
    private final CompletableFuture<Failover> failover = new CompletableFuture<>();
    private volatile State state = State.WAITING;
    private volatile long lastHeartbeatNanos = System.nanoTime();
    private volatile boolean primaryDown;
    private volatile boolean closed;

    /** What a failover did: the running VM, the checkpoint it resumed, detection → running. */
    public record Failover(VmProcess vm, long epoch, double failoverMs, String cause) {
    }

    public BackupGuard(VmLauncher launcher, VmSpec spec, BackupServer.Endpoint endpoint, Duration detection) {
        this.launcher = launcher;
        this.spec = spec;
        this.endpoint = endpoint;
        this.detection = detection;
        this.watcher = new Thread(this::watch, "backup-guard-" + spec.name());
        watcher.setDaemon(true);
        watcher.start();
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
                log.warn("vm={} epoch={} event=stand-down reason=\"{}\" action=\"stored state is stale, will not fail over\"",
                        spec.name(), m.epoch(), m.reason());
                if (state != State.FAILED_OVER) {
                    state = State.STALE;
                }
            }
            default -> {
            }
        }
    }

    public State state() {
        return state;
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
                failOver(primaryDown ? "primary reported down" : (session ? "replication stalled" : "replication ended")
                        + " and the primary is silent for " + detection.toMillis() + " ms");
                return;
            }
            sleep(5);
        }
    }

    private boolean heartbeatFresh() {
        return System.nanoTime() - lastHeartbeatNanos < detection.toNanos();
    }

    private void failOver(String cause) {
        long detected = System.nanoTime();
        long epoch = endpoint.store().committedEpoch();
        String stale = endpoint.staleReason();
        if (stale != null) {
            state = State.STALE;
            log.error("vm={} epoch={} event=failover-refused cause=\"{}\" stale=\"{}\"", spec.name(), epoch, cause, stale);
            failover.completeExceptionally(new IllegalStateException("VM '" + spec.name() + "' epoch " + epoch
                    + ": not failing over, the backup is stale: " + stale));
            return;
        }
        log.warn("vm={} epoch={} event=failover-start cause=\"{}\"", spec.name(), epoch, cause);
        try {
            // A session still tearing down cannot commit any more (its primary is gone): the store's
            // committed epoch is final. The disks stop taking writes (a late write from a dying
            // primary belongs to an uncommitted epoch); listening stops once the VM runs.
            VmSpec restoreSpec = spec;
            if (endpoint.disks() != null) {
                endpoint.disks().stopServing();
                restoreSpec = withDisks(spec, endpoint.disks().images());
            }
            Restore.Restored r = Restore.start(launcher, restoreSpec, endpoint.store(), Duration.ofSeconds(30));
            endpoint.close();
            double ms = (System.nanoTime() - detected) / 1e6;
            state = State.FAILED_OVER;
            log.warn("vm={} epoch={} event=failover-done failover_ms={} restore_ms={}", spec.name(), r.epoch(),
                    String.format("%.1f", ms), String.format("%.1f", r.millis()));
            failover.complete(new Failover(r.vm(), r.epoch(), ms, cause));
        } catch (Exception e) {
            state = State.FAILOVER_FAILED;
            log.error("vm={} epoch={} event=failover-failed cause=\"{}\"", spec.name(), epoch, e.getMessage());
            failover.completeExceptionally(e);
        }
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

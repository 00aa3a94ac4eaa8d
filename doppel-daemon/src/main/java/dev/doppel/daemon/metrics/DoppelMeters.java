package dev.doppel.daemon.metrics;

import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.primary.ProtectionEvents;
import dev.doppel.remus.primary.ProtectionState;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.remus.service.BackupEvents;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Doppel's meters (Micrometer; scraped as Prometheus text at {@code /metrics}). Names are in base
 * units — the Prometheus registry adds {@code _seconds}, {@code _bytes} and {@code _total}. The
 * primary side counts what its checkpoint loop sees (pauses, lag, losses), the backup side what it
 * receives and commits (dirty pages, bytes, commit time, failovers): one series per VM and host role.
 */
public final class DoppelMeters implements ProtectionEvents, BackupEvents {
    private final MeterRegistry registry;
    private final Function<String, ProtectionStatus> protection;

    /** @param protection the current protection status of a VM (null when not protected from here) */
    public DoppelMeters(MeterRegistry registry, Function<String, ProtectionStatus> protection, Supplier<Number> vmsRunning,
                        Supplier<Number> clonesAlive) {
        this.registry = registry;
        this.protection = protection;
        Gauge.builder("doppel.vms.running", vmsRunning).description("VMs whose QEMU runs on this host").register(registry);
        Gauge.builder("doppel.fork.clones.alive", clonesAlive).description("clones of the daemon's fork families that run").register(registry);
    }

    /** A VM's per-epoch meters, built once: they are recorded on the checkpoint loop's threads every epoch. */
    private record PrimaryEpochMeters(Timer pause, Counter checkpoints) {
    }

    private record HeldOutputMeters(DistributionSummary frames, DistributionSummary bytes) {
    }

    private record BackupEpochMeters(DistributionSummary dirtyPages, DistributionSummary transfer, Timer commit) {
    }

    private final java.util.Map<String, PrimaryEpochMeters> primaryMeters = new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.Map<String, HeldOutputMeters> heldOutputMeters = new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.Map<String, BackupEpochMeters> backupMeters = new java.util.concurrent.ConcurrentHashMap<>();

    // ---------------------------------------------------------------------------------- primary side

    @Override
    public void protectedNow(String vm, String backup) {
        Gauge.builder("doppel.protection.protected", () -> {
            ProtectionStatus s = protection.apply(vm);
            return s != null && s.state() == ProtectionState.PROTECTED ? 1 : 0;
        }).tag("vm", vm).description("1 while the VM is protected (checkpoints commit on a backup)").register(registry);
        Gauge.builder("doppel.backup.lag", () -> {
            ProtectionStatus s = protection.apply(vm);
            return s == null || s.lagMs() < 0 ? Double.NaN : s.lagMs() / 1000.0;
        }).tag("vm", vm).baseUnit("seconds").description("time since the backup last committed a checkpoint of the VM").register(registry);
        Gauge.builder("doppel.output.release.mean", () -> {
            ProtectionStatus s = protection.apply(vm);
            return s == null ? Double.NaN : s.outputReleaseMs() / 1000.0;
        }).tag("vm", vm).baseUnit("seconds").description("mean time per checkpoint to release the epoch's held output").register(registry);
        Gauge.builder("doppel.output.held.netdevs", () -> {
            ProtectionStatus s = protection.apply(vm);
            return s == null ? 0 : s.heldNetdevs().size();
        }).tag("vm", vm).description("NIC backends whose output is held until the backup commits").register(registry);
        Gauge.builder("doppel.disk.mirrors", () -> {
            ProtectionStatus s = protection.apply(vm);
            return s != null && s.state() == ProtectionState.PROTECTED ? s.replicatedDisks().size() : 0;
        }).tag("vm", vm).description("disks mirrored synchronously to the backup (0 when protection is down)").register(registry);
    }

    @Override
    public void checkpointCommitted(String vm, long epoch, long pauseNanos) {
        PrimaryEpochMeters m = primaryMeters.computeIfAbsent(vm, v -> new PrimaryEpochMeters(
                Timer.builder("doppel.checkpoint.pause").tag("vm", v).description("guest pause per checkpoint (stop to resume)")
                        .publishPercentileHistogram().minimumExpectedValue(Duration.ofNanos(500_000))
                        .maximumExpectedValue(Duration.ofSeconds(10)).register(registry),
                Counter.builder("doppel.checkpoints").tag("vm", v).description("checkpoints committed by the backup").register(registry)));
        m.pause().record(pauseNanos, TimeUnit.NANOSECONDS);
        m.checkpoints().increment();
    }

    @Override
    public void outputReleased(String vm, long epoch, long frames, long bytes) {
        HeldOutputMeters m = heldOutputMeters.computeIfAbsent(vm, v -> new HeldOutputMeters(
                DistributionSummary.builder("doppel.output.held.frames").tag("vm", v)
                        .description("frames of the guest's output held per epoch until the backup committed it (tap counters)")
                        .publishPercentileHistogram().minimumExpectedValue(1.0).maximumExpectedValue(10_000.0).register(registry),
                DistributionSummary.builder("doppel.output.held").tag("vm", v).baseUnit("bytes")
                        .description("bytes of the guest's output held per epoch until the backup committed it (tap counters)")
                        .publishPercentileHistogram().minimumExpectedValue(64.0).maximumExpectedValue(1e9).register(registry)));
        m.frames().record(frames);
        m.bytes().record(bytes);
    }

    @Override
    public void backupLost(String vm, long epoch, String cause, boolean fenced) {
        Counter.builder("doppel.backup.lost").tag("vm", vm).tag("fenced", Boolean.toString(fenced))
                .description("times the VM's backup was lost").register(registry).increment();
    }

    @Override
    public void primaryLost(String vm, long epoch, String cause) {
        Counter.builder("doppel.primary.lost").tag("vm", vm).description("times the VM's primary QEMU died under protection")
                .register(registry).increment();
    }

    // ----------------------------------------------------------------------------------- backup side

    @Override
    public void epochCommitted(String vm, EpochMetrics e) {
        BackupEpochMeters m = backupMeters.computeIfAbsent(vm, v -> new BackupEpochMeters(
                DistributionSummary.builder("doppel.epoch.dirty.pages").tag("vm", v).description("pages with data per committed epoch")
                        .publishPercentileHistogram().minimumExpectedValue(1.0).maximumExpectedValue(1e7).register(registry),
                DistributionSummary.builder("doppel.epoch.transfer").tag("vm", v).baseUnit("bytes")
                        .description("bytes received per committed epoch")
                        .publishPercentileHistogram().minimumExpectedValue(1024.0).maximumExpectedValue(1e10).register(registry),
                Timer.builder("doppel.backup.commit").tag("vm", v).description("backup commit of an epoch, up to the commit point")
                        .publishPercentileHistogram().minimumExpectedValue(Duration.ofNanos(100_000))
                        .maximumExpectedValue(Duration.ofSeconds(10)).register(registry)));
        m.dirtyPages().record(e.dataPages());
        m.transfer().record(e.wireBytes());
        m.commit().record(e.commitNanos(), TimeUnit.NANOSECONDS);
    }

    @Override
    public void failedOver(String vm, BackupGuard.Failover f) {
        Counter.builder("doppel.failovers").tag("vm", vm).description("failovers to this host").register(registry).increment();
        Timer.builder("doppel.failover").tag("vm", vm).description("failover: primary lost detected to restored VM running")
                .register(registry).record(Math.round(f.failoverMs() * 1e6), TimeUnit.NANOSECONDS);
    }

    @Override
    public void failoverRefused(String vm, String cause, boolean stale) {
        Counter.builder("doppel.failovers.refused").tag("vm", vm).tag("stale", Boolean.toString(stale))
                .description("failovers this host refused (stale store, lease not obtained)").register(registry).increment();
    }

    // --------------------------------------------------------------------------------------------- fork

    /** A fork: its latency (request to clones running) and the parent's pause. */
    public void forked(String parent, int clones, double forkMs, double parentPauseMs) {
        Timer.builder("doppel.fork").tag("vm", parent).description("fork: request to clones started")
                .register(registry).record(Math.round(forkMs * 1e6), TimeUnit.NANOSECONDS);
        Timer.builder("doppel.fork.parent.pause").tag("vm", parent).description("the parent's pause during a fork")
                .register(registry).record(Math.round(parentPauseMs * 1e6), TimeUnit.NANOSECONDS);
        Counter.builder("doppel.fork.clones.created").tag("vm", parent).description("clones created").register(registry).increment(clones);
    }

    /**
     * The page servers of remote forks (clones on other hosts), summed over the daemon's life: page
     * requests, pages sent, the bytes the clones' streams carried, the bytes that crossed the network,
     * and what multicast saved (streams minus network, multicast forks only).
     */
    public void pageServers(dev.doppel.daemon.fork.PageServerTotals totals) {
        // Micrometer holds a function counter's object weakly: the totals object itself, which the fork
        // families keep, not a lambda over it (that would be collected, and the series would read 0).
        FunctionCounter.builder("doppel.pageserver.requests", totals, t -> t.now().requests())
                .description("page requests from remote clones (userfaultfd misses sent on the return path)").register(registry);
        FunctionCounter.builder("doppel.pageserver.pages.sent", totals, t -> t.now().pagesSent())
                .description("pages sent to remote clones (on request, pushed, at the end)").register(registry);
        FunctionCounter.builder("doppel.pageserver.clone.streams", totals, t -> t.now().cloneBytes()).baseUnit("bytes")
                .description("bytes the remote clones' migration streams carried (what unicast from here sends)").register(registry);
        FunctionCounter.builder("doppel.pageserver.network.sent", totals, t -> t.now().networkBytes()).baseUnit("bytes")
                .description("bytes the page servers put on the network from this host (multicast: each page once)").register(registry);
        FunctionCounter.builder("doppel.multicast.saved", totals, t -> t.now().multicastSavedBytes()).baseUnit("bytes")
                .description("bytes multicast saved: remote clones' streams minus what crossed the network").register(registry);
    }
}

package dev.doppel.remus.primary;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.qmp.QmpException;
import dev.doppel.remus.control.HeartbeatSender;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.PrimaryFence;
import dev.doppel.vm.Accelerator;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The checkpoint loop of one protected VM, on the primary.
 *
 * <p>QEMU runs the loop itself (COLO, {@code x-checkpoint-delay}): it tracks dirty pages, stops the
 * guest every interval, sends dirty RAM and device state, and resumes the guest when the backup
 * has committed the epoch (VMSTATE_LOADED). This class starts that loop, watches it through QMP
 * events (STOP/RESUME bracket every checkpoint: the guest's pause), and acts when it goes wrong:
 * <ul>
 *   <li>a checkpoint that keeps the guest stopped longer than the backup timeout means the backup
 *       is gone or frozen: {@code x-colo-lost-heartbeat} (and an out-of-band yank of the migration
 *       if QEMU does not leave COLO at once), make sure the guest runs, report it loudly, and try
 *       to protect again every few seconds (a full synchronisation);</li>
 *   <li>a migration that ends {@code completed} without entering COLO (the 10.0.0–10.0.6 defect)
 *       would leave the guest paused: resume it and fail deliberately.</li>
 * </ul>
 * With a {@link ProtectionScope} it also holds the guest's network output per epoch ({@link
 * OutputHold}, released by the {@link CheckpointRelay} when the backup commits) and replicates its
 * disks synchronously ({@link DiskReplication}); a disk that stops replicating ends protection.
 */
public final class PrimaryProtector implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PrimaryProtector.class);
    private static final Duration COLO_EXIT_WAIT = Duration.ofSeconds(1);
    /** After QMP ended: how long to wait for the QEMU process to be reaped before calling it dead. */
    private static final Duration QEMU_EXIT_WAIT = Duration.ofSeconds(2);
    /**
     * At the end of the initial synchronisation the guest stays stopped until the backup has stored
     * the whole initial state (CHECKPOINT_READY): longer than a checkpoint, but still bounded.
     */
    private static final Duration INITIAL_COMMIT_LIMIT = Duration.ofSeconds(10);

    private final String vm;
    private final QmpClient qmp;
    private final ProtectionOptions options;
    private final Supplier<ProtectionTarget> targets;
    private final ProtectionScope scope;
    private final PrimaryFence fencing;
    private volatile InetSocketAddress backup;
    private final Consumer<String> progress;
    private final ScheduledExecutorService timer;
    private final Consumer<QmpEvent> eventListener = this::onEvent;
    private final Object lock = new Object();

    private volatile ProtectionState state = ProtectionState.STOPPED;
    private volatile CheckpointStats stats = new CheckpointStats();
    private volatile long stoppedAtNanos;        // 0 while the guest runs
    /** From the end of the initial stream until the guest first resumes: the backup stores the whole state. */
    private volatile boolean initialCommitPending;
    private volatile long lastCheckpointNanos;   // when the last checkpoint completed (guest resumed)
    private volatile String lastProblem = "";
    private volatile ProtectionEvents events = ProtectionEvents.NONE;
    private volatile long lostBackups;
    private volatile boolean closed;
    private ScheduledFuture<?> watchdog;
    private ScheduledFuture<?> reprotect;
    private final InetSocketAddress control;
    private HeartbeatSender heartbeat;
    private DiskReplication diskReplication;
    private OutputHold outputHold;
    /** What each commit released of the held output (null: not measurable, see the class). */
    private volatile ReleasedOutputCounter releasedOutput;
    private CheckpointRelay relay;

    /**
     * @param backup   where QEMU sends the replication stream (the backup's port for this VM)
     * @param control  the backup service's control port (heartbeats, primary-down, stand-down), or null
     * @param progress receives human-readable progress lines (initial synchronisation), may be a no-op
     */
    public PrimaryProtector(String vm, QmpClient qmp, InetSocketAddress backup, String backupStore, InetSocketAddress control,
                            ProtectionOptions options, PrimaryFence fencing, Consumer<String> progress) {
        this(vm, qmp, () -> ProtectionTarget.memoryOnly(backup, backupStore), control, options, ProtectionScope.memoryOnly(),
                fencing, progress);
    }

    /**
     * @param targets  asked at every protection attempt for the backup's ports (they change when a
     *                 returning backup sets up a new store)
     * @param scope    output and disks to protect as well
     * @param fencing  the VM's lease and QEMU process: output leaves without a backup's commit only
     *                 once the ownership record says so, and the QEMU is killed when it may not run
     */
    public PrimaryProtector(String vm, QmpClient qmp, Supplier<ProtectionTarget> targets, InetSocketAddress control,
                            ProtectionOptions options, ProtectionScope scope, PrimaryFence fencing, Consumer<String> progress) {
        this.fencing = fencing;
        this.vm = vm;
        this.qmp = qmp;
        this.targets = targets;
        this.scope = scope;
        this.control = control;
        this.options = options;
        this.progress = progress;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "remus-watchdog-" + vm);
            t.setDaemon(true);
            return t;
        });
        qmp.addEventListener(eventListener);
        // QEMU gone (crash, kill): tell the backup at once instead of letting it wait for a timeout.
        qmp.whenDisconnected().thenRun(this::primaryGone);
    }

    /** Where this protector reports protection, checkpoints and losses as they happen (replaces the previous one). */
    public void reportTo(ProtectionEvents events) {
        this.events = events == null ? ProtectionEvents.NONE : events;
    }

    /**
     * Starts protection: full synchronisation to the backup, then COLO checkpoints. Returns when the
     * VM is protected. On failure the guest keeps running unprotected and the exception says why.
     */
    public void protect() {
        synchronized (lock) {
            if (closed) {
                throw new ProtectionException(vm, 0, "protector is closed");
            }
            state = ProtectionState.SYNCING;
            stats = new CheckpointStats();
            initialCommitPending = true;
            stoppedAtNanos = 0;
            try {
                adoptLeftover();
                startColo();
                awaitColo();
            } catch (RuntimeException e) {
                lastProblem = e.getMessage();
                abandonDisks();
                if (!fencing.goUnprotected("initial synchronisation failed")) {
                    state = ProtectionState.FENCED;
                    throw new ProtectionException(vm, 0, "fenced: " + fencing.fencedBecause(), e);
                }
                leaveColo("initial synchronisation failed");
                releaseScope();
                state = ProtectionState.UNPROTECTED;
                throw e instanceof ProtectionException pe ? pe : new ProtectionException(vm, 0, "cannot protect", e);
            }
            lastCheckpointNanos = System.nanoTime();
            state = ProtectionState.PROTECTED;
            if (control != null && heartbeat == null) {
                Duration period = Duration.ofMillis(Math.max(20, Math.min(100, options.interval().toMillis())));
                heartbeat = new HeartbeatSender(vm, control, period, qmp::isConnected, () -> stats.checkpoints(), scope.host(),
                        scope.tls());
            }
            long periodMs = Math.max(5, options.interval().toMillis() / 2);
            watchdog = timer.scheduleAtFixedRate(this::checkPause, periodMs, periodMs, TimeUnit.MILLISECONDS);
            log.info("vm={} event=protected backup={} interval_ms={} timeout_ms={}", vm, describe(backup),
                    options.interval().toMillis(), options.backupTimeout().toMillis());
            events.protectedNow(vm, describe(backup));
        }
    }

    /**
     * A controller that crashed left its protection in QEMU (COLO, held output, disk mirrors): the
     * guard kept the lease meanwhile, so no backup took over. Its backup store is given up first (the
     * record says "unprotected"; if that fails someone else owns the VM and the guard has killed the
     * QEMU), then COLO is left, the mirrors and filters removed (the held frames go out now), and a
     * fresh protection starts with a new store.
     */
    private void adoptLeftover() {
        LeftoverProtection leftover = LeftoverProtection.find(qmp);
        if (!leftover.present()) {
            return;
        }
        String why = "a previous controller's protection was left in QEMU (" + leftover + ")";
        log.warn("vm={} event=leftover-protection-found detail=\"{}\" action=\"record unprotected, clear it, protect anew\"", vm,
                leftover);
        progress.accept("re-attaching to " + vm + ": " + leftover + "; protecting it anew");
        if (!fencing.goUnprotected(why)) {
            throw new ProtectionException(vm, 0, "fenced while adopting the previous protection: " + fencing.fencedBecause());
        }
        if (leftover.colo) {
            leaveColo(why);
        }
        leftover.remove(qmp, vm);
        resumeGuest();
    }

    private void startColo() {
        if (!qmp.schema().hasMigrationCapability("x-colo")) {
            throw new ProtectionException(vm, 0, "this QEMU has no x-colo migration capability");
        }
        // Refuse a binary with a known COLO defect before touching the guest: it would be left paused
        // (10.0.0–10.0.6) or deadlock at the first checkpoint (TCG without patch 0002).
        Accelerator accel = qmp.execute("query-kvm").path("enabled").asBoolean(false) ? Accelerator.KVM : Accelerator.TCG;
        String defect = ColoSupport.problem(qmp.greeting().version(), accel);
        if (defect != null) {
            throw new ProtectionException(vm, 0, defect);
        }
        String status = qmp.execute("query-status").path("status").asText();
        if (!status.equals("running")) {
            throw new ProtectionException(vm, 0, "the VM is " + status + "; only a running VM can be protected");
        }
        List<Map<String, Object>> caps = new java.util.ArrayList<>(List.of(
                Map.of("capability", "x-colo", "state", true),
                Map.of("capability", "events", "state", true)));
        if (qmp.schema().hasMigrationCapability("x-ignore-shared")) {
            // A VM restored from a backup store runs on the store's file mapped share=on, and its
            // QEMU loaded that state with x-ignore-shared on: left on, a protection of it would send
            // no RAM at all.
            caps.add(Map.of("capability", "x-ignore-shared", "state", false));
        }
        qmp.execute("migrate-set-capabilities", Map.of("capabilities", caps));
        qmp.execute("migrate-set-parameters", Map.of("x-checkpoint-delay", options.interval().toMillis()));
        ProtectionTarget target = targets.get();
        backup = target.replication();
        try {
            // From here only this store may take the VM over; the old one (if any) no longer can.
            fencing.protectWith(target.store());
        } catch (FencingException e) {
            throw new ProtectionException(vm, 0, "the coordination service refused: " + e.getMessage(), e);
        }
        String uri = "tcp:" + describe(backup);
        try {
            if (!scope.disks().isEmpty()) {
                if (!target.disks().keySet().containsAll(scope.disks())) {
                    throw new ProtectionException(vm, 0, "the backup exports disks " + target.disks().keySet()
                            + " but " + scope.disks() + " must be replicated");
                }
                diskReplication = DiskReplication.start(vm, qmp, target.disks(), options.initialSyncTimeout(), scope.host(), scope.tls(),
                        progress);
                diskReplication.onFailure(why -> timer.execute(() -> lost(why)));
            }
            // The stream goes through the relay when output is held (it releases at each commit) and
            // whenever the link is TLS: QEMU's stream is plain, the relay is the TLS end.
            if (scope.holdsOutput() || scope.tls().secure()) {
                OutputHold hold = scope.holdsOutput() ? OutputHold.start(vm, qmp, scope.netdevs()) : null;
                outputHold = hold;
                if (hold != null) {
                    releasedOutput = ReleasedOutputCounter.of(vm, qmp, qemuPid(scope.runDir()), scope.netdevs());
                }
                relay = CheckpointRelay.start(vm, scope.runDir().resolve("colo-relay.sock"), backup, scope.host(), scope.tls(),
                        hold == null ? () -> { } : hold::release);
                uri = relay.migrationUri();
            }
        } catch (java.io.IOException e) {
            throw new ProtectionException(vm, 0, "cannot start the replication relay: " + e.getMessage(), e);
        }
        qmp.execute("migrate", Map.of("uri", uri));
        progress.accept("initial synchronisation of " + vm + " to " + describe(backup) + " started");
    }

    /** Out of band: frees a checkpoint stuck on a hung backup disk before anything in-band is tried. */
    private void abandonDisks() {
        if (diskReplication != null) {
            diskReplication.yank();
        }
    }

    /**
     * Ends disk replication and output holding; the held output is sent (the primary is the only
     * copy of the VM now: the backup was told to stand down, or protection ended).
     */
    private void releaseScope() {
        if (diskReplication != null) {
            diskReplication.close();
            diskReplication = null;
        }
        if (relay != null) {
            relay.close();
            relay = null;
        }
        releasedOutput = null;
        if (outputHold != null) {
            outputHold.close();
            outputHold = null;
        }
    }

    /** Waits for COLO mode while the initial stream is sent, showing progress. */
    private void awaitColo() {
        long deadline = System.nanoTime() + options.initialSyncTimeout().toNanos();
        long lastReport = 0;
        while (System.nanoTime() < deadline) {
            String mode = qmp.execute("query-colo-status").path("mode").asText();
            if (mode.equals("primary")) {
                progress.accept("initial synchronisation of " + vm + " done; checkpointing every "
                        + options.interval().toMillis() + " ms");
                return;
            }
            JsonNode mig = qmp.execute("query-migrate");
            String status = mig.path("status").asText();
            if (status.equals("completed")) {
                // The 10.0.0–10.0.6 defect: migration "completes", the guest stays paused in postmigrate.
                resumeGuest();
                throw new ProtectionException(vm, 0, "migration completed without entering COLO (QEMU with the "
                        + "10.0.0–10.0.6 COLO defect? see qemu-patches/0001); guest resumed unprotected");
            }
            if (status.equals("failed") || status.equals("cancelled")) {
                throw new ProtectionException(vm, 0, "initial synchronisation " + status + ": "
                        + mig.path("error-desc").asText("(no reason given)"));
            }
            long stoppedAt = stoppedAtNanos;
            if (stoppedAt != 0 && System.nanoTime() - stoppedAt > INITIAL_COMMIT_LIMIT.toNanos()) {
                throw new ProtectionException(vm, 0, "the backup did not confirm the initial state within "
                        + INITIAL_COMMIT_LIMIT.toSeconds() + " s while the guest was stopped");
            }
            if (System.nanoTime() - lastReport > 1_000_000_000L) {
                JsonNode ram = mig.path("ram");
                progress.accept(String.format("initial synchronisation of %s: %s, %d of %d MiB sent", vm, status,
                        ram.path("transferred").asLong() >> 20, ram.path("total").asLong() >> 20));
                lastReport = System.nanoTime();
            }
            sleep(50);
        }
        throw new ProtectionException(vm, 0, "initial synchronisation did not finish within "
                + options.initialSyncTimeout().toSeconds() + " s");
    }

    private void onEvent(QmpEvent e) {
        switch (e.name()) {
            case "STOP" -> stoppedAtNanos = System.nanoTime();
            case "RESUME" -> {
                initialCommitPending = false;
                long stoppedAt = stoppedAtNanos;
                stoppedAtNanos = 0;
                lastCheckpointNanos = System.nanoTime();
                if (stoppedAt != 0 && state == ProtectionState.PROTECTED) {
                    long pause = System.nanoTime() - stoppedAt;
                    stats.recordPause(pause);
                    long epoch = stats.checkpoints();
                    events.checkpointCommitted(vm, epoch, pause);
                    ReleasedOutputCounter counter = releasedOutput;
                    if (counter != null) {
                        // Off the event thread; the hold released this epoch's output before the resume.
                        timer.execute(() -> {
                            ReleasedOutputCounter.Released r = counter.sample();
                            if (r != null) {
                                events.outputReleased(vm, epoch, r.frames(), r.bytes());
                            }
                        });
                    }
                }
            }
            case "COLO_EXIT" -> {
                if (state == ProtectionState.PROTECTED) {
                    timer.execute(() -> lost("QEMU left COLO: " + e.data()));
                }
            }
            default -> {
            }
        }
    }

    /**
     * The primary QEMU itself is gone (crash, kill, host going down): nothing left to protect. Tell
     * the backup at once, so that it fails over now rather than after its detection timeout.
     */
    private void primaryGone() {
        ProtectionState was = state;
        if (closed || was == ProtectionState.STOPPED || was == ProtectionState.FENCED) {
            return;   // protection was already over: the VM being shut down is not news
        }
        cancelWatchdogQuietly();
        // A QMP connection can end while QEMU lives on (a crashed monitor client, a closed socket):
        // only a reaped process is a dead primary. Until then the lease stays, and no backup takes over.
        if (!fencing.confirmDead(QEMU_EXIT_WAIT)) {
            log.error("vm={} epoch={} event=qmp-lost-qemu-alive action=\"not reporting primary down; the lease stays held\"",
                    vm, stats.checkpoints());
            return;
        }
        if (state == ProtectionState.STOPPED) {
            return;   // its owner stopped it meanwhile (ownerStopped): a stand-down went out, not "primary down"
        }
        state = ProtectionState.PRIMARY_LOST;
        CheckpointRelay r = relay;
        if (r != null) {
            r.close();
        }
        fencing.close();   // the lease is free: the backup takes it at once instead of after the session timeout
        HeartbeatSender h = heartbeat;
        if (h != null && !closed && (was == ProtectionState.PROTECTED || was == ProtectionState.SYNCING)) {
            h.primaryDown("the primary QEMU process exited");
        }
        log.error("vm={} epoch={} event=primary-lost protection_was={}", vm, stats.checkpoints(), was);
        events.primaryLost(vm, stats.checkpoints(), "the primary QEMU process exited");
    }

    /**
     * The VM's owner stopped it through its manager (libvirt: {@code virsh destroy} or {@code shutdown}; the
     * QEMU is gone): an end of protection, not a lost primary. The backup is told to stand down; it believes
     * that only once the ownership record names no backup, which the guard's verdict wrote before this
     * ({@code GuardClient#stoppedByOwner}). If the QMP connection's end was seen first and "primary down"
     * already went out, the backup's failover attempt meets that record too and is refused.
     */
    public void ownerStopped(String why) {
        synchronized (lock) {
            ProtectionState was = state;
            if (closed || was == ProtectionState.STOPPED || was == ProtectionState.FENCED) {
                return;
            }
            cancelWatchdogQuietly();
            state = ProtectionState.STOPPED;
            lastProblem = "stopped by its owner: " + why;
            HeartbeatSender h = heartbeat;
            if (h != null) {
                h.standDown("the VM was stopped by its owner (" + why + "): nothing to take over");
            }
            CheckpointRelay r = relay;
            if (r != null) {
                r.close();
            }
            log.warn("vm={} epoch={} event=stopped-by-owner cause=\"{}\" protection_was={}", vm, stats.checkpoints(), why, was);
        }
    }

    private void cancelWatchdogQuietly() {
        ScheduledFuture<?> w = watchdog;
        if (w != null) {
            w.cancel(false);
        }
    }

    /**
     * Watchdog. Two ways a lost backup shows on the primary: QEMU stops the guest for a checkpoint
     * and the backup never confirms it (the guest stands still), or QEMU's COLO thread waits for
     * the backup's CHECKPOINT_REPLY before stopping the guest (the guest runs, but no checkpoint
     * completes any more: silently unprotected). Either beyond the timeout means the backup is gone.
     */
    private void checkPause() {
        if (state != ProtectionState.PROTECTED || !qmp.isConnected()) {
            return;
        }
        long now = System.nanoTime();
        long stoppedAt = stoppedAtNanos;
        // The stop at the end of the initial stream lasts until the backup has stored everything: it
        // gets the initial limit, not a checkpoint's timeout.
        long timeoutMs = initialCommitPending ? INITIAL_COMMIT_LIMIT.toMillis() : options.backupTimeout().toMillis();
        if (stoppedAt != 0 && (now - stoppedAt) / 1_000_000 > timeoutMs) {
            lost("guest stopped " + (now - stoppedAt) / 1_000_000 + " ms in checkpoint " + (stats.checkpoints() + 1)
                    + " (timeout " + timeoutMs + " ms): backup lost or frozen");
            return;
        }
        long sinceLast = (now - lastCheckpointNanos) / 1_000_000;
        if (stoppedAt == 0 && sinceLast > options.interval().toMillis() + timeoutMs) {
            lost("no checkpoint completed for " + sinceLast + " ms (interval " + options.interval().toMillis()
                    + " ms, timeout " + timeoutMs + " ms): backup lost or frozen");
        }
    }

    private void lost(String why) {
        synchronized (lock) {
            if (state != ProtectionState.PROTECTED || !qmp.isConnected() || fencing.fencedBecause() != null) {
                return;
            }
            lostBackups++;
            lastProblem = why;
            cancelWatchdog();
            // Output may leave without a commit only once no backup can take over any more.
            if (!fencing.goUnprotected(why)) {
                state = ProtectionState.FENCED;
                log.error("vm={} epoch={} event=backup-lost cause=\"{}\" action=\"fenced: {}\"", vm, stats.checkpoints(), why,
                        fencing.fencedBecause());
                events.backupLost(vm, stats.checkpoints(), why, true);
                return;
            }
            log.error("vm={} epoch={} event=backup-lost cause=\"{}\" action=\"continue unprotected, re-protect when the backup is back\"",
                    vm, stats.checkpoints(), why);
            events.backupLost(vm, stats.checkpoints(), why, false);
            if (heartbeat != null) {
                heartbeat.standDown(why);   // the backup must not resume a state the primary has moved past
            }
            abandonDisks();
            leaveColo(why);
            releaseScope();
            if (!qmp.isConnected()) {
                state = ProtectionState.PRIMARY_LOST;   // QEMU died meanwhile: nothing left to re-protect
                return;
            }
            state = ProtectionState.UNPROTECTED;
            scheduleReprotect();
        }
    }

    /**
     * Ends COLO on the primary so the guest runs on alone: lost-heartbeat makes QEMU's COLO thread
     * fail over to "primary alone"; if it is stuck in a socket call to a frozen backup, an
     * out-of-band yank of the migration breaks that call (in-band QMP may be blocked meanwhile).
     */
    private void leaveColo(String why) {
        try {
            String mode = qmp.execute("query-colo-status", null, Duration.ofSeconds(2)).path("mode").asText();
            if (mode.equals("primary")) {
                try (var exit = qmp.subscribe("COLO_EXIT")) {
                    qmp.execute("x-colo-lost-heartbeat", null, Duration.ofSeconds(2));
                    if (exit.poll(COLO_EXIT_WAIT) == null) {
                        yankMigration();
                    }
                }
            } else if (!qmp.execute("query-migrate").path("status").asText().matches("completed|failed|cancelled|none")) {
                qmp.execute("migrate_cancel", null, Duration.ofSeconds(2));
            }
        } catch (QmpException e) {
            log.warn("vm={} leaving COLO in-band failed ({}); yanking the migration out of band", vm, e.getMessage());
            yankMigration();
        }
        resumeGuest();
    }

    private void yankMigration() {
        try {
            qmp.executeOob("yank", Map.of("instances", List.of(Map.of("type", "migration"))), Duration.ofSeconds(2));
        } catch (QmpException e) {
            log.warn("vm={} yank of the migration failed: {}", vm, e.getMessage());
        }
    }

    /** The guest must never stay stopped because of protection. */
    private void resumeGuest() {
        for (int attempt = 0; attempt < 50 && qmp.isConnected(); attempt++) {
            try {
                String status = qmp.execute("query-status", null, Duration.ofSeconds(2)).path("status").asText();
                if (status.equals("running")) {
                    return;
                }
                if (status.equals("paused") || status.equals("postmigrate") || status.equals("colo")) {
                    qmp.execute("cont", null, Duration.ofSeconds(2));
                    log.warn("vm={} event=resumed-after-protection-ended status_was={}", vm, status);
                    return;
                }
            } catch (QmpException e) {
                log.debug("vm={} resume attempt: {}", vm, e.getMessage());
            }
            sleep(20);
        }
        if (qmp.isConnected()) {
            log.error("vm={} event=guest-not-running cause=\"could not resume the guest after protection ended\"", vm);
        }
    }

    private void scheduleReprotect() {
        if (closed || options.reprotectDelay().isZero() || !qmp.isConnected()) {
            return;
        }
        reprotect = timer.schedule(() -> {
            try {
                log.info("vm={} event=reprotect-attempt backup={}", vm, describe(backup));
                protect();
            } catch (RuntimeException e) {
                log.warn("vm={} event=reprotect-failed cause=\"{}\"", vm, e.getMessage());
                scheduleReprotect();
            }
        }, options.reprotectDelay().toMillis(), TimeUnit.MILLISECONDS);
    }

    public ProtectionState state() {
        return state;
    }

    public CheckpointStats stats() {
        return stats;
    }

    /** Mean ms per checkpoint spent releasing held output (0 without output commit). */
    public double meanOutputReleaseMs() {
        CheckpointRelay r = relay;
        return r == null ? 0 : r.meanReleaseMs();
    }

    public ProtectionStatus status() {
        CheckpointStats s = stats;
        long lag = state == ProtectionState.PROTECTED ? (System.nanoTime() - lastCheckpointNanos) / 1_000_000 : -1;
        return new ProtectionStatus(vm, state, describe(backup), s.checkpoints(), s.lastPauseMs(), s.pausePercentileMs(50),
                s.pausePercentileMs(99), s.maxPauseMs(), lag, lostBackups, lastProblem, scope.netdevs(), scope.disks(),
                meanOutputReleaseMs());
    }

    private void cancelWatchdog() {
        if (watchdog != null) {
            watchdog.cancel(false);
            watchdog = null;
        }
    }

    /** Stops protection; the guest continues unprotected. */
    @Override
    public void close() {
        synchronized (lock) {
            closed = true;
            if (reprotect != null) {
                reprotect.cancel(false);
            }
            cancelWatchdog();
            // The record first, then the stand-down: the backup believes a stand-down only once the
            // record no longer names its store.
            boolean unprotected = false;
            if ((state == ProtectionState.PROTECTED || state == ProtectionState.SYNCING) && qmp.isConnected()) {
                unprotected = fencing.goUnprotected("protection stopped by the operator");
                if (!unprotected) {
                    state = ProtectionState.FENCED;
                }
            }
            if (heartbeat != null) {
                // Without QMP the QEMU may be dying: primaryGone() decides (primary down), not a stand-down.
                if (state != ProtectionState.PRIMARY_LOST && state != ProtectionState.FENCED && qmp.isConnected()) {
                    heartbeat.standDown("protection stopped by the operator");
                }
                heartbeat.close();
            }
            if (unprotected) {
                leaveColo("protection stopped by the operator");
                releaseScope();
            } else if (relay != null) {
                relay.close();
            }
            if (state != ProtectionState.PRIMARY_LOST && state != ProtectionState.FENCED) {
                state = ProtectionState.STOPPED;
            }
        }
        qmp.removeEventListener(eventListener);
        timer.shutdownNow();
    }

    private static String describe(InetSocketAddress a) {
        if (a == null) {
            return "(not yet known)";
        }
        return a.getHostString() + ":" + a.getPort();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ProtectionException("?", 0, "interrupted");
        }
    }

    /** The QEMU pid from the VM's run directory record, or -1 (a VM not started by Doppel's launcher). */
    private static long qemuPid(java.nio.file.Path runDir) {
        if (runDir == null || !java.nio.file.Files.exists(new dev.doppel.vm.VmRunDir(runDir).specFile())) {
            return -1;
        }
        try {
            return dev.doppel.vm.VmRecord.readFrom(new dev.doppel.vm.VmRunDir(runDir)).pid();
        } catch (java.io.UncheckedIOException e) {
            return -1;
        }
    }
}

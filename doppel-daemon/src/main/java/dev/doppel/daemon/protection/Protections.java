package dev.doppel.daemon.protection;

import dev.doppel.daemon.ApiException;
import dev.doppel.daemon.events.EventHub;
import dev.doppel.remus.primary.ProtectionEvents;
import dev.doppel.remus.service.PrimarySession;
import dev.doppel.remus.service.ProtectionIntent;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The VMs this host protects (it is their primary). The operator's intent is kept in each VM's run
 * directory, so a restarted daemon protects them again: the VM's guard kept its lease meanwhile, and
 * the protector clears what the previous daemon left in QEMU and synchronises anew.
 */
public final class Protections implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Protections.class);
    private static final Duration RETRY = Duration.ofSeconds(5);

    private final EventHub events;
    private final ProtectionEvents reporter;
    private final Map<String, PrimarySession> sessions = new ConcurrentHashMap<>();
    /** VMs a protection attempt runs for right now (a second request is refused, not queued). */
    private final Map<String, Boolean> inProgress = new ConcurrentHashMap<>();
    private final ScheduledExecutorService retries = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "protection-retries");
        t.setDaemon(true);
        return t;
    });
    private volatile boolean closed;

    public Protections(EventHub events, ProtectionEvents metrics) {
        this.events = events;
        this.reporter = new ProtectionEvents() {
            @Override
            public void protectedNow(String vm, String backup) {
                metrics.protectedNow(vm, backup);
                events.publish("protected", vm, 0, null, Map.of("backup", backup));
            }

            @Override
            public void checkpointCommitted(String vm, long epoch, long pauseNanos) {
                metrics.checkpointCommitted(vm, epoch, pauseNanos);
                events.publish("checkpoint", vm, epoch, null, Map.of("pauseMs", pauseNanos / 1e6));
            }

            @Override
            public void outputReleased(String vm, long epoch, long frames, long bytes) {
                metrics.outputReleased(vm, epoch, frames, bytes);   // metrics only: one event per checkpoint is enough
            }

            @Override
            public void backupLost(String vm, long epoch, String cause, boolean fenced) {
                metrics.backupLost(vm, epoch, cause, fenced);
                events.publish("backup-lost", vm, epoch, cause, Map.of("fenced", fenced));
            }

            @Override
            public void primaryLost(String vm, long epoch, String cause) {
                metrics.primaryLost(vm, epoch, cause);
                events.publish("primary-lost", vm, epoch, cause, Map.of());
            }
        };
    }

    /** Protects a running VM; returns once the initial synchronisation is done. */
    public ProtectionStatus protect(String vm, ProtectionIntent intent) throws IOException {
        VmRunDir dir = VmRunDir.of(vm);
        if (!Files.exists(dir.specFile()) || !VmRecord.readFrom(dir).alive()) {
            throw new ApiException(404, vm, "no running VM '" + vm + "' on this host");
        }
        if (!Files.exists(dir.guestFile())) {
            throw new ApiException(409, vm, "VM '" + vm + "' has no guest description: start it through Doppel");
        }
        PrimarySession existing = sessions.get(vm);
        if (existing != null && existing.qemuConnected()) {
            throw new ApiException(409, vm, "VM '" + vm + "' is already protected (" + existing.status().state() + ")");
        }
        intent.write(dir.path());
        return attempt(vm, intent);
    }

    private ProtectionStatus attempt(String vm, ProtectionIntent intent) throws IOException {
        if (inProgress.putIfAbsent(vm, true) != null) {
            throw new ApiException(409, vm, "a protection of VM '" + vm + "' is already being set up");
        }
        try {
            PrimarySession old = sessions.remove(vm);
            if (old != null) {
                old.close();
            }
            PrimarySession s = PrimarySession.protect(vm, intent, reporter,
                    line -> events.publish("protection-progress", vm, -1, null, Map.of("message", line)));
            if (closed) {
                s.close();
                throw new ApiException(503, vm, "the daemon is stopping");
            }
            sessions.put(vm, s);
            return s.status();
        } finally {
            inProgress.remove(vm);
        }
    }

    /** The VM's protection status, or null when this host does not protect it. */
    public ProtectionStatus status(String vm) {
        PrimarySession s = sessions.get(vm);
        return s == null ? null : s.status();
    }

    /** Stops protecting the VM (it runs on) and forgets the intent. */
    public void unprotect(String vm) throws IOException {
        PrimarySession s = sessions.remove(vm);
        VmRunDir dir = VmRunDir.of(vm);
        boolean hadIntent = Files.exists(dir.path().resolve(ProtectionIntent.FILE));
        ProtectionIntent.delete(dir.path());
        if (s == null && !hadIntent) {
            throw new ApiException(404, vm, "VM '" + vm + "' is not protected from this host");
        }
        if (s != null) {
            s.close();
        }
        events.publish("unprotected", vm, -1, "stopped on request", Map.of());
    }

    /**
     * Protects again every running VM whose intent a previous daemon left, in the background, retrying
     * every {@code RETRY} while the backup cannot be reached. Returns the VMs it found.
     */
    public List<String> adopt() {
        List<String> found = new ArrayList<>();
        for (VmRunDir dir : VmRunDir.all()) {
            try {
                ProtectionIntent intent = ProtectionIntent.read(dir.path());
                String vm = dir.path().getFileName().toString();
                if (intent != null && VmRecord.readFrom(dir).alive()) {
                    found.add(vm);
                    retries.execute(() -> adoptOne(vm, intent));
                }
            } catch (IOException | RuntimeException e) {
                log.warn("rundir={} event=protection-intent-unreadable cause=\"{}\"", dir.path(), e.getMessage());
            }
        }
        return found;
    }

    private void adoptOne(String vm, ProtectionIntent intent) {
        if (closed || !VmRecord.readFrom(VmRunDir.of(vm)).alive() || sessions.containsKey(vm)) {
            return;
        }
        try {
            long t0 = System.nanoTime();
            attempt(vm, intent);
            events.publish("protection-resumed", vm, 0, null, Map.of("ms", (System.nanoTime() - t0) / 1_000_000));
        } catch (IOException | RuntimeException e) {
            events.publish("protection-retry", vm, -1, e.getMessage(), Map.of("inSeconds", RETRY.toSeconds()));
            if (!closed) {
                retries.schedule(() -> adoptOne(vm, intent), RETRY.toMillis(), TimeUnit.MILLISECONDS);
            }
        }
    }

    /**
     * Daemon stop: every protection ends as an operator's stop would (record unprotected, backup stands
     * down, held output released, guard gives the lease back); the intents stay for the next daemon.
     */
    @Override
    public void close() {
        closed = true;
        retries.shutdownNow();
        for (PrimarySession s : sessions.values()) {
            try {
                s.close();
            } catch (RuntimeException e) {
                log.warn("vm={} event=protection-close-failed cause=\"{}\"", s.vm(), e.getMessage());
            }
        }
        sessions.clear();
    }
}

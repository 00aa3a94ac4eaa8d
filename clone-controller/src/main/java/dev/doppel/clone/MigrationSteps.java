package dev.doppel.clone;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpEvent;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The QMP steps of a local migration, shared by fork (device state to a file, x-ignore-shared) and
 * reshare (full live migration onto a fresh shared memory file). Completion is observed through
 * MIGRATION events, which QEMU emits only with the {@code events} capability on.
 */
final class MigrationSteps {
    private static final Duration STATUS_POLL = Duration.ofMillis(200);

    private MigrationSteps() {
    }

    /** Capabilities for a migration: {@code x-ignore-shared} as given, {@code events} always on. */
    static void setCapabilities(QmpClient qmp, boolean ignoreShared) {
        qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "x-ignore-shared", "state", ignoreShared),
                Map.of("capability", "events", "state", true))));
    }

    /** Starts an outgoing migration and waits until it completes; fails with QEMU's error otherwise. */
    static void migrateAndWait(String vm, QmpClient qmp, String uri, Duration timeout) {
        try (EventSubscription events = qmp.subscribe("MIGRATION")) {
            qmp.execute("migrate", Map.of("uri", uri));
            awaitCompleted(vm, qmp, events, timeout, "outgoing migration to " + uri);
        }
    }

    /**
     * Issues {@code migrate-incoming} (returns once QEMU accepted it, i.e. it listens or reads) and
     * returns a future that completes when the destination reports the migration completed.
     */
    static CompletableFuture<Void> startIncoming(String vm, QmpClient qmp, String uri, Duration timeout) {
        EventSubscription events = qmp.subscribe("MIGRATION");
        try {
            qmp.execute("migrate-incoming", Map.of("uri", uri));
        } catch (RuntimeException e) {
            events.close();
            throw new ForkException(vm, "migrate-incoming " + uri + " refused", e);
        }
        return CompletableFuture.runAsync(() -> {
            try (events) {
                awaitCompleted(vm, qmp, events, timeout, "incoming migration from " + uri);
            }
        });
    }

    /** {@code migrate-incoming} and wait for completion, without blocking the caller's thread. */
    static CompletableFuture<Void> incomingAsync(String vm, QmpClient qmp, String uri, Duration timeout) {
        return CompletableFuture.supplyAsync(() -> startIncoming(vm, qmp, uri, timeout)).thenCompose(f -> f);
    }

    private static void awaitCompleted(String vm, QmpClient qmp, EventSubscription events, Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new ForkException(vm, "timed out after " + timeout.toMillis() + " ms waiting for " + what
                        + " (status " + status(qmp) + ")");
            }
            // Events are the fast path; a periodic query covers a QEMU whose events capability is off.
            QmpEvent e = events.poll(Duration.ofNanos(Math.min(left, STATUS_POLL.toNanos())));
            String status = e != null ? e.data().path("status").asText() : status(qmp);
            if (status.equals("completed")) {
                return;
            }
            if (status.equals("failed") || status.equals("cancelled")) {
                throw new ForkException(vm, what + " " + status + ": " + errorDesc(qmp));
            }
        }
    }

    private static String status(QmpClient qmp) {
        try {
            return qmp.execute("query-migrate").path("status").asText("?");
        } catch (RuntimeException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    private static String errorDesc(QmpClient qmp) {
        try {
            JsonNode info = qmp.execute("query-migrate");
            return info.path("error-desc").asText(info.toString());
        } catch (RuntimeException e) {
            return e.getMessage();
        }
    }
}

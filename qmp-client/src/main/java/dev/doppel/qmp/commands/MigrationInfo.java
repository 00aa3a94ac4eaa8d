package dev.doppel.qmp.commands;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * {@code query-migrate}. Fields absent in QEMU's reply (they depend on the status) are null; everything else
 * stays available in {@link #raw()}.
 *
 * @param status          MigrationStatus ({@code none} when QEMU returned {@code {}}: no migration yet),
 *                        e.g. {@code setup}, {@code active}, {@code completed}, {@code failed}, {@code colo}
 * @param totalTimeMs     {@code total-time}
 * @param setupTimeMs     {@code setup-time}
 * @param downtimeMs      {@code downtime} (completed migrations)
 * @param expectedDowntimeMs {@code expected-downtime} (active migrations)
 * @param ram             {@code ram} statistics, or null
 * @param errorDesc       {@code error-desc} when failed
 * @param raw             the whole reply
 */
public record MigrationInfo(String status, Long totalTimeMs, Long setupTimeMs, Long downtimeMs, Long expectedDowntimeMs,
                            RamStats ram, String errorDesc, JsonNode raw) {

    /**
     * {@code MigrationStats} ({@code ram} member).
     *
     * @param dirtyPagesRate pages dirtied per second ({@code dirty-pages-rate}), null when not measured yet
     * @param mbps           throughput in megabits per second
     */
    public record RamStats(long transferred, long total, long remaining, long duplicate, long normal, long normalBytes,
                           Long dirtyPagesRate, double mbps, long dirtySyncCount, long pageSize, Long precopyBytes,
                           Long downtimeBytes, Long postcopyBytes, Long postcopyRequests) {

        public static RamStats from(JsonNode r) {
            return new RamStats(r.path("transferred").asLong(), r.path("total").asLong(), r.path("remaining").asLong(),
                    r.path("duplicate").asLong(), r.path("normal").asLong(), r.path("normal-bytes").asLong(),
                    Json.longOrNull(r, "dirty-pages-rate"), r.path("mbps").asDouble(), r.path("dirty-sync-count").asLong(),
                    r.path("page-size").asLong(), Json.longOrNull(r, "precopy-bytes"), Json.longOrNull(r, "downtime-bytes"),
                    Json.longOrNull(r, "postcopy-bytes"), Json.longOrNull(r, "postcopy-requests"));
        }
    }

    public static MigrationInfo from(JsonNode r) {
        String status = r.has("status") ? r.get("status").asText() : "none";
        JsonNode ram = r.get("ram");
        return new MigrationInfo(status, Json.longOrNull(r, "total-time"), Json.longOrNull(r, "setup-time"),
                Json.longOrNull(r, "downtime"), Json.longOrNull(r, "expected-downtime"),
                ram != null && ram.isObject() ? RamStats.from(ram) : null, Json.text(r, "error-desc"), r);
    }

    public boolean isCompleted() {
        return "completed".equals(status);
    }

    public boolean isFailed() {
        return "failed".equals(status);
    }

    /** True while data is moving or about to: setup, active, pre-switchover, device, postcopy-*, wait-unplug. */
    public boolean isInProgress() {
        return switch (status) {
            case "setup", "active", "pre-switchover", "device", "postcopy-active", "postcopy-paused",
                 "postcopy-recover-setup", "postcopy-recover", "wait-unplug", "cancelling" -> true;
            default -> false;
        };
    }
}

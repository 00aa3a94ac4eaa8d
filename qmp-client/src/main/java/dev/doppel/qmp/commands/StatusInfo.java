package dev.doppel.qmp.commands;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * {@code query-status}: {@code {"status": "running", "running": true}}.
 *
 * @param status QEMU's RunState, e.g. {@code prelaunch}, {@code running}, {@code paused}, {@code postmigrate},
 *               {@code inmigrate}, {@code colo}, {@code shutdown}
 */
public record StatusInfo(String status, boolean running) {

    public static StatusInfo from(JsonNode r) {
        return new StatusInfo(Json.text(r, "status"), r.path("running").asBoolean());
    }
}

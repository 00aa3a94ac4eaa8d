package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;

import java.time.Instant;

/**
 * An asynchronous QMP event, e.g. {@code STOP}, {@code RESUME}, {@code MIGRATION}.
 *
 * @param name      the {@code event} member
 * @param data      the {@code data} member; an empty object when QEMU sent none, never null
 * @param timestamp QEMU's host-clock time ({@code timestamp.seconds} + {@code timestamp.microseconds})
 * @param vmName    the VM whose QEMU sent it
 */
public record QmpEvent(String name, JsonNode data, Instant timestamp, String vmName) {

    public QmpEvent {
        if (data == null || data.isNull() || data.isMissingNode()) {
            data = JsonNodeFactory.instance.objectNode();
        }
    }

    /** Builds an event from a wire message that has an {@code event} member. */
    public static QmpEvent fromMessage(JsonNode message, String vmName) {
        JsonNode ts = message.path("timestamp");
        Instant when;
        if (ts.path("seconds").canConvertToLong() && ts.path("microseconds").canConvertToLong()
                && ts.path("seconds").asLong() >= 0) {
            when = Instant.ofEpochSecond(ts.get("seconds").asLong(), ts.get("microseconds").asLong() * 1000L);
        } else {
            when = Instant.now(); // QEMU uses -1 when it could not read the clock
        }
        return new QmpEvent(message.path("event").asText(), message.get("data"), when, vmName);
    }

    /** Shortcut for a text member of {@link #data}, or null. */
    public String dataText(String member) {
        JsonNode n = data.get(member);
        return n == null || n.isNull() ? null : n.asText();
    }

    @Override
    public String toString() {
        return "QmpEvent[" + vmName + " " + name + " " + data + " @" + timestamp + "]";
    }
}

package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;

/** The server greeting: {@code {"QMP": {"version": {...}, "capabilities": ["oob"]}}}. */
public record QmpGreeting(QemuVersion version, List<String> capabilities) {

    public QmpGreeting {
        capabilities = List.copyOf(capabilities);
    }

    /** True if the server offers out-of-band execution. */
    public boolean offersOob() {
        return capabilities.contains("oob");
    }

    /**
     * Parses the greeting message.
     *
     * @throws IllegalArgumentException if {@code message} is not a QMP greeting
     */
    public static QmpGreeting parse(JsonNode message) {
        JsonNode qmp = message == null ? null : message.get("QMP");
        if (qmp == null || !qmp.isObject()) {
            throw new IllegalArgumentException("not a QMP greeting (no \"QMP\" object)");
        }
        QemuVersion v = QemuVersion.fromVersionInfo(qmp.get("version"));
        JsonNode caps = qmp.get("capabilities");
        if (caps == null || !caps.isArray()) {
            throw new IllegalArgumentException("QMP greeting without a \"capabilities\" array");
        }
        List<String> list = new ArrayList<>();
        caps.forEach(c -> list.add(c.asText()));
        return new QmpGreeting(v, list);
    }
}

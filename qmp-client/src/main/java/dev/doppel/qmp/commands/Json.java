package dev.doppel.qmp.commands;

import com.fasterxml.jackson.databind.JsonNode;

/** Small null-tolerant accessors for reply parsing. */
final class Json {

    private Json() {
    }

    static String text(JsonNode n, String field) {
        JsonNode v = n == null ? null : n.get(field);
        return v == null || v.isNull() ? null : v.asText();
    }

    static Long longOrNull(JsonNode n, String field) {
        JsonNode v = n == null ? null : n.get(field);
        return v == null || !v.canConvertToLong() ? null : v.asLong();
    }
}

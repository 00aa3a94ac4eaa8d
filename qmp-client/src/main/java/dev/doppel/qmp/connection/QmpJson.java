package dev.doppel.qmp.connection;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.charset.StandardCharsets;
import java.util.Map;

/** Jackson configuration shared by the QMP layers, and helpers to show wire bytes in logs and errors. */
public final class QmpJson {

    /** Parses and writes wire messages. Rejects trailing garbage after a message on the same line. */
    public static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .build();

    /**
     * Turns command arguments given as Java objects into JSON: record/bean properties are written in QMP's
     * kebab-case ({@code nodeName} becomes {@code node-name}; {@code @JsonProperty} overrides) and null
     * properties are left out (QMP's optional members are absent, not null). Map keys are written as given.
     */
    public static final ObjectMapper ARGUMENTS = JsonMapper.builder()
            .propertyNamingStrategy(PropertyNamingStrategies.KEBAB_CASE)
            .defaultPropertyInclusion(JsonInclude.Value.construct(JsonInclude.Include.NON_NULL, JsonInclude.Include.USE_DEFAULTS))
            .build();

    private QmpJson() {
    }

    /**
     * Converts command arguments (null, a Map, a Jackson JsonNode, or any Jackson-serialisable object) into
     * the {@code arguments} object, or null when there are none.
     *
     * @throws IllegalArgumentException if they do not serialise to a JSON object
     */
    public static ObjectNode toArguments(Object arguments) {
        if (arguments == null) {
            return null;
        }
        JsonNode node;
        if (arguments instanceof JsonNode j) {
            node = j;
        } else if (arguments instanceof Map<?, ?> m) {
            node = MAPPER.valueToTree(m);
        } else {
            node = ARGUMENTS.valueToTree(arguments);
        }
        if (node == null || node.isNull() || node.isMissingNode()) {
            return null;
        }
        if (!node.isObject()) {
            throw new IllegalArgumentException("QMP arguments must be a JSON object, got " + node.getNodeType()
                    + " from " + arguments.getClass().getName());
        }
        return (ObjectNode) node;
    }

    /** Up to {@code max} characters of the bytes as text, control characters escaped, for logs and errors. */
    public static String snippet(byte[] data, int offset, int length, int max) {
        int n = Math.min(length, max);
        String s = new String(data, offset, n, StandardCharsets.UTF_8);
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\r') {
                b.append("\\r");
            } else if (c == '\n') {
                b.append("\\n");
            } else if (c < 0x20 || c == 0x7f) {
                b.append(String.format("\\x%02x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (length > max) {
            b.append("... (").append(length).append(" bytes)");
        }
        return b.toString();
    }

    /** Same as {@link #snippet(byte[], int, int, int)} for a whole string. */
    public static String snippet(String s, int max) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        return snippet(b, 0, b.length, max);
    }
}

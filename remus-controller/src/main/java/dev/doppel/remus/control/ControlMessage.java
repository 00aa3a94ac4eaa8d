package dev.doppel.remus.control;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;

/**
 * One line on the control channel (JSON).
 *
 * @param vm     the protected VM
 * @param type   {@link #HEARTBEAT} (the primary VM is alive), {@link #PRIMARY_DOWN} (its QEMU died:
 *               fail over now), {@link #STAND_DOWN} (the primary continues without this backup: its
 *               stored state is stale and must never be resumed)
 * @param epoch  the primary's checkpoint count when sent
 * @param reason free text for logs
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ControlMessage(String vm, String type, long epoch, String reason) {
    public static final String HEARTBEAT = "heartbeat";
    public static final String PRIMARY_DOWN = "primary-down";
    public static final String STAND_DOWN = "stand-down";
    /** Longest accepted line: a hostile peer must not make the reader buffer without bound. */
    public static final int MAX_LINE = 4096;

    private static final ObjectMapper MAPPER = new ObjectMapper();

    public String toLine() {
        try {
            return MAPPER.writeValueAsString(this) + "\n";
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Parses one line; throws IOException with the reason for anything that is not a control message. */
    public static ControlMessage parse(String line) throws IOException {
        if (line.length() > MAX_LINE) {
            throw new IOException("control line of " + line.length() + " bytes exceeds " + MAX_LINE);
        }
        ControlMessage m;
        try {
            m = MAPPER.readValue(line, ControlMessage.class);
        } catch (IOException e) {
            throw new IOException("malformed control line: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (m.vm() == null || m.type() == null
                || !(m.type().equals(HEARTBEAT) || m.type().equals(PRIMARY_DOWN) || m.type().equals(STAND_DOWN))) {
            throw new IOException("control line without a known type and vm: " + line);
        }
        return m;
    }
}

package dev.doppel.remus.nbd;

import java.io.IOException;

/**
 * The client broke the protocol in a way that leaves the byte stream unusable (bad magic, an option or
 * payload too large to skip safely), so the connection is closed. Names the phase (handshake, option,
 * transmission) and the export.
 */
public final class NbdProtocolException extends IOException {
    private final String phase;

    public NbdProtocolException(String exportName, String phase, String message) {
        super("NBD export '" + exportName + "', " + phase + ": " + message);
        this.phase = phase;
    }

    public String phase() {
        return phase;
    }
}

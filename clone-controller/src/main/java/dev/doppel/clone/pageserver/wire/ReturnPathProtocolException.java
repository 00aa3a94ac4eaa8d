package dev.doppel.clone.pageserver.wire;

import java.io.IOException;

/** Bytes on the return path that QEMU's destination would never send. */
public final class ReturnPathProtocolException extends IOException {
    public ReturnPathProtocolException(String message) {
        super(message);
    }
}

package dev.doppel.remus.stream;

import java.io.IOException;

/**
 * The migration stream is not what QEMU would send: names the byte offset in the stream, what the
 * reader expected there and what it found. An {@link IOException} so that callers treat a corrupt
 * stream like a broken connection: the checkpoint being read is discarded, nothing is committed.
 */
public final class StreamFormatException extends IOException {
    private final long offset;

    public StreamFormatException(long offset, String expected, String found) {
        super("migration stream at offset " + offset + ": expected " + expected + ", found " + found);
        this.offset = offset;
    }

    public long offset() {
        return offset;
    }
}

package dev.doppel.qmp.connection;

import java.util.Arrays;

/**
 * Splits an incoming byte stream into QMP messages. QEMU ends every message with CRLF and never puts a raw
 * newline inside one (JSON escapes it; the monitor's {@code pretty=on} mode is not supported), so a message is
 * everything up to {@code \n}, with a trailing {@code \r} dropped. Not thread safe: owned by the reader thread.
 */
public final class LineFramer {

    /** Receives each complete message (without line terminator); the array may be reused after the call. */
    @FunctionalInterface
    public interface Sink {
        void message(byte[] buf, int offset, int length);
    }

    /** A message (complete or still growing) is longer than the limit. */
    public static final class TooLongException extends Exception {
        private final long length;

        TooLongException(long length, int limit) {
            super("message exceeds " + limit + " bytes");
            this.length = length;
        }

        /** How many bytes of the message had been seen when the limit was hit. */
        public long length() {
            return length;
        }
    }

    private final int maxMessageBytes;
    private byte[] buf = new byte[8192];
    private int len;

    public LineFramer(int maxMessageBytes) {
        this.maxMessageBytes = maxMessageBytes;
    }

    /**
     * Appends {@code n} bytes and emits every message they complete, in order.
     *
     * @throws TooLongException as soon as a message is known to exceed the limit (without buffering the rest)
     */
    public void feed(byte[] data, int off, int n, Sink sink) throws TooLongException {
        int start = 0;
        ensure(len + n);
        System.arraycopy(data, off, buf, len, n);
        int scanFrom = len;
        len += n;
        for (int i = scanFrom; i < len; i++) {
            if (buf[i] == '\n') {
                int end = i;
                if (end > start && buf[end - 1] == '\r') {
                    end--;
                }
                if (end - start > maxMessageBytes) {
                    throw new TooLongException(end - start, maxMessageBytes);
                }
                sink.message(buf, start, end - start);
                start = i + 1;
            }
        }
        if (start > 0) {
            System.arraycopy(buf, start, buf, 0, len - start);
            len -= start;
        }
        // a trailing '\r' may still become part of CRLF; allow one byte of slack for it
        if (len > maxMessageBytes + 1) {
            throw new TooLongException(len, maxMessageBytes);
        }
    }

    /** Bytes of an unfinished message (no newline yet). */
    public int pendingLength() {
        return len;
    }

    /** A copy of the unfinished message bytes (for error reports). */
    public byte[] pendingBytes() {
        return Arrays.copyOf(buf, len);
    }

    private void ensure(int capacity) {
        if (capacity > buf.length) {
            buf = Arrays.copyOf(buf, Math.max(capacity, buf.length * 2));
        }
    }
}

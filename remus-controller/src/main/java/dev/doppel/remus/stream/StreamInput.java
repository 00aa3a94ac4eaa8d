package dev.doppel.remus.stream;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;

/**
 * Big-endian reads over an {@link InputStream} with an offset for error messages and a bounded
 * look-ahead ({@link #peek}). Reads never block for more bytes than the caller asked for: after the
 * last byte of a message QEMU waits for our answer, so reading ahead would deadlock.
 *
 * <p>Every short read is a {@link StreamFormatException} ("truncated"), never a silent zero.
 */
public final class StreamInput {
    private final InputStream in;
    private byte[] buf = new byte[64 * 1024];
    private int pos;      // next unread byte in buf
    private int limit;    // end of valid bytes in buf
    private long consumedBefore;   // stream offset of buf[0]
    private boolean ended;

    public StreamInput(InputStream in) {
        this.in = in;
    }

    /** Offset of the next byte to be read, from the start of this input. */
    public long offset() {
        return consumedBefore + pos;
    }

    /**
     * Makes at least {@code n} unread bytes available if the stream has them; returns how many are
     * available (less than {@code n} only at the end of the stream). Blocks only until {@code n}.
     */
    private int fill(int n) throws IOException {
        while (limit - pos < n && !ended) {
            if (pos + n > buf.length) {
                // Not enough room behind the read position: compact, growing only for a larger request.
                int avail = limit - pos;
                byte[] target = n > buf.length ? new byte[Math.max(n, buf.length * 2)] : buf;
                System.arraycopy(buf, pos, target, 0, avail);
                consumedBefore += pos;
                buf = target;
                pos = 0;
                limit = avail;
            }
            int r = in.read(buf, limit, buf.length - limit);
            if (r < 0) {
                ended = true;
            } else {
                limit += r;
            }
        }
        return Math.min(n, limit - pos);
    }

    private void require(int n, String what) throws IOException {
        int have = fill(n);
        if (have < n) {
            throw new StreamFormatException(offset(), what + " (" + n + " bytes)",
                    "end of stream after " + have + " bytes (truncated)");
        }
    }

    public int u8(String what) throws IOException {
        require(1, what);
        return buf[pos++] & 0xff;
    }

    public int be16(String what) throws IOException {
        require(2, what);
        int v = ((buf[pos] & 0xff) << 8) | (buf[pos + 1] & 0xff);
        pos += 2;
        return v;
    }

    public int be32(String what) throws IOException {
        require(4, what);
        int v = ((buf[pos] & 0xff) << 24) | ((buf[pos + 1] & 0xff) << 16) | ((buf[pos + 2] & 0xff) << 8) | (buf[pos + 3] & 0xff);
        pos += 4;
        return v;
    }

    public long be64(String what) throws IOException {
        long hi = be32(what) & 0xffffffffL;
        long lo = be32(what) & 0xffffffffL;
        return (hi << 32) | lo;
    }

    public byte[] bytes(int n, String what) throws IOException {
        byte[] out = new byte[n];
        readInto(out, 0, n, what);
        return out;
    }

    /** Reads exactly {@code n} bytes into {@code dst}; large reads go straight through without growing the buffer. */
    public void readInto(byte[] dst, int off, int n, String what) throws IOException {
        int done = 0;
        while (done < n) {
            int chunk = Math.min(n - done, buf.length);
            int have = fill(chunk);
            if (have == 0) {
                throw new StreamFormatException(offset(), what + " (" + n + " bytes)",
                        "end of stream after " + done + " bytes (truncated)");
            }
            System.arraycopy(buf, pos, dst, off + done, have);
            pos += have;
            done += have;
        }
    }

    /** A u8-length-prefixed ASCII name (QEMU idstrs and RAM block names). */
    public String shortString(String what) throws IOException {
        long at = offset();
        int len = u8(what + " length");
        if (len == 0) {
            throw new StreamFormatException(at, what + " (1-255 printable characters)", "an empty name");
        }
        byte[] b = bytes(len, what);
        for (byte c : b) {
            if (c < 0x20 || c > 0x7e) {
                throw new StreamFormatException(at, what + " (printable ASCII)", "byte 0x" + Integer.toHexString(c & 0xff));
            }
        }
        return new String(b, java.nio.charset.StandardCharsets.US_ASCII);
    }

    /**
     * Up to {@code n} upcoming bytes without consuming them; fewer only at the end of the stream.
     * Blocks until they arrive: use only where the sender is known to send that much more.
     */
    public byte[] peek(int n) throws IOException {
        int have = fill(n);
        return Arrays.copyOfRange(buf, pos, pos + have);
    }

    /** The next byte without consuming it, or -1 at the end of the stream. */
    public int peekByte() throws IOException {
        return fill(1) == 1 ? buf[pos] & 0xff : -1;
    }

    /** True if the stream has ended exactly here (blocks until a byte or the end arrives). */
    public boolean atEnd() throws IOException {
        return fill(1) == 0;
    }

    /** Index-based look-ahead for scanners: byte at {@code ahead} positions past the read position, or -1. */
    int peekAt(int ahead) throws IOException {
        return fill(ahead + 1) > ahead ? buf[pos + ahead] & 0xff : -1;
    }

    /** Consumes {@code n} bytes into {@code sink} (used by the device-section scanner). */
    void transfer(int n, java.io.ByteArrayOutputStream sink) throws IOException {
        require(n, "section data");
        sink.write(buf, pos, n);
        pos += n;
    }
}

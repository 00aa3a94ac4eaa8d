package dev.doppel.remus.colo;

import dev.doppel.remus.stream.StreamFormatException;
import dev.doppel.remus.stream.StreamInput;
import java.io.IOException;
import java.io.OutputStream;

/** Encodes and decodes {@link ColoMessage}s (migration/colo.c {@code colo_send_message[_value]}). */
public final class ColoMessageCodec {
    private ColoMessageCodec() {
    }

    /** Reads one message id. */
    public static ColoMessage read(StreamInput in) throws IOException {
        long at = in.offset();
        int code = in.be32("COLO message");
        ColoMessage m = ColoMessage.of(code);
        if (m == null) {
            throw new StreamFormatException(at, "a COLO message (0-6)", Integer.toUnsignedString(code));
        }
        return m;
    }

    /** Reads a message and fails unless it is {@code expected}. */
    public static void expect(StreamInput in, ColoMessage expected) throws IOException {
        long at = in.offset();
        ColoMessage m = read(in);
        if (m != expected) {
            throw new StreamFormatException(at, "COLO message " + expected, m.toString());
        }
    }

    /** Reads {@code VMSTATE_SIZE} and its be64 value. */
    public static long readSize(StreamInput in) throws IOException {
        expect(in, ColoMessage.VMSTATE_SIZE);
        return in.be64("VMSTATE_SIZE value");
    }

    public static byte[] encode(ColoMessage m) {
        int c = m.code();
        return new byte[] {(byte) (c >>> 24), (byte) (c >>> 16), (byte) (c >>> 8), (byte) c};
    }

    public static byte[] encodeSize(long value) {
        byte[] b = new byte[12];
        System.arraycopy(encode(ColoMessage.VMSTATE_SIZE), 0, b, 0, 4);
        for (int i = 0; i < 8; i++) {
            b[4 + i] = (byte) (value >>> (56 - 8 * i));
        }
        return b;
    }

    /** Writes one message in a single write (the primary waits for each; Nagle is off on our side). */
    public static void write(OutputStream out, ColoMessage m) throws IOException {
        out.write(encode(m));
        out.flush();
    }
}

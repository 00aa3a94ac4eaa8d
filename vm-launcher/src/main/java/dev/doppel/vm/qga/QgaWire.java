package dev.doppel.vm.qga;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/**
 * The bytes of the QEMU guest agent protocol on a virtio-serial chardev socket: JSON objects one
 * after another, no framing, no ids. The only other byte that matters is 0xFF: the host sends it to
 * make the agent's JSON parser drop whatever half-read input it holds, and the agent sends it right
 * before its answer to {@code guest-sync-delimited}, so the host can skip whatever stale output
 * precedes it. Reads take a deadline (non-blocking channel and a selector).
 */
final class QgaWire implements AutoCloseable {
    static final int DELIMITER = 0xFF;

    private final SocketChannel channel;
    private final Selector selector;
    private final ByteBuffer in = ByteBuffer.allocate(64 * 1024).flip();

    private QgaWire(SocketChannel channel, Selector selector) {
        this.channel = channel;
        this.selector = selector;
    }

    static QgaWire connect(Path socket) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
            ch.configureBlocking(false);
            Selector sel = Selector.open();
            ch.register(sel, SelectionKey.OP_READ);
            return new QgaWire(ch, sel);
        } catch (IOException e) {
            ch.close();
            throw e;
        }
    }

    void write(byte[] bytes) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        while (buf.hasRemaining()) {
            if (channel.write(buf) == 0) {
                Thread.onSpinWait(); // the socket buffer is full: QEMU reads it as the guest takes it
            }
        }
    }

    /** Discards everything already received (stale answers of an earlier client or attempt). */
    void discardBuffered() throws IOException {
        in.clear().flip();
        ByteBuffer scratch = ByteBuffer.allocate(8192);
        while (channel.read(scratch) > 0) {
            scratch.clear();
        }
    }

    /** Skips input up to and including the next 0xFF; false if the deadline passed first. */
    boolean skipToDelimiter(long deadlineNanos) throws IOException {
        while (true) {
            while (in.hasRemaining()) {
                if ((in.get() & 0xFF) == DELIMITER) {
                    return true;
                }
            }
            if (!fill(deadlineNanos)) {
                return false;
            }
        }
    }

    /**
     * The next complete JSON object's bytes (leading whitespace and 0xFF skipped), or null if the
     * deadline passed first. Counts braces outside strings, so an object may span reads.
     */
    byte[] readObject(long deadlineNanos) throws IOException {
        ByteArrayOutputStream obj = new ByteArrayOutputStream();
        int depth = 0;
        boolean inString = false;
        boolean escaped = false;
        while (true) {
            while (in.hasRemaining()) {
                int b = in.get() & 0xFF;
                if (depth == 0) {
                    if (b != '{') {
                        continue; // whitespace, 0xFF, or garbage between objects
                    }
                }
                obj.write(b);
                if (inString) {
                    if (escaped) {
                        escaped = false;
                    } else if (b == '\\') {
                        escaped = true;
                    } else if (b == '"') {
                        inString = false;
                    }
                } else if (b == '"') {
                    inString = true;
                } else if (b == '{' || b == '[') {
                    depth++;
                } else if (b == '}' || b == ']') {
                    depth--;
                    if (depth == 0) {
                        return obj.toByteArray();
                    }
                }
            }
            if (!fill(deadlineNanos)) {
                return null;
            }
        }
    }

    /** Reads more into the buffer; false on deadline; IOException when QEMU closed the socket. */
    private boolean fill(long deadlineNanos) throws IOException {
        while (true) {
            long leftMs = (deadlineNanos - System.nanoTime()) / 1_000_000;
            if (leftMs <= 0) {
                return false;
            }
            selector.select(leftMs);
            selector.selectedKeys().clear();
            in.compact();
            int n;
            try {
                n = channel.read(in);
            } finally {
                in.flip();
            }
            if (n < 0) {
                throw new IOException("the agent socket was closed (QEMU gone?)");
            }
            if (n > 0) {
                return true;
            }
        }
    }

    @Override
    public void close() throws IOException {
        try {
            selector.close();
        } finally {
            channel.close();
        }
    }
}

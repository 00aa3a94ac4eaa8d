package dev.doppel.qmp.connection;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.doppel.qmp.QmpDisconnectedException;
import dev.doppel.qmp.QmpException;
import dev.doppel.qmp.QmpProtocolException;
import dev.doppel.qmp.transport.QmpTransport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@link QmpConnection} over a byte stream: newline framing ({@link LineFramer}), JSON parsing, and the one
 * reader thread ({@code qmp-reader-<vm>}, daemon) that delivers messages to the listener in arrival order.
 *
 * <p>The reader ends the connection, closing the transport and reporting once through
 * {@link Listener#onClosed}, on: end of stream ({@link QmpDisconnectedException}, mentioning any unfinished
 * message bytes), read error (same), a message over the size limit or malformed JSON or a non-object message
 * ({@link QmpProtocolException} with a snippet of the offending bytes: QMP has no way to resynchronise).
 *
 * <p>Every message sent and received is traced at DEBUG (logger {@code dev.doppel.qmp.connection.StreamQmpConnection}),
 * truncated to 4 KiB.
 */
public final class StreamQmpConnection implements QmpConnection {

    private static final Logger log = LoggerFactory.getLogger(StreamQmpConnection.class);
    private static final int TRACE_MAX = 4096;
    private static final int ERROR_SNIPPET_MAX = 200;
    private static final byte[] NEWLINE = {'\n'};

    private final QmpTransport transport;
    private final String vmName;
    private final int maxMessageBytes;
    private final Object sendLock = new Object();
    private final AtomicBoolean ended = new AtomicBoolean();
    private volatile Listener listener;
    private volatile Thread reader;

    public StreamQmpConnection(QmpTransport transport, String vmName, int maxMessageBytes) {
        this.transport = Objects.requireNonNull(transport, "transport");
        this.vmName = Objects.requireNonNull(vmName, "vmName");
        this.maxMessageBytes = maxMessageBytes;
    }

    @Override
    public void start(Listener l) {
        if (this.listener != null) {
            throw new IllegalStateException("already started");
        }
        this.listener = Objects.requireNonNull(l, "listener");
        Thread t = new Thread(this::readLoop, "qmp-reader-" + vmName);
        t.setDaemon(true);
        reader = t;
        t.start();
    }

    @Override
    public void send(ObjectNode message, int[] fds) throws IOException {
        byte[] json = QmpJson.MAPPER.writeValueAsBytes(message);
        byte[] data = Arrays.copyOf(json, json.length + NEWLINE.length);
        data[json.length] = '\n';
        if (log.isDebugEnabled()) {
            log.debug("VM '{}' -> {}{}", vmName, QmpJson.snippet(json, 0, json.length, TRACE_MAX),
                    fds != null && fds.length > 0 ? " [+" + fds.length + " fd(s) " + Arrays.toString(fds) + "]" : "");
        }
        if (ended.get()) {
            throw new IOException("connection " + transport.describe() + " is closed");
        }
        synchronized (sendLock) {
            transport.send(data, fds);
        }
    }

    @Override
    public boolean supportsFdPassing() {
        return transport.supportsFdPassing();
    }

    @Override
    public String describe() {
        return transport.describe();
    }

    @Override
    public boolean isDeliveryThread() {
        return Thread.currentThread() == reader;
    }

    @Override
    public boolean isOpen() {
        return !ended.get();
    }

    @Override
    public void close() {
        close(new QmpDisconnectedException(vmName, null, "QMP connection " + transport.describe() + " closed by client"));
    }

    @Override
    public void close(QmpException reason) {
        end(reason);
        Thread t = reader;
        if (t != null && t != Thread.currentThread()) {
            try {
                t.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (t.isAlive()) {
                log.warn("VM '{}': QMP reader thread did not stop within 2 s after close", vmName);
            }
        }
    }

    private void end(QmpException reason) {
        if (!ended.compareAndSet(false, true)) {
            return;
        }
        transport.close();
        log.debug("VM '{}': QMP connection {} ended: {}", vmName, transport.describe(), reason.getMessage());
        Listener l = listener;
        if (l != null) {
            try {
                l.onClosed(reason);
            } catch (RuntimeException e) {
                log.error("VM '{}': QMP close handler failed", vmName, e);
            }
        }
    }

    private void readLoop() {
        QmpException reason;
        try {
            reason = pump();
        } catch (Throwable t) {
            reason = new QmpDisconnectedException(vmName, null, "QMP reader for " + transport.describe()
                    + " failed unexpectedly: " + t, t);
        }
        if (reason != null) {
            if (!ended.get()) {
                if (reason instanceof QmpProtocolException) {
                    log.error("{}", reason.getMessage());
                } else {
                    log.info("{}", reason.getMessage());
                }
            }
            end(reason);
        }
    }

    /** Reads until the connection ends; returns why (null if it was already ended by someone else). */
    private QmpException pump() {
        byte[] buf = new byte[64 * 1024];
        LineFramer framer = new LineFramer(maxMessageBytes);
        String d = transport.describe();
        while (!ended.get()) {
            int n;
            try {
                n = transport.read(buf);
            } catch (IOException e) {
                if (ended.get()) {
                    return null;
                }
                return new QmpDisconnectedException(vmName, null, "reading QMP from " + d + " failed: " + e.getMessage(), e);
            }
            if (n < 0) {
                if (ended.get()) {
                    return null;
                }
                int pending = framer.pendingLength();
                if (pending > 0) {
                    byte[] partial = framer.pendingBytes();
                    return new QmpDisconnectedException(vmName, null, "QMP connection " + d
                            + " closed by peer in the middle of a message (" + pending + " bytes without end of line: '"
                            + QmpJson.snippet(partial, 0, partial.length, ERROR_SNIPPET_MAX) + "')");
                }
                return new QmpDisconnectedException(vmName, null, "QMP connection " + d + " closed by peer");
            }
            try {
                framer.feed(buf, 0, n, this::deliver);
            } catch (LineFramer.TooLongException e) {
                return new QmpProtocolException(vmName, null, "message exceeds " + maxMessageBytes
                        + " bytes (at least " + e.length() + " bytes without end of line from " + d
                        + "); QMP cannot resynchronise, connection closed", e);
            } catch (Violation v) {
                return v.exception;
            }
        }
        return null;
    }

    private void deliver(byte[] buf, int off, int len) {
        if (ended.get()) {
            return; // closed by the listener while handling an earlier message of the same read
        }
        if (isBlank(buf, off, len)) {
            return;
        }
        if (log.isDebugEnabled()) {
            log.debug("VM '{}' <- {}", vmName, QmpJson.snippet(buf, off, len, TRACE_MAX));
        }
        JsonNode node;
        try {
            node = QmpJson.MAPPER.readTree(buf, off, len);
        } catch (JsonProcessingException e) {
            throw new Violation(new QmpProtocolException(vmName, null, "malformed JSON from " + transport.describe()
                    + " (" + e.getOriginalMessage() + "); offending bytes: '"
                    + QmpJson.snippet(buf, off, len, ERROR_SNIPPET_MAX) + "'; QMP cannot resynchronise, connection closed", e));
        } catch (IOException e) {
            throw new Violation(new QmpProtocolException(vmName, null, "unreadable message from " + transport.describe()
                    + ": " + e.getMessage(), e));
        }
        if (node == null || !node.isObject()) {
            throw new Violation(new QmpProtocolException(vmName, null, "expected a JSON object from "
                    + transport.describe() + ", got " + (node == null ? "nothing" : node.getNodeType()) + ": '"
                    + QmpJson.snippet(buf, off, len, ERROR_SNIPPET_MAX) + "'; connection closed"));
        }
        try {
            listener.onMessage((ObjectNode) node);
        } catch (RuntimeException e) {
            log.error("VM '{}': QMP message handler failed; message dropped: {}", vmName,
                    QmpJson.snippet(buf, off, len, ERROR_SNIPPET_MAX), e);
        }
    }

    private static boolean isBlank(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) {
            byte c = b[i];
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
                return false;
            }
        }
        return true;
    }

    /** Carries a protocol violation out of the framer callback. */
    private static final class Violation extends RuntimeException {
        final QmpProtocolException exception;

        Violation(QmpProtocolException exception) {
            super(null, null, false, false);
            this.exception = exception;
        }
    }
}

package dev.doppel.qmp.connection;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.doppel.qmp.QmpException;

import java.io.IOException;

/**
 * A message-level QMP channel: JSON objects out, JSON objects in, plus one end-of-connection notice. It knows
 * framing and JSON, not QMP semantics (greeting, ids, events are the client's business).
 *
 * <p>{@link StreamQmpConnection} implements it over any {@link dev.doppel.qmp.transport.QmpTransport};
 * doppel-libvirt's {@code LibvirtQmpConnection} implements it directly (see the transport package documentation).
 */
public interface QmpConnection extends AutoCloseable {

    /** Receives what the connection reads. Both methods are called on the connection's reader thread. */
    interface Listener {
        /** One incoming message, in arrival order. Must not block for long: it holds up all later messages. */
        void onMessage(ObjectNode message);

        /**
         * Called exactly once when the connection ends, with the reason: {@code QmpDisconnectedException} (EOF,
         * I/O error, closed by {@link #close()}) or {@code QmpProtocolException} (framing/JSON violation). No
         * {@link #onMessage} follows. May run on the thread calling {@link #close()}.
         */
        void onClosed(QmpException reason);
    }

    /** Starts reading and delivering to {@code listener}; call once. */
    void start(Listener listener);

    /**
     * Sends one message, with file descriptors if {@code fds} is non-empty. Thread safe; messages are never
     * interleaved.
     *
     * @throws IOException if writing failed (the caller should then close the connection)
     * @throws UnsupportedOperationException if fds are given and {@link #supportsFdPassing()} is false
     */
    void send(ObjectNode message, int[] fds) throws IOException;

    boolean supportsFdPassing();

    /** Describes the endpoint for messages, e.g. {@code unix:/run/web1.qmp}. */
    String describe();

    /** True until the connection has ended for whatever reason. */
    boolean isOpen();

    /** Closes the connection; {@link Listener#onClosed} has run (on some thread) when this returns. Idempotent. */
    @Override
    void close();

    /** Closes the connection reporting {@code reason} to the listener (unless it already ended). */
    void close(QmpException reason);

    /**
     * True if the calling thread is the one delivering to the {@link Listener}: a blocking wait for a reply there
     * could never end, so the client refuses it.
     */
    default boolean isDeliveryThread() {
        return false;
    }
}

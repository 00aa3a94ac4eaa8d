package dev.doppel.qmp.transport;

import java.io.IOException;

/**
 * The minimal duplex byte channel under a QMP connection: bytes (and, where the channel supports it, file
 * descriptors) out; bytes in. It knows nothing about JSON or QMP.
 *
 * <p>Threading contract: {@link #read} is called by exactly one thread (the connection's reader);
 * {@link #send} may be called by any thread but callers serialise it (the connection holds a send lock);
 * {@link #close} may be called from any thread at any time and must unblock a reader blocked in {@link #read}.
 */
public interface QmpTransport extends AutoCloseable {

    /**
     * Writes all of {@code data}. When {@code fds} is non-null and non-empty the descriptors travel with the
     * first byte of {@code data} (one {@code sendmsg} with an {@code SCM_RIGHTS} control message), which is
     * what QEMU's {@code getfd}/{@code add-fd} expect. The caller keeps ownership of its descriptors.
     *
     * @throws IOException on any write failure, or after {@link #close}
     * @throws UnsupportedOperationException if fds are given and {@link #supportsFdPassing()} is false
     */
    void send(byte[] data, int[] fds) throws IOException;

    /**
     * Blocks until at least one byte is available and copies up to {@code buf.length} bytes into {@code buf}.
     *
     * @return the number of bytes read, or -1 at end of stream (peer closed, or this transport was closed)
     * @throws IOException on a read error other than end of stream
     */
    int read(byte[] buf) throws IOException;

    /** True if {@link #send} can carry file descriptors (unix domain sockets only). */
    boolean supportsFdPassing();

    /** A short human description of the endpoint, e.g. {@code unix:/run/doppel/web1.qmp}. */
    String describe();

    /** Closes the channel; idempotent; unblocks a concurrent {@link #read}, which then returns -1. */
    @Override
    void close();
}

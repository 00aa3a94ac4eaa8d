package dev.doppel.clone.pageserver;

import dev.doppel.tls.PeerTls;
import java.time.Duration;
import java.util.Objects;

/**
 * Settings of a page server.
 *
 * @param backgroundPush  while no request waits, push unsent non-zero pages in the background (the
 *                        clone then becomes independent sooner; costs bandwidth for pages it may never touch)
 * @param batchPages      at most this many pages per RAM section PART (requests are drained into one)
 * @param connectTimeout  how long to retry connecting to a clone that was just told to listen
 * @param handshakeTimeout bound for RECV_BITMAP / RESUME_ACK / SHUT answers
 * @param multicast       distribute pages to the clones' hosts by multicast (one send per page for all
 *                        hosts, see {@code pageserver.multicast}); each host then serves its own clones
 * @param tls             how the page server's connections to the clones are protected: with mutual
 *                        TLS each clone QEMU listens as a TLS server that requires a certificate of the
 *                        installation's CA, and the page server is the TLS client (it also checks the
 *                        clone's certificate before it sends a byte of memory); {@link PeerTls#INSECURE}
 *                        is plain TCP
 */
public record PageServerOptions(boolean backgroundPush, int batchPages, Duration connectTimeout, Duration handshakeTimeout,
                                boolean multicast, PeerTls tls) {
    public PageServerOptions {
        if (batchPages < 1 || batchPages > 4096) {
            throw new IllegalArgumentException("batchPages must be 1..4096: " + batchPages);
        }
        Objects.requireNonNull(tls, "tls (PeerTls.INSECURE for plain TCP)");
    }

    /** Plain TCP (the command line asks for {@code --tls DIR} or {@code --insecure} by name). */
    public static PageServerOptions defaults() {
        return new PageServerOptions(false, 256, Duration.ofSeconds(10), Duration.ofSeconds(20), false, PeerTls.INSECURE);
    }

    public PageServerOptions withBackgroundPush(boolean push) {
        return new PageServerOptions(push, batchPages, connectTimeout, handshakeTimeout, multicast, tls);
    }

    public PageServerOptions withMulticast(boolean on) {
        return new PageServerOptions(backgroundPush, batchPages, connectTimeout, handshakeTimeout, on, tls);
    }

    public PageServerOptions withTls(PeerTls t) {
        return new PageServerOptions(backgroundPush, batchPages, connectTimeout, handshakeTimeout, multicast, t);
    }
}

package dev.doppel.clone.pageserver;

import java.time.Duration;

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
 */
public record PageServerOptions(boolean backgroundPush, int batchPages, Duration connectTimeout, Duration handshakeTimeout,
                                boolean multicast) {
    public PageServerOptions {
        if (batchPages < 1 || batchPages > 4096) {
            throw new IllegalArgumentException("batchPages must be 1..4096: " + batchPages);
        }
    }

    public static PageServerOptions defaults() {
        return new PageServerOptions(false, 256, Duration.ofSeconds(10), Duration.ofSeconds(20), false);
    }

    public PageServerOptions withBackgroundPush(boolean push) {
        return new PageServerOptions(push, batchPages, connectTimeout, handshakeTimeout, multicast);
    }

    public PageServerOptions withMulticast(boolean on) {
        return new PageServerOptions(backgroundPush, batchPages, connectTimeout, handshakeTimeout, on);
    }
}

package dev.doppel.clone.pageserver.multicast;

import dev.doppel.clone.pageserver.SnapshotPages;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fork's origin for multicast distribution: answers page requests from the clone hosts by
 * sending the page once to the group. Requests for the same page from several hosts within
 * {@link #COALESCE_NANOS} are answered by one send (they were waiting for the same datagram);
 * a later request for it is a repair (the asker lost the datagram) and is answered again.
 */
public final class PageMulticaster implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PageMulticaster.class);
    static final long COALESCE_NANOS = 3_000_000L;

    private final String fork;
    private final SnapshotPages origin;
    private final DatagramChannel channel;
    private final InetSocketAddress group;
    private final long[] lastSentNanos;
    private final Thread thread;
    private final AtomicLong bytesSent = new AtomicLong();
    private final AtomicLong datagramsSent = new AtomicLong();
    private final AtomicLong requests = new AtomicLong();
    private volatile boolean closed;

    private PageMulticaster(String fork, SnapshotPages origin, DatagramChannel channel, InetSocketAddress group) {
        this.fork = fork;
        this.origin = origin;
        this.channel = channel;
        this.group = group;
        long pages = origin.blockMap().get(origin.ramBlock()).usedLength() / PageDatagrams.PAGE_SIZE;
        this.lastSentNanos = new long[(int) pages];
        this.thread = new Thread(this::serve, "page-multicast-" + fork);
        thread.setDaemon(true);
    }

    /** Listens for requests on the segment's origin address and sends pages to its group. */
    public static PageMulticaster start(String fork, SnapshotPages origin, MulticastSegment segment) throws IOException {
        DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET);
        try {
            ch.bind(new InetSocketAddress(segment.origin(), 0));
            ch.setOption(StandardSocketOptions.IP_MULTICAST_IF, NetworkInterface.getByName(segment.bridge()));
            ch.setOption(StandardSocketOptions.IP_MULTICAST_TTL, 1);
            ch.setOption(StandardSocketOptions.IP_MULTICAST_LOOP, false);
            ch.setOption(StandardSocketOptions.SO_SNDBUF, 4 << 20);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
        PageMulticaster m = new PageMulticaster(fork, origin, ch, segment.group());
        m.thread.start();
        return m;
    }

    /** Where hosts send their requests. */
    public InetSocketAddress requestAddress() throws IOException {
        return (InetSocketAddress) channel.getLocalAddress();
    }

    /** Bytes of page datagrams sent to the group (payload), each counted once however many hosts receive it. */
    public long bytesSent() {
        return bytesSent.get();
    }

    public long datagramsSent() {
        return datagramsSent.get();
    }

    public long requests() {
        return requests.get();
    }

    private void serve() {
        ByteBuffer in = ByteBuffer.allocate(64);
        ByteBuffer out = ByteBuffer.allocate(PageDatagrams.PAGE_HEADER_BYTES + PageDatagrams.PAGE_SIZE);
        byte[] page = new byte[PageDatagrams.PAGE_SIZE];
        while (!closed) {
            try {
                in.clear();
                channel.receive(in);
                in.flip();
                if (in.remaining() != PageDatagrams.REQUEST_BYTES || in.getInt() != PageDatagrams.REQUEST_MAGIC) {
                    log.warn("fork={} event=bad-page-request bytes={}", fork, in.limit());
                    continue;
                }
                long offset = in.getLong();
                long index = offset / PageDatagrams.PAGE_SIZE;
                if (offset % PageDatagrams.PAGE_SIZE != 0 || index < 0 || index >= lastSentNanos.length) {
                    log.warn("fork={} event=bad-page-request offset=0x{}", fork, Long.toHexString(offset));
                    continue;
                }
                requests.incrementAndGet();
                long now = System.nanoTime();
                if (lastSentNanos[(int) index] != 0 && now - lastSentNanos[(int) index] < COALESCE_NANOS) {
                    continue;   // sent a moment ago for another host; this one is getting it too
                }
                boolean zero = origin.read(origin.ramBlock(), offset, page);
                out.clear();
                out.putInt(PageDatagrams.PAGE_MAGIC).putLong(offset).put((byte) (zero ? PageDatagrams.FLAG_ZERO : 0));
                if (!zero) {
                    out.put(page);
                }
                out.flip();
                int n = channel.send(out, group);
                lastSentNanos[(int) index] = System.nanoTime();
                bytesSent.addAndGet(n);
                datagramsSent.incrementAndGet();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                if (!closed) {
                    log.warn("fork={} event=multicast-send-failed cause=\"{}\"", fork, e.getMessage());
                }
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            channel.close();
        } catch (IOException e) {
            log.debug("fork={} multicast channel: {}", fork, e.toString());
        }
        log.info("fork={} event=multicast-origin-closed datagrams={} bytes={} requests={}", fork, datagramsSent.get(),
                bytesSent.get(), requests.get());
    }
}

package dev.doppel.clone.pageserver.multicast;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.SnapshotPages;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One clone host's copy of a fork's RAM, filled from the multicast group: a sparse file (the RAM
 * file of that host's page server) and a bitmap of the pages present. A page the host's page server
 * needs and does not have is asked from the origin by unicast; it arrives by multicast (also for
 * every other host), and a request that stays unanswered for {@link #REPAIR_NANOS} is sent again.
 */
public final class HostPageCache implements SnapshotPages.PageSupply, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(HostPageCache.class);
    static final long REPAIR_NANOS = 20_000_000L;
    private static final long GIVE_UP_NANOS = 20_000_000_000L;

    private final String fork;
    private final String host;
    private final Path file;
    private final FileChannel channelOut;
    private final DatagramChannel net;
    private final InetSocketAddress origin;
    private final BitSet present = new BitSet();
    private final Thread receiver;
    private final AtomicLong pagesReceived = new AtomicLong();
    private final AtomicLong requestsSent = new AtomicLong();
    private final AtomicLong duplicates = new AtomicLong();
    private volatile boolean closed;

    private HostPageCache(String fork, String host, Path file, FileChannel out, DatagramChannel net, InetSocketAddress origin) {
        this.fork = fork;
        this.host = host;
        this.file = file;
        this.channelOut = out;
        this.net = net;
        this.origin = origin;
        this.receiver = new Thread(this::receive, "page-cache-" + host);
        receiver.setDaemon(true);
    }

    /**
     * Creates the cache file ({@code ramBytes}, sparse) and joins the segment's group on the host's
     * {@link MulticastSegment#hostInterface}, with the socket inside the host's network.
     */
    public static HostPageCache start(String fork, RemoteHost host, Path file, long ramBytes, MulticastSegment segment,
                                      InetSocketAddress origin) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(ramBytes);
        }
        FileChannel out = FileChannel.open(file, StandardOpenOption.WRITE);
        InetSocketAddress group = segment.group();
        DatagramChannel net;
        try {
            net = host.sockets().within(() -> {
                DatagramChannel c = DatagramChannel.open(StandardProtocolFamily.INET);
                c.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                c.setOption(StandardSocketOptions.SO_RCVBUF, 8 << 20);
                c.bind(new InetSocketAddress(group.getPort()));
                c.join(group.getAddress(), NetworkInterface.getByName(segment.hostInterface()));
                return c;
            });
        } catch (IOException | RuntimeException e) {
            out.close();
            throw e;
        }
        HostPageCache c = new HostPageCache(fork, host.name(), file, out, net, origin);
        c.receiver.start();
        return c;
    }

    public Path file() {
        return file;
    }

    public long pagesReceived() {
        return pagesReceived.get();
    }

    public long requestsSent() {
        return requestsSent.get();
    }

    /** Page datagrams that arrived for a page already present (repairs another host asked for, late copies). */
    public long duplicates() {
        return duplicates.get();
    }

    @Override
    public void ensure(long offset) throws IOException {
        int index = (int) (offset / PageDatagrams.PAGE_SIZE);
        long start = System.nanoTime();
        long lastRequest = 0;
        synchronized (present) {
            while (!present.get(index)) {
                if (closed) {
                    throw new IOException("fork " + fork + " host " + host + ": page cache closed");
                }
                long now = System.nanoTime();
                if (now - start > GIVE_UP_NANOS) {
                    throw new IOException("fork " + fork + " host " + host + ": page 0x" + Long.toHexString(offset)
                            + " not received from the multicast origin within " + GIVE_UP_NANOS / 1_000_000_000L + " s");
                }
                if (now - lastRequest > REPAIR_NANOS) {
                    ByteBuffer req = ByteBuffer.allocate(PageDatagrams.REQUEST_BYTES);
                    req.putInt(PageDatagrams.REQUEST_MAGIC).putLong(offset).flip();
                    net.send(req, origin);
                    requestsSent.incrementAndGet();
                    lastRequest = now;
                }
                try {
                    present.wait(2);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted waiting for page 0x" + Long.toHexString(offset), e);
                }
            }
        }
    }

    private void receive() {
        ByteBuffer in = ByteBuffer.allocate(PageDatagrams.PAGE_HEADER_BYTES + PageDatagrams.PAGE_SIZE + 16);
        while (!closed) {
            try {
                in.clear();
                net.receive(in);
                in.flip();
                if (in.remaining() < PageDatagrams.PAGE_HEADER_BYTES || in.getInt() != PageDatagrams.PAGE_MAGIC) {
                    continue;
                }
                long offset = in.getLong();
                boolean zero = (in.get() & PageDatagrams.FLAG_ZERO) != 0;
                int index = (int) (offset / PageDatagrams.PAGE_SIZE);
                if (offset < 0 || offset % PageDatagrams.PAGE_SIZE != 0 || offset + PageDatagrams.PAGE_SIZE > channelOut.size()
                        || (!zero && in.remaining() != PageDatagrams.PAGE_SIZE)) {
                    log.warn("fork={} host={} event=bad-page-datagram offset=0x{}", fork, host, Long.toHexString(offset));
                    continue;
                }
                synchronized (present) {
                    if (present.get(index)) {
                        duplicates.incrementAndGet();
                        continue;
                    }
                }
                if (!zero) {
                    // The file is sparse: a zero page needs no write.
                    while (in.hasRemaining()) {
                        channelOut.write(in, offset + in.position() - PageDatagrams.PAGE_HEADER_BYTES);
                    }
                }
                synchronized (present) {
                    present.set(index);
                    present.notifyAll();
                }
                pagesReceived.incrementAndGet();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                if (!closed) {
                    log.warn("fork={} host={} event=multicast-receive-failed cause=\"{}\"", fork, host, e.getMessage());
                }
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        synchronized (present) {
            present.notifyAll();
        }
        try {
            net.close();
            channelOut.close();
            Files.deleteIfExists(file);
        } catch (IOException e) {
            log.debug("fork={} host={} cache close: {}", fork, host, e.toString());
        }
        log.info("fork={} host={} event=page-cache-closed pages={} requests={} duplicates={}", fork, host,
                pagesReceived.get(), requestsSent.get(), duplicates.get());
    }
}

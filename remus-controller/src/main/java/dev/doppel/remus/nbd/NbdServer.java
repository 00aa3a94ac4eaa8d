package dev.doppel.remus.nbd;

import dev.doppel.hostnet.HostSockets;
import java.io.Closeable;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An NBD server with one export, an {@link EpochDisk}, that the COLO primary's {@code quorum} child or
 * {@code blockdev-mirror} connects to.
 *
 * <p>Blocking threads, one accept thread plus one per connection, rather than a Vert.x server: the
 * primary opens one connection per export, the protocol is strictly request/reply per connection here
 * (we answer in order), and every request touches the disk (a blocking FileChannel read, or a commit
 * holding the disk's lock), which on an event loop would need executeBlocking and re-ordering of
 * replies. A thread reading a socket is the simplest correct shape for that, and costs nothing at one
 * or two connections.
 */
public final class NbdServer implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    private final String exportName;
    private final EpochDisk disk;
    private final ServerSocket serverSocket;
    private final Thread acceptThread;
    private final dev.doppel.tls.PeerTls tls;
    private final Set<NbdConnection> connections = ConcurrentHashMap.newKeySet();
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong ended = new AtomicLong();
    private volatile boolean closed;

    private NbdServer(String exportName, EpochDisk disk, ServerSocket serverSocket, dev.doppel.tls.PeerTls tls) {
        this.tls = tls;
        this.exportName = exportName;
        this.disk = disk;
        this.serverSocket = serverSocket;
        this.acceptThread = new Thread(this::acceptLoop, "nbd-accept-" + exportName);
        this.acceptThread.setDaemon(true);
    }

    /**
     * Binds {@code address} (port 0 picks a free port) and starts accepting.
     *
     * @throws IOException if the address cannot be bound
     */
    public static NbdServer start(String exportName, EpochDisk disk, InetSocketAddress address)
            throws IOException {
        return start(exportName, disk, address, HostSockets.LOCAL, dev.doppel.tls.PeerTls.INSECURE);
    }

    /**
     * As {@link #start(String, EpochDisk, InetSocketAddress)}, listening on {@code host}'s network; a
     * secure {@code tls} makes the export require NBD_OPT_STARTTLS and a client certificate.
     */
    public static NbdServer start(String exportName, EpochDisk disk, InetSocketAddress address, HostSockets host,
                                  dev.doppel.tls.PeerTls tls) throws IOException {
        ServerSocket ss;
        try {
            ss = host.listen(address, 50);
        } catch (IOException e) {
            throw new IOException("NBD export '" + exportName + "': cannot listen on " + address + " (" + host + ")", e);
        }
        NbdServer server = new NbdServer(exportName, disk, ss, tls);
        server.acceptThread.start();
        log.info("NBD export '{}' ({} bytes, {}) listening on {}", exportName, disk.size(), disk.image(),
                ss.getLocalSocketAddress());
        return server;
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) serverSocket.getLocalSocketAddress();
    }

    public String exportName() {
        return exportName;
    }

    public EpochDisk disk() {
        return disk;
    }

    /** Connections whose client finished the handshake (writers of the disk) and are still open. */
    public int connectionCount() {
        return (int) connections.stream().filter(NbdConnection::attached).count();
    }

    /** Connections accepted since start. */
    public long connectionsAccepted() {
        return accepted.get();
    }

    /**
     * Attached connections that have ended since start (a writer that went away may have lost writes);
     * a peer refused during the handshake is not counted: it wrote nothing.
     */
    public long connectionsEnded() {
        return ended.get();
    }

    private void acceptLoop() {
        while (!closed) {
            Socket s;
            try {
                s = serverSocket.accept();
            } catch (SocketException e) {
                if (!closed) {
                    log.error("NBD export '{}': accept failed, no longer serving", exportName, e);
                }
                return;
            } catch (IOException e) {
                log.warn("NBD export '{}': accept failed: {}", exportName, e.toString());
                continue;
            }
            NbdConnection c = new NbdConnection(exportName, disk, s, tls);
            connections.add(c);
            accepted.incrementAndGet();
            Thread t = new Thread(() -> {
                try {
                    c.run();
                } finally {
                    connections.remove(c);
                    if (c.attached()) {
                        ended.incrementAndGet();
                    }
                }
            }, "nbd-conn-" + exportName + "-" + s.getRemoteSocketAddress());
            t.setDaemon(true);
            t.start();
        }
    }

    /** Stops accepting and closes every connection; does not close the disk (its owner does). */
    @Override
    public void close() throws IOException {
        closed = true;
        serverSocket.close();
        for (NbdConnection c : connections) {
            c.close();
        }
        try {
            acceptThread.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

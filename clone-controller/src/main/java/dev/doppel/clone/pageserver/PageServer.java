package dev.doppel.clone.pageserver;

import dev.doppel.hostnet.HostSockets;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The page server: serves one fork's memory to its remote clones over QEMU's own postcopy
 * migration protocol. Each clone is a stock QEMU destination listening with {@code -incoming}; the
 * page server connects to it, sends the device state, and then only the pages the clone asks for
 * (userfaultfd on the clone traps the first touch of every page). Pages come from the parent's
 * frozen generation file and the fork descriptor ({@link SnapshotPages}); each clone has its own
 * {@link ClonePageSession} with its own sent bitmaps, and one failing session leaves the others alone.
 *
 * <p>The page server plays the migration <em>source</em>, so it dials out: {@link #serve} for a new
 * clone, {@link #resume} for a clone that lost its previous page server and was told
 * {@code migrate-recover}. It does not own the snapshot's files; closing it closes its sessions.
 *
 * <p>With mutual TLS ({@link PageServerOptions#tls}) every connection is layered before a byte of the
 * protocol: the clone QEMU is the TLS server and asks for the page server's certificate, and the page
 * server checks the clone's against the CA, so memory goes only to a trusted clone host.
 */
public final class PageServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PageServer.class);

    private final String name;
    private final SnapshotPages pages;
    private final PageServerOptions options;
    private final HostSockets host;
    private final Map<String, ClonePageSession> sessions = new ConcurrentHashMap<>();
    private volatile boolean closed;

    public PageServer(String name, SnapshotPages pages, PageServerOptions options) {
        this(name, pages, options, HostSockets.LOCAL);
    }

    /** A page server whose connections to clones start on {@code host} (a host-local page server). */
    public PageServer(String name, SnapshotPages pages, PageServerOptions options, HostSockets host) {
        this.name = name;
        this.pages = pages;
        this.options = options;
        this.host = host;
    }

    public String name() {
        return name;
    }

    public SnapshotPages pages() {
        return pages;
    }

    /**
     * Connects to a clone listening at {@code destination} and starts its migration. Returns at once;
     * {@link ClonePageSession#serving()} completes when the clone's device state is loaded.
     *
     * @throws PageServerException if the clone cannot be reached within the connect timeout
     */
    public ClonePageSession serve(String clone, InetSocketAddress destination) {
        ClonePageSession s = newSession(clone);
        Socket tcp = connect(clone, destination, "connect");
        s.start(tcp, secure(clone, tcp, destination, "connect"));
        return s;
    }

    /** Connects to a clone in {@code postcopy-recover} (after {@code migrate-recover}) and resumes it. */
    public ClonePageSession resume(String clone, InetSocketAddress destination) {
        ClonePageSession s = newSession(clone);
        Socket tcp = connect(clone, destination, "reconnect");
        s.resume(tcp, secure(clone, tcp, destination, "reconnect"));
        return s;
    }

    private ClonePageSession newSession(String clone) {
        if (closed) {
            throw new PageServerException(clone, "session", "page server " + name + " is closed", null);
        }
        ClonePageSession s = new ClonePageSession(clone, pages, options);
        ClonePageSession old = sessions.put(clone, s);
        if (old != null) {
            old.kill();
        }
        return s;
    }

    public ClonePageSession session(String clone) {
        return sessions.get(clone);
    }

    public List<ClonePageSession> sessions() {
        return List.copyOf(sessions.values());
    }

    /** Stops serving one clone (its connection is cut; the clone pauses unless it completed). */
    public void drop(String clone) {
        ClonePageSession s = sessions.remove(clone);
        if (s != null) {
            s.kill();
        }
    }

    /** Cuts every connection at once without a protocol end: what a crash looks like to the clones. */
    public void kill() {
        closed = true;
        sessions.values().forEach(ClonePageSession::kill);
        log.warn("pageserver={} event=killed sessions={}", name, sessions.size());
    }

    public boolean isClosed() {
        return closed;
    }

    /** Connects with retries: the clone's QEMU starts listening a moment after {@code migrate-incoming}. */
    private Socket connect(String clone, InetSocketAddress destination, String step) {
        long deadline = System.nanoTime() + options.connectTimeout().toNanos();
        IOException last = null;
        while (System.nanoTime() < deadline) {
            try {
                return host.connect(destination, Duration.ofSeconds(1));
            } catch (IOException e) {
                last = e;
                try {
                    Thread.sleep(20);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        throw new PageServerException(clone, step, "cannot reach " + destination + " within "
                + options.connectTimeout().toMillis() + " ms", last);
    }

    /**
     * The TLS client end over a connected socket (the socket itself when insecure). A failed
     * handshake is not retried: whoever listens there is not a clone host of this installation.
     */
    private Socket secure(String clone, Socket tcp, InetSocketAddress destination, String step) {
        try {
            return options.tls().client(tcp, "page server " + name + " -> clone " + clone);
        } catch (IOException e) {
            throw new PageServerException(clone, step, "mutual TLS with " + destination + " failed: " + e.getMessage(), e);
        }
    }

    /** Cuts every session that has not completed (a clone still needing pages pauses) and stops. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        sessions.values().forEach(ClonePageSession::kill);
        log.info("pageserver={} event=closed", name);
    }
}

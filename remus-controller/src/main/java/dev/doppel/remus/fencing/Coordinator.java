package dev.doppel.remus.fencing;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import java.io.IOException;
import java.nio.file.Files;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.utils.ZookeeperFactory;
import org.apache.zookeeper.ZooKeeper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One host's connection to the coordination service (a ZooKeeper ensemble, through Curator). Leases
 * taken through it live as long as its ZooKeeper session.
 *
 * <p>The ZooKeeper client's threads are created on a thread inside the host's network namespace when
 * the host is one ({@link HostSockets#within}): a thread inherits its creator's namespace, so every
 * connection and reconnection the client makes leaves through that host's own link, and a test that
 * cuts the link cuts the host off the ensemble as a real partition would. With TLS the client is
 * ZooKeeper's Netty one, whose socket is opened by the client's connecting thread (one of those), so
 * it stays in the namespace too.
 *
 * <p>With a secure {@link PeerTls} the sessions run over TLS 1.3 with the host's client certificate,
 * and the ensemble's certificate must come from the same CA ({@link ZooKeeperTls}).
 */
public final class Coordinator implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Coordinator.class);
    /** Default session timeout: the primary's silence after which a backup may take over. */
    public static final Duration DEFAULT_SESSION = Duration.ofMillis(2000);

    private final CuratorFramework client;
    private final String connectString;
    private final Duration session;
    private final ZooKeeperTls tls;

    private Coordinator(CuratorFramework client, String connectString, Duration session, ZooKeeperTls tls) {
        this.client = client;
        this.connectString = connectString;
        this.session = session;
        this.tls = tls;
    }

    /**
     * Connects to {@code connectString} ({@code host:port,...}) from {@code host}, over TLS when
     * {@code peerTls} is secure (the ensemble's secure client ports); waits up to {@code connectTimeout}
     * for the first connection. A failed handshake looks like an ensemble that does not answer.
     */
    public static Coordinator connect(String connectString, Duration session, HostSockets host, Duration connectTimeout,
                                      PeerTls peerTls) throws FencingException {
        ZooKeeperTls tls = null;
        if (peerTls.secure()) {
            try {
                tls = ZooKeeperTls.write(peerTls, "client", Files.createTempDirectory("doppel-zk-client"));
            } catch (IOException e) {
                throw new FencingException("*", "preparing the TLS identity in " + peerTls.directory() + " for ZooKeeper", e);
            }
        }
        try {
            return connect(connectString, session, host, connectTimeout, tls, peerTls);
        } catch (FencingException | RuntimeException e) {
            if (tls != null) {
                tls.close();
            }
            throw e;
        }
    }

    private static Coordinator connect(String connectString, Duration session, HostSockets host, Duration connectTimeout,
                                       ZooKeeperTls tls, PeerTls peerTls) throws FencingException {
        // Curator makes a new ZooKeeper client after an expired session: each gets its own configuration.
        ZookeeperFactory factory = tls == null
                ? (cs, timeout, watcher, readOnly) -> host.within(() -> new ZooKeeper(cs, timeout, watcher, readOnly))
                : (cs, timeout, watcher, readOnly) -> host.within(() -> new ZooKeeper(cs, timeout, watcher, readOnly, tls.clientConfig()));
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs((int) session.toMillis())
                .connectionTimeoutMs((int) Math.max(1000, session.toMillis()))
                // Few, short retries: a fencing decision must not wait longer than the session it protects.
                .retryPolicy(new RetryNTimes(3, (int) Math.max(50, session.toMillis() / 10)))
                .zookeeperFactory(factory)
                .build();
        c.start();
        try {
            if (!c.blockUntilConnected((int) connectTimeout.toMillis(), TimeUnit.MILLISECONDS)) {
                c.close();
                throw new FencingException("*", "the coordination service at " + connectString + " did not answer within "
                        + connectTimeout.toMillis() + " ms");
            }
        } catch (InterruptedException e) {
            c.close();
            Thread.currentThread().interrupt();
            throw new FencingException("*", "interrupted while connecting to " + connectString, e);
        }
        log.info("event=coordinator-connected connect={} session_ms={} via={} tls=\"{}\"", connectString, session.toMillis(), host,
                peerTls);
        return new Coordinator(c, connectString, session, tls);
    }

    public CuratorFramework client() {
        return client;
    }

    public String connectString() {
        return connectString;
    }

    /** The session timeout asked for (the ensemble may clamp it to its tick-time bounds). */
    public Duration sessionTimeout() {
        return session;
    }

    @Override
    public void close() {
        client.close();
        if (tls != null) {
            tls.close();
        }
    }
}

package dev.doppel.remus.fencing;

import dev.doppel.hostnet.HostSockets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;
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
 * cuts the link cuts the host off the ensemble as a real partition would.
 */
public final class Coordinator implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Coordinator.class);
    /** Default session timeout: the primary's silence after which a backup may take over. */
    public static final Duration DEFAULT_SESSION = Duration.ofMillis(2000);

    private final CuratorFramework client;
    private final String connectString;
    private final Duration session;

    private Coordinator(CuratorFramework client, String connectString, Duration session) {
        this.client = client;
        this.connectString = connectString;
        this.session = session;
    }

    /**
     * Connects to {@code connectString} ({@code host:port,...}) from {@code host}; waits up to
     * {@code connectTimeout} for the first connection.
     */
    public static Coordinator connect(String connectString, Duration session, HostSockets host, Duration connectTimeout)
            throws FencingException {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs((int) session.toMillis())
                .connectionTimeoutMs((int) Math.max(1000, session.toMillis()))
                // Few, short retries: a fencing decision must not wait longer than the session it protects.
                .retryPolicy(new RetryNTimes(3, (int) Math.max(50, session.toMillis() / 10)))
                .zookeeperFactory((cs, timeout, watcher, readOnly) -> host.within(() -> new ZooKeeper(cs, timeout, watcher, readOnly)))
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
        log.info("event=coordinator-connected connect={} session_ms={} via={}", connectString, session.toMillis(), host);
        return new Coordinator(c, connectString, session);
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
    }
}

package dev.doppel.remus.fencing;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Properties;
import org.apache.zookeeper.server.embedded.ExitHandler;
import org.apache.zookeeper.server.embedded.ZooKeeperServerEmbedded;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A single ZooKeeper server inside this process, for one machine and for tests: it is a single point
 * of failure (whoever loses it can neither take over nor keep a lease), so real deployments point
 * {@code --coordinator} at an ensemble of three or five servers on other hosts. With {@link #member}
 * several of these form an ensemble (tests put one in each of three network namespaces, so that a
 * partition can cut it).
 *
 * <p>tickTime 100 ms: ZooKeeper bounds session timeouts to 2–20 ticks by default, so Doppel's
 * sub-second to few-second sessions need a short tick (the upper bound is raised to 60 s).
 *
 * <p>With a secure {@link PeerTls} the server has no plain client port: it listens on a secure one
 * (Netty, TLS 1.3) that requires a client certificate from the host identity's CA, and the members of
 * an ensemble talk to each other over TLS too ({@code sslQuorum}). ZooKeeper keeps server TLS settings
 * process-wide (system properties), so all secure servers of one process share one identity (see
 * {@link ZooKeeperTls#claimServer}).
 */
public final class EmbeddedCoordinator implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedCoordinator.class);

    private final ZooKeeperServerEmbedded server;
    private final Path dataDir;
    private final String connectString;
    private final boolean secure;

    private EmbeddedCoordinator(ZooKeeperServerEmbedded server, Path dataDir, String connectString, boolean secure) {
        this.server = server;
        this.dataDir = dataDir;
        this.connectString = connectString;
        this.secure = secure;
    }

    /**
     * A standalone server on {@code address} (port 0: a free one), data in {@code dataDir}; with a secure
     * {@code tls}, {@code address} is its secure client port and the only one.
     */
    public static EmbeddedCoordinator standalone(InetSocketAddress address, Path dataDir, HostSockets host, PeerTls tls)
            throws IOException {
        int port = address.getPort() != 0 ? address.getPort() : freePort(address, host);
        Properties p = baseConfig(dataDir);
        clientPort(p, new InetSocketAddress(address.getAddress(), port), tls);
        String connect = address.getAddress().getHostAddress() + ":" + port;
        EmbeddedCoordinator c = start(p, dataDir, connect, host, tls, false);
        log.warn("event=embedded-coordinator connect={} tls=\"{}\" note=\"single ZooKeeper server in this process: for one "
                + "machine and tests only; use --coordinator with a 3- or 5-server ensemble on other hosts for real use\"",
                connect, tls);
        return c;
    }

    /**
     * Member {@code myId} (1-based) of an ensemble whose members are {@code members} (client address
     * of each; quorum and election ports are the client port + 1 and + 2). With a secure {@code tls},
     * the client address is a secure port and the quorum and election links run over TLS.
     */
    public static EmbeddedCoordinator member(int myId, java.util.List<InetSocketAddress> members, Path dataDir, HostSockets host,
                                             PeerTls tls) throws IOException {
        Properties p = baseConfig(dataDir);
        InetSocketAddress me = members.get(myId - 1);
        clientPort(p, me, tls);
        p.setProperty("initLimit", "50");
        p.setProperty("syncLimit", "10");
        StringBuilder connect = new StringBuilder();
        for (int i = 0; i < members.size(); i++) {
            InetSocketAddress m = members.get(i);
            String h = m.getAddress().getHostAddress();
            p.setProperty("server." + (i + 1), h + ":" + (m.getPort() + 1) + ":" + (m.getPort() + 2));
            connect.append(i == 0 ? "" : ",").append(h).append(':').append(m.getPort());
        }
        Files.createDirectories(dataDir);
        Files.writeString(dataDir.resolve("myid"), myId + "\n");
        return start(p, dataDir, connect.toString(), host, tls, true);
    }

    /** The plain client port, or with TLS only the secure one (a plain port would let anyone in). */
    private static void clientPort(Properties p, InetSocketAddress address, PeerTls tls) {
        String prefix = tls.secure() ? "secureClientPort" : "clientPort";
        p.setProperty(prefix, Integer.toString(address.getPort()));
        p.setProperty(prefix + "Address", address.getAddress().getHostAddress());
    }

    private static Properties baseConfig(Path dataDir) {
        Properties p = new Properties();
        p.setProperty("dataDir", dataDir.toString());
        p.setProperty("tickTime", "100");
        p.setProperty("minSessionTimeout", "200");
        p.setProperty("maxSessionTimeout", "60000");
        p.setProperty("admin.enableServer", "false");
        p.setProperty("4lw.commands.whitelist", "ruok,mntr,stat");
        p.setProperty("metricsProvider.exportJvmInfo", "false");
        return p;
    }

    private static EmbeddedCoordinator start(Properties p, Path dataDir, String connect, HostSockets host, PeerTls peerTls,
                                             boolean quorum) throws IOException {
        Files.createDirectories(dataDir);
        boolean secure = peerTls.secure();
        if (secure) {
            ZooKeeperTls.claimServer(peerTls).serverConfig(p, quorum);
        }
        ZooKeeperServerEmbedded s;
        try {
            s = ZooKeeperServerEmbedded.builder().baseDir(dataDir).configuration(p).exitHandler(ExitHandler.LOG_ONLY).build();
            if (secure) {
                ZooKeeperTls.refreshClientCertificateCheck();
            }
            ZooKeeperServerEmbedded started = s;
            // Started on a thread inside the host's namespace: the server's threads (and sockets) stay there.
            host.within(() -> {
                started.start();
                return null;
            });
        } catch (Exception e) {
            if (secure) {
                ZooKeeperTls.releaseServer();
            }
            throw e instanceof IOException io ? io
                    : new IOException("starting the embedded ZooKeeper at " + connect + ": " + e.getMessage(), e);
        }
        return new EmbeddedCoordinator(s, dataDir, connect, secure);
    }

    private static int freePort(InetSocketAddress address, HostSockets host) throws IOException {
        try (ServerSocket s = host.listen(new InetSocketAddress(address.getAddress(), 0), 1)) {
            return s.getLocalPort();
        }
    }

    /** {@code host:port} for clients (the whole ensemble's list for a member). */
    public String connectString() {
        return connectString;
    }

    @Override
    public void close() {
        server.close();
        if (secure) {
            ZooKeeperTls.releaseServer();
        }
        try (var files = Files.walk(dataDir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            log.debug("removing {}: {}", dataDir, e.toString());
        }
    }
}

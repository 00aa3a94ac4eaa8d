package dev.doppel.remus.fencing;

import dev.doppel.hostnet.HostSockets;
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
 */
public final class EmbeddedCoordinator implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedCoordinator.class);

    private final ZooKeeperServerEmbedded server;
    private final Path dataDir;
    private final String connectString;

    private EmbeddedCoordinator(ZooKeeperServerEmbedded server, Path dataDir, String connectString) {
        this.server = server;
        this.dataDir = dataDir;
        this.connectString = connectString;
    }

    /** A standalone server on {@code address} (port 0: a free one), data in {@code dataDir}. */
    public static EmbeddedCoordinator standalone(InetSocketAddress address, Path dataDir, HostSockets host) throws IOException {
        int port = address.getPort() != 0 ? address.getPort() : freePort(address, host);
        Properties p = baseConfig(dataDir);
        p.setProperty("clientPort", Integer.toString(port));
        p.setProperty("clientPortAddress", address.getAddress().getHostAddress());
        String connect = address.getAddress().getHostAddress() + ":" + port;
        EmbeddedCoordinator c = start(p, dataDir, connect, host);
        log.warn("event=embedded-coordinator connect={} note=\"single ZooKeeper server in this process: for one machine and "
                + "tests only; use --coordinator with a 3- or 5-server ensemble on other hosts for real use\"", connect);
        return c;
    }

    /**
     * Member {@code myId} (1-based) of an ensemble whose members are {@code members} (client address
     * of each; quorum and election ports are the client port + 1 and + 2).
     */
    public static EmbeddedCoordinator member(int myId, java.util.List<InetSocketAddress> members, Path dataDir, HostSockets host)
            throws IOException {
        Properties p = baseConfig(dataDir);
        InetSocketAddress me = members.get(myId - 1);
        p.setProperty("clientPort", Integer.toString(me.getPort()));
        p.setProperty("clientPortAddress", me.getAddress().getHostAddress());
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
        return start(p, dataDir, connect.toString(), host);
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

    private static EmbeddedCoordinator start(Properties p, Path dataDir, String connect, HostSockets host) throws IOException {
        Files.createDirectories(dataDir);
        ZooKeeperServerEmbedded s;
        try {
            s = ZooKeeperServerEmbedded.builder().baseDir(dataDir).configuration(p).exitHandler(ExitHandler.LOG_ONLY).build();
            ZooKeeperServerEmbedded started = s;
            // Started on a thread inside the host's namespace: the server's threads (and sockets) stay there.
            host.within(() -> {
                started.start();
                return null;
            });
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException("starting the embedded ZooKeeper at " + connect + ": " + e.getMessage(), e);
        }
        return new EmbeddedCoordinator(s, dataDir, connect);
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
        try (var files = Files.walk(dataDir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            log.debug("removing {}: {}", dataDir, e.toString());
        }
    }
}

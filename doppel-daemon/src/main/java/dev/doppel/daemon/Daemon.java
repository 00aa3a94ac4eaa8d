package dev.doppel.daemon;

import dev.doppel.daemon.backup.BackupHost;
import dev.doppel.daemon.events.EventHub;
import dev.doppel.daemon.fork.ForkFamilies;
import dev.doppel.daemon.http.ApiRoutes;
import dev.doppel.daemon.http.BearerToken;
import dev.doppel.daemon.metrics.DoppelMeters;
import dev.doppel.daemon.protection.Protections;
import dev.doppel.daemon.vms.HostVms;
import dev.doppel.daemon.vms.VmView;
import dev.doppel.tls.Pki;
import dev.doppel.vm.Accelerator;
import dev.doppel.vm.VmLauncher;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.core.net.SocketAddress;
import io.vertx.micrometer.MicrometerMetricsFactory;
import io.vertx.micrometer.MicrometerMetricsOptions;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * doppeld: one per host. Owns the host's VMs, protections, backup service and fork families; serves
 * the API on a unix socket (and on TCP with TLS and a token). Started, it first re-adopts what a
 * previous daemon left: the VMs in their run directories, the backup service it ran, the protections
 * whose intent the VMs' run directories keep. Stopped (or killed), it stops no guest.
 */
public final class Daemon implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Daemon.class);

    private final DaemonConfig config;
    private final Vertx vertx;
    private final HostServices host;
    private final List<HttpServer> servers = new ArrayList<>();
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile boolean closing;

    private Daemon(DaemonConfig config, Vertx vertx, HostServices host) {
        this.config = config;
        this.vertx = vertx;
        this.host = host;
    }

    /** Starts the daemon: API listeners up, then adoption of what a previous daemon left (reported as events). */
    public static Daemon start(DaemonConfig config) throws Exception {
        // ZooKeeper's Netty TLS client checks the peer's host name itself (ZKTrustManager, on by default).
        // Once the API's HTTPS server had made Netty's TLS classes load first, Netty's own engine-level
        // check (HTTPS identification of the connect string's host) was on as well, and every ZooKeeper TLS
        // session of the daemon failed (containers: the connect string is an address, the certificate
        // names the host). Off before any TLS context exists; ZooKeeper's check stays.
        if (System.getProperty("io.netty.handler.ssl.defaultEndpointVerificationAlgorithm") == null) {
            System.setProperty("io.netty.handler.ssl.defaultEndpointVerificationAlgorithm", "NONE");
        }
        Files.createDirectories(config.stateDir());
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        Vertx vertx = Vertx.builder()
                .with(new VertxOptions().setMetricsOptions(new MicrometerMetricsOptions().setEnabled(true)))
                .withMetrics(new MicrometerMetricsFactory(registry))
                .build();
        Daemon d = null;
        try {
            EventHub events = new EventHub();
            VmLauncher launcher = VmLauncher.create(Accelerator.parseOrAuto(config.accelerator() == null ? "auto" : config.accelerator()));
            HostVms vms = new HostVms(launcher, config.patchedQemu(), events);
            Protections[] protections = new Protections[1];
            ForkFamilies[] forks = new ForkFamilies[1];
            DoppelMeters meters = new DoppelMeters(registry, vm -> protections[0] == null ? null : protections[0].status(vm),
                    () -> vms.list(n -> null).stream().filter(v -> v.state().equals("running")).count(),
                    () -> forks[0] == null ? 0 : forks[0].clonesAlive());
            protections[0] = new Protections(events, meters);
            forks[0] = new ForkFamilies(launcher, events, meters, forkMemoryDir(config.stateDir()), forkDiskDir(config.stateDir()),
                    config.tlsDir() == null ? dev.doppel.tls.PeerTls.INSECURE : dev.doppel.tls.PeerTls.load(config.tlsDir()),
                    cloneHostPrefix(config.stateDir()));
            BackupHost backup = new BackupHost(config.stateDir(), vms, events, meters);
            HostServices host = new HostServices(vms, protections[0], backup, forks[0], events, launcher.accelerator().toString(),
                    System.currentTimeMillis());
            d = new Daemon(config, vertx, host);
            d.listen(registry);
            d.adopt();
            return d;
        } catch (Exception | Error e) {
            if (d != null) {
                d.close();
            } else {
                vertx.close();
            }
            throw e;
        }
    }

    /**
     * The namespace prefix of this daemon's other hosts for remote clones: network namespaces are the
     * machine's, so two daemons on one machine (tests, benches) get different prefixes from their state
     * directories, and a restarted daemon finds its own again.
     */
    public static String cloneHostPrefix(Path stateDir) {
        return String.format("dph%04x-", stateDir.toAbsolutePath().normalize().toString().hashCode() & 0xffff);
    }

    private void listen(PrometheusMeterRegistry registry) throws Exception {
        ApiRoutes routes = new ApiRoutes(vertx, host, () -> new Thread(this::close, "daemon-stop").start());
        Path socket = config.socket();
        Files.createDirectories(socket.getParent());
        // Local access is whoever may enter the socket's directory: root and its group.
        Files.setPosixFilePermissions(socket.getParent(), PosixFilePermissions.fromString("rwxr-x---"));
        refuseIfAnswering(socket);
        Files.deleteIfExists(socket);
        servers.add(vertx.createHttpServer().requestHandler(routes.router(null, registry))
                .listen(SocketAddress.domainSocketAddress(socket.toString())).await(30, TimeUnit.SECONDS));
        Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-rw----"));
        if (config.tcp() != null) {
            Path dir = config.tlsDir();
            HttpServerOptions tls = new HttpServerOptions().setSsl(true)
                    .setKeyCertOptions(new PemKeyCertOptions()
                            .setCertValue(Buffer.buffer(Files.readAllBytes(dir.resolve("server-cert.pem"))))
                            // doppel pki writes EC keys in the traditional form (for GnuTLS); Vert.x reads PKCS#8
                            .setKeyValue(Buffer.buffer(Pki.pkcs8Pem(dir.resolve("server-key.pem")))));
            servers.add(vertx.createHttpServer(tls).requestHandler(routes.router(BearerToken.load(config.tokenFile()), registry))
                    .listen(config.tcp().getPort(), config.tcp().getHostString()).await(30, TimeUnit.SECONDS));
        }
        Files.writeString(config.stateDir().resolve("doppeld.pid"), ProcessHandle.current().pid() + "\n");
        log.info("event=daemon-listening socket={} tcp={} pid={}", socket,
                config.tcp() == null ? "none" : config.tcp().getHostString() + ":" + tcpPort(), ProcessHandle.current().pid());
    }

    /** The bound TCP port (the config may say 0), or -1 without TCP. */
    public int tcpPort() {
        return servers.size() > 1 ? servers.get(1).actualPort() : -1;
    }

    /** Where the fork families of the daemon with this state directory keep their generation files (tmpfs). */
    public static Path forkMemoryDir(Path stateDir) {
        return Path.of("/dev/shm/doppel-daemon-" + Integer.toHexString(stateDir.toAbsolutePath().hashCode()) + "-forks");
    }

    /** Where its fork families keep their disks and records, one directory per family. */
    public static Path forkDiskDir(Path stateDir) {
        return stateDir.resolve("fork-overlays");
    }

    private static void refuseIfAnswering(Path socket) throws IOException {
        if (!Files.exists(socket)) {
            return;
        }
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(socket));
            throw new IllegalStateException("a daemon already serves " + socket + " (doppel daemon stop first)");
        } catch (IOException e) {
            // nobody answers: a socket left by a daemon that was killed
        }
    }

    private void adopt() throws IOException {
        // Families first: their members' run directories are theirs, not VMs of the list.
        List<String> families = host.forks().adoptLeftovers();
        List<VmView> found = host.vms().adopt(host.forks()::ownsRunDir);
        boolean backup = host.backup().adopt();
        List<String> reprotecting = host.protections().adopt();
        host.events().publish("daemon-started", null, -1, null, Map.of(
                "pid", ProcessHandle.current().pid(),
                "vmsFound", found.stream().map(v -> v.name() + " (" + v.state() + ")").toList(),
                "backupResumed", backup,
                "familiesFound", families,
                "protectionsResumed", reprotecting));
        log.info("event=daemon-adopted vms={} backup_resumed={} protections_resumed={}", found.size(), backup, reprotecting);
    }

    /** Blocks until the daemon stopped (API request, signal, {@link #close}). */
    public void awaitStop() throws InterruptedException {
        stopped.await();
    }

    /**
     * Stops what the daemon started — listeners, protections (the guests run on unprotected and are
     * protected again by the next daemon), the backup service — and no VM: fork families run on and
     * the next daemon adopts them.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closing) {
                return;
            }
            closing = true;
        }
        host.events().publish("daemon-stopping", null, -1, null, Map.of());
        for (HttpServer s : servers) {
            try {
                s.close().await(5, TimeUnit.SECONDS);
            } catch (Exception e) {
                log.warn("event=listener-close-failed cause=\"{}\"", e.toString());
            }
        }
        host.protections().close();
        host.backup().close();
        host.forks().close();
        host.vms().close();
        try {
            vertx.close().await(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            log.warn("event=vertx-close-failed cause=\"{}\"", e.toString());
        }
        try {
            Files.deleteIfExists(config.socket());
            Files.deleteIfExists(config.stateDir().resolve("doppeld.pid"));
        } catch (IOException e) {
            log.warn("event=cleanup-failed cause=\"{}\"", e.getMessage());
        }
        log.info("event=daemon-stopped");
        stopped.countDown();
    }
}

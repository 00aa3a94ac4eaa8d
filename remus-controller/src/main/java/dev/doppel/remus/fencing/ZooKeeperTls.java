package dev.doppel.remus.fencing;

import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.Properties;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.server.auth.ProviderRegistry;
import org.apache.zookeeper.server.auth.X509AuthenticationProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Doppel host identity ({@link PeerTls}) in the form ZooKeeper's own TLS (Netty) reads: a PEM
 * "key store" holding the host key and certificate, and the CA certificate as the only trust anchor.
 *
 * <p>ZooKeeper takes only PKCS#8 keys, while Doppel's host keys are in OpenSSL's traditional form (for
 * QEMU's GnuTLS), so the key store is a converted copy in a private directory ({@code rwx------},
 * file {@code rw-------}) that lives as long as the client or server using it and is deleted with it.
 *
 * <p>As everywhere in Doppel, trust is the installation's CA and nothing else: host names are not
 * checked ({@code ssl.hostnameVerification=false}), the same as {@link PeerTls}, since a host's
 * certificate names the host and the peer is seen by its address.
 *
 * <p>Netty 4.2 (which Vert.x 5 brings; ZooKeeper 3.9 was built against 4.1) checks the server's host
 * name in every client TLS context by default, below ZooKeeper's own setting, and the name it checks
 * is whatever the client's address resolved to ("localhost" for 127.0.0.1). Doppel turns that default
 * off for the process ({@value #NETTY_ENDPOINT_CHECK}{@code =NONE}) before the first TLS context is
 * made; nothing else in Doppel uses Netty's TLS, and Vert.x sets its own check on each engine.
 */
final class ZooKeeperTls implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ZooKeeperTls.class);
    private static final String PROTOCOL = "TLSv1.3";
    static final String NETTY_ENDPOINT_CHECK = "io.netty.handler.ssl.defaultEndpointVerificationAlgorithm";

    private final PeerTls tls;
    private final Path dir;
    private final Path keyStore;

    private ZooKeeperTls(PeerTls tls, Path dir, Path keyStore) {
        this.tls = tls;
        this.dir = dir;
        this.keyStore = keyStore;
    }

    /**
     * Writes {@code end}'s ("client" or "server") key store for {@code tls} into {@code dir} (created
     * private; deleted by {@link #close}).
     */
    static ZooKeeperTls write(PeerTls tls, String end, Path dir) throws IOException {
        if (!tls.secure()) {
            throw new IllegalArgumentException("no TLS identity: " + tls);
        }
        noNettyHostNameCheck();
        Path host = tls.directory();
        Files.createDirectories(dir);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
        Path ks = dir.resolve(end + "-keystore.pem");
        Files.deleteIfExists(ks);
        Files.createFile(ks, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.writeString(ks, Pki.pkcs8Pem(host.resolve(end + "-key.pem")) + Files.readString(host.resolve(end + "-cert.pem")));
        return new ZooKeeperTls(tls, dir, ks);
    }

    private Path trustStore() {
        return tls.directory().resolve("ca-cert.pem");
    }

    /** A client configuration: TLS through Netty with this host's certificate. */
    ZKClientConfig clientConfig() {
        ZKClientConfig c = new ZKClientConfig();
        c.setProperty(ZKClientConfig.SECURE_CLIENT, "true");
        c.setProperty(ZKClientConfig.ZOOKEEPER_CLIENT_CNXN_SOCKET, "org.apache.zookeeper.ClientCnxnSocketNetty");
        // Properties of a ZKClientConfig are this client's own; ZooKeeper's defaults for them come from
        // system properties, which an embedded server of this process sets (so each one is set here).
        stores(c::setProperty, "zookeeper.ssl.");
        return c;
    }

    /**
     * The server settings (zoo.cfg lines): the secure client port only, client certificates required,
     * and with {@code quorum} TLS between members too.
     */
    void serverConfig(Properties p, boolean quorum) {
        p.setProperty("serverCnxnFactory", "org.apache.zookeeper.server.NettyServerCnxnFactory");
        stores(p::setProperty, "ssl.");
        p.setProperty("ssl.clientAuth", "need");
        if (quorum) {
            p.setProperty("sslQuorum", "true");
            p.setProperty("portUnification", "false");
            stores(p::setProperty, "ssl.quorum.");
            p.setProperty("ssl.quorum.clientAuth", "need");
        }
        synchronized (ZooKeeperTls.class) {
            for (String key : p.stringPropertyNames()) {
                if (key.startsWith("ssl.") || key.equals("serverCnxnFactory")) {
                    serverSystemProperties.put("zookeeper." + key, p.getProperty(key));
                }
            }
        }
    }

    private void stores(java.util.function.BiConsumer<String, String> set, String prefix) {
        set.accept(prefix + "keyStore.location", keyStore.toString());
        set.accept(prefix + "keyStore.type", "PEM");
        set.accept(prefix + "trustStore.location", trustStore().toString());
        set.accept(prefix + "trustStore.type", "PEM");
        set.accept(prefix + "hostnameVerification", "false");
        set.accept(prefix + "enabledProtocols", PROTOCOL);
    }

    @Override
    public void close() {
        try (var files = Files.walk(dir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            log.debug("removing {}: {}", dir, e.toString());
        }
    }

    private static boolean nettyChecked;

    /**
     * Turns Netty's default host name check off (see the class comment), and makes sure it is off: Netty
     * reads the property once, so a TLS context made earlier in this process would have fixed it.
     */
    private static synchronized void noNettyHostNameCheck() throws IOException {
        if (nettyChecked) {
            return;
        }
        if (System.getProperty(NETTY_ENDPOINT_CHECK) == null) {
            System.setProperty(NETTY_ENDPOINT_CHECK, "NONE");
        }
        try {
            javax.net.ssl.SSLEngine probe = io.netty.handler.ssl.SslContextBuilder.forClient()
                    .sslProvider(io.netty.handler.ssl.SslProvider.JDK).build()
                    .newEngine(io.netty.buffer.ByteBufAllocator.DEFAULT, "probe.invalid", 1);
            String check = probe.getSSLParameters().getEndpointIdentificationAlgorithm();
            if (check != null && !check.isEmpty()) {
                throw new IOException("Netty checks the server's host name (" + check + ") in every client TLS context of this "
                        + "process, which ZooKeeper's ssl.hostnameVerification=false does not turn off; start the JVM with -D"
                        + NETTY_ENDPOINT_CHECK + "=NONE");
            }
        } catch (javax.net.ssl.SSLException e) {
            throw new IOException("probing Netty's TLS defaults: " + e.getMessage(), e);
        }
        nettyChecked = true;
    }

    // ZooKeeper's server reads its TLS settings from system properties (QuorumPeerConfig turns every
    // zoo.cfg line it does not know into "zookeeper.<key>"; the Netty factory and the quorum read them
    // back on each connection), so all servers in one process share one identity, and one key store
    // file, which lives until the last of them stops. A second identity while a secure server runs
    // would silently replace the first one's: it is refused instead.
    private static ZooKeeperTls serverTls;
    private static int secureServers;
    /** What the servers' configurations put into system properties, removed when the last one stops. */
    private static final java.util.Map<String, String> serverSystemProperties = new java.util.HashMap<>();

    /**
     * The process's server identity, for one more server: made from {@code tls} for the first one; the
     * same identity may serve several members. Each call is paired with {@link #releaseServer}.
     */
    static synchronized ZooKeeperTls claimServer(PeerTls tls) throws IOException {
        if (secureServers > 0 && !serverTls.tls.directory().equals(tls.directory())) {
            throw new IOException("an embedded ZooKeeper server of this process already runs with the TLS identity in "
                    + serverTls.tls.directory() + ": ZooKeeper keeps server TLS settings process-wide, so members embedded "
                    + "in one process must share one identity (asked for " + tls.directory() + ")");
        }
        if (secureServers == 0) {
            serverTls = write(tls, "server", Files.createTempDirectory("doppel-zk-server"));
        }
        secureServers++;
        return serverTls;
    }

    /**
     * After the server's configuration was parsed (the system properties set): the "x509" authentication
     * provider, which checks every client's certificate chain once more after the handshake, is made once
     * per process from the system properties of that moment; it is made again so that it trusts this
     * identity's CA (a process that ran a server of another CA before would otherwise refuse every client).
     */
    static synchronized void refreshClientCertificateCheck() {
        String key = ProviderRegistry.AUTHPROVIDER_PROPERTY_PREFIX + "x509";
        System.setProperty(key, X509AuthenticationProvider.class.getName());
        ProviderRegistry.addOrUpdateProvider(key);
    }

    static synchronized void releaseServer() {
        if (secureServers == 0) {
            return;
        }
        secureServers--;
        if (secureServers == 0) {
            serverTls.close();
            serverTls = null;
            // A later plain server or client of this process starts from ZooKeeper's defaults again.
            serverSystemProperties.forEach((k, v) -> {
                if (v.equals(System.getProperty(k))) {
                    System.clearProperty(k);
                }
            });
            serverSystemProperties.clear();
        }
    }
}

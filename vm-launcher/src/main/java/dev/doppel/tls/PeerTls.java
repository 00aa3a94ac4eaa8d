package dev.doppel.tls;

import java.io.IOException;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How a Doppel link between hosts is protected: mutual TLS 1.3 with the installation's CA as the only
 * trust anchor (both ends present a host certificate; a peer without one, or with one from another
 * CA, fails the handshake and is disconnected before it can send a byte of protocol), or
 * {@link #INSECURE}, plain TCP, which the command line gives only with an explicit {@code --insecure}.
 *
 * <p>Sockets are created and connected as before ({@code HostSockets}) and then layered: the TLS
 * session runs over the same TCP connection, so a host that is a network namespace keeps its link.
 */
public final class PeerTls {
    private static final Logger log = LoggerFactory.getLogger(PeerTls.class);
    private static final Duration HANDSHAKE = Duration.ofSeconds(10);

    /** Plain TCP: no authentication, no encryption. */
    public static final PeerTls INSECURE = new PeerTls(null, null);

    private final SSLContext context;
    private final Path dir;

    private PeerTls(SSLContext context, Path dir) {
        this.context = context;
        this.dir = dir;
    }

    /** The host identity in {@code hostDir} (see {@link Pki} for the layout). */
    public static PeerTls load(Path hostDir) throws IOException {
        for (String f : List.of("ca-cert.pem", "client-cert.pem", "client-key.pem")) {
            if (!Files.exists(hostDir.resolve(f))) {
                throw new IOException("no " + f + " in " + hostDir + ": create it with 'doppel pki init' and "
                        + "'doppel pki issue HOST', or run with --insecure");
            }
        }
        try {
            PrivateKey key = Pki.readKey(hostDir.resolve("client-key.pem"));
            List<X509Certificate> chain = Pki.readCertificates(hostDir.resolve("client-cert.pem"));
            KeyStore ks = KeyStore.getInstance("PKCS12");
            ks.load(null, null);
            ks.setKeyEntry("host", key, new char[0], chain.toArray(new Certificate[0]));
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, new char[0]);
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            int i = 0;
            for (X509Certificate ca : Pki.readCertificates(hostDir.resolve("ca-cert.pem"))) {
                trust.setCertificateEntry("ca" + i++, ca);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext ctx = SSLContext.getInstance("TLSv1.3");
            ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
            return new PeerTls(ctx, hostDir);
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException("loading the TLS identity in " + hostDir + ": " + e.getMessage(), e);
        }
    }

    public boolean secure() {
        return context != null;
    }

    /** The host directory (for QEMU's {@code tls-creds-x509}), or null when insecure. */
    public Path directory() {
        return dir;
    }

    /** The client end over an already connected socket; returns after the handshake. */
    public Socket client(Socket plain, String what) throws IOException {
        return layer(plain, false, what);
    }

    /**
     * The server end over an accepted socket; returns after the handshake, which requires the peer's
     * certificate. On failure the socket is closed and the exception names the peer and the reason.
     */
    public Socket server(Socket accepted, String what) throws IOException {
        return layer(accepted, true, what);
    }

    private Socket layer(Socket plain, boolean serverEnd, String what) throws IOException {
        if (context == null) {
            return plain;
        }
        String peer = String.valueOf(plain.getRemoteSocketAddress());
        int timeout = plain.getSoTimeout();
        try {
            SSLSocket s = (SSLSocket) context.getSocketFactory().createSocket(plain,
                    plain.getInetAddress().getHostAddress(), plain.getPort(), true);
            s.setUseClientMode(!serverEnd);
            if (serverEnd) {
                s.setNeedClientAuth(true);
            }
            s.setSoTimeout((int) HANDSHAKE.toMillis());
            s.startHandshake();
            s.setSoTimeout(timeout);
            if (serverEnd) {
                log.info("event=tls-peer-accepted link=\"{}\" peer={} subject=\"{}\"", what, peer,
                        s.getSession().getPeerPrincipal().getName());
            }
            return s;
        } catch (IOException e) {
            plain.close();
            log.warn("event=tls-peer-rejected link=\"{}\" peer={} end={} cause=\"{}\"", what, peer, serverEnd ? "server" : "client",
                    e.getMessage());
            throw new IOException(what + ": TLS with " + peer + " failed: " + e.getMessage(), e);
        }
    }

    @Override
    public String toString() {
        return context == null ? "insecure (plain TCP)" : "mutual TLS 1.3 (" + dir + ")";
    }
}

package dev.doppel.tls;

import java.io.IOException;
import java.io.Reader;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;

/**
 * {@code doppel pki}: a certificate authority for one Doppel installation and a certificate per host.
 *
 * <p>Layout of a PKI directory:
 * <pre>
 *   ca/ca-cert.pem, ca/ca-key.pem           the CA (keep ca-key.pem on the machine that issues)
 *   HOST/ca-cert.pem                        the CA certificate: the only trust anchor
 *   HOST/server-cert.pem, HOST/server-key.pem
 *   HOST/client-cert.pem, HOST/client-key.pem
 *   HOST/dh-params.pem                      RFC 7919's ffdhe2048 group, for QEMU's server end (see {@link #DH_PARAMS})
 * </pre>
 * A host directory is what QEMU's {@code tls-creds-x509,dir=…} reads (server or client endpoint), and
 * what {@link PeerTls#load} reads. A host certificate serves for both ends (serverAuth and
 * clientAuth), carries the host name as CN and subject alternative name (DNS, or IP when it is an
 * address). Keys are ECDSA P-256; certificates are made with BouncyCastle, since the JDK has no public
 * API to sign one (no cryptography is written here).
 */
public final class Pki {
    private static final String SIGNATURE = "SHA256withECDSA";
    /** Not registered with the JDK (no global state): makes the key pairs and reads keys back. */
    private static final java.security.Provider BC = new org.bouncycastle.jce.provider.BouncyCastleProvider();
    private static final Duration CA_LIFETIME = Duration.ofDays(3650);
    private static final Duration HOST_LIFETIME = Duration.ofDays(825);

    /**
     * RFC 7919's ffdhe2048 group (PKCS#3 PEM, a published constant). A {@code tls-creds-x509} object
     * with {@code endpoint=server} loads {@code dh-params.pem} from its directory, and without one
     * GnuTLS generates 2048-bit DH parameters at creation: 50–300 ms of CPU per clone QEMU here
     * (TLS 1.3 with EC keys never uses them).
     */
    static final String DH_PARAMS = """
            -----BEGIN DH PARAMETERS-----
            MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
            +8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
            87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
            YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
            7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
            ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
            -----END DH PARAMETERS-----
            """;

    private Pki() {
    }

    /** Creates the CA in {@code dir/ca} (refuses to overwrite one). */
    public static Path init(Path dir, String name) throws IOException {
        Path ca = dir.resolve("ca");
        if (Files.exists(ca.resolve("ca-key.pem"))) {
            throw new IOException("a CA already exists in " + ca + " (remove it to start over)");
        }
        Files.createDirectories(ca);
        try {
            KeyPair kp = keyPair();
            X500Name subject = new X500Name("CN=" + name + ",O=Doppel");
            Instant now = Instant.now();
            JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(subject, serial(), Date.from(now.minusSeconds(60)),
                    Date.from(now.plus(CA_LIFETIME)), subject, kp.getPublic());
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(0));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            b.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(kp.getPublic()));
            X509Certificate cert = sign(b, kp.getPrivate());
            writePem(ca.resolve("ca-cert.pem"), cert, false);
            writePem(ca.resolve("ca-key.pem"), kp, true);
            return ca;
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException("creating the CA in " + ca + ": " + e.getMessage(), e);
        }
    }

    /** Issues a certificate for {@code host} (a name or an address) into {@code dir/host}. */
    public static Path issue(Path dir, String host) throws IOException {
        if (!host.matches("[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")) {
            throw new IOException("'" + host + "' is not a host name or address");
        }
        Path ca = dir.resolve("ca");
        if (!Files.exists(ca.resolve("ca-key.pem"))) {
            throw new IOException("no CA in " + ca + ": run 'doppel pki init' first");
        }
        Path out = dir.resolve(host);
        Files.createDirectories(out);
        try {
            X509Certificate caCert = readCertificate(ca.resolve("ca-cert.pem"));
            PrivateKey caKey = readKey(ca.resolve("ca-key.pem"));
            KeyPair kp = keyPair();
            Instant now = Instant.now();
            JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(caCert, serial(), Date.from(now.minusSeconds(60)),
                    Date.from(now.plus(HOST_LIFETIME)), new X500Name("CN=" + host + ",O=Doppel"), kp.getPublic());
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            // keyEncipherment too: QEMU's tls-creds-x509 sanity check demands it of client and server certificates.
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment | KeyUsage.keyAgreement));
            b.addExtension(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}));
            boolean address = host.matches("[0-9.]+") || host.contains(":");
            b.addExtension(Extension.subjectAlternativeName, false,
                    new GeneralNames(new GeneralName(address ? GeneralName.iPAddress : GeneralName.dNSName, host)));
            b.addExtension(Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(caCert));
            X509Certificate cert = sign(b, caKey);
            Files.copy(ca.resolve("ca-cert.pem"), out.resolve("ca-cert.pem"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            for (String end : List.of("server", "client")) {
                writePem(out.resolve(end + "-cert.pem"), cert, false);
                writePem(out.resolve(end + "-key.pem"), kp, true);
            }
            Files.writeString(out.resolve("dh-params.pem"), DH_PARAMS);
            return out;
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException("issuing a certificate for " + host + ": " + e.getMessage(), e);
        }
    }

    private static KeyPair keyPair() throws Exception {
        // BouncyCastle's keys: their encodings name the curve inside the key (SEC1), as GnuTLS needs.
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC", BC);
        g.initialize(new ECGenParameterSpec("secp256r1"), new SecureRandom());
        return g.generateKeyPair();
    }

    private static BigInteger serial() {
        return new BigInteger(127, new SecureRandom());
    }

    private static X509Certificate sign(JcaX509v3CertificateBuilder b, PrivateKey key) throws Exception {
        ContentSigner signer = new JcaContentSignerBuilder(SIGNATURE).setProvider(BC).build(key);
        return new JcaX509CertificateConverter().getCertificate(b.build(signer));
    }

    private static void writePem(Path f, Object o, boolean secret) throws IOException {
        StringWriter sw = new StringWriter();
        try (JcaPEMWriter w = new JcaPEMWriter(sw)) {
            // A key pair is written in OpenSSL's traditional form ("EC PRIVATE KEY", curve and public key
            // inside): GnuTLS (QEMU) rejects the JDK's PKCS#8 encoding of an EC key ("ASN1 parser: Element
            // was not found").
            w.writeObject(o);
        }
        Files.writeString(f, sw.toString());
        if (secret) {
            Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-------"));
        }
    }

    static X509Certificate readCertificate(Path f) throws IOException {
        List<X509Certificate> all = readCertificates(f);
        if (all.isEmpty()) {
            throw new IOException(f + " holds no certificate");
        }
        return all.get(0);
    }

    static List<X509Certificate> readCertificates(Path f) throws IOException {
        List<X509Certificate> out = new ArrayList<>();
        try (Reader r = Files.newBufferedReader(f); PEMParser p = new PEMParser(r)) {
            Object o;
            while ((o = p.readObject()) != null) {
                if (o instanceof X509CertificateHolder h) {
                    out.add(new JcaX509CertificateConverter().getCertificate(h));
                }
            }
        } catch (java.security.cert.CertificateException e) {
            throw new IOException(f + ": " + e.getMessage(), e);
        }
        return out;
    }

    /**
     * The private key in {@code keyFile} as unencrypted PKCS#8 PEM ({@code PRIVATE KEY}), for readers that
     * take only that form: ZooKeeper's {@code PemReader} matches an {@code EC PRIVATE KEY} header but
     * decodes the body as PKCS#8, so the traditional files written here fail there with an invalid key
     * spec. The files on disk stay in the traditional form (GnuTLS needs it); callers keep this in memory
     * or in a private temporary file.
     */
    public static String pkcs8Pem(Path keyFile) throws IOException {
        byte[] der = readKey(keyFile).getEncoded();
        return "-----BEGIN PRIVATE KEY-----\n"
                + java.util.Base64.getMimeEncoder(64, "\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII)).encodeToString(der)
                + "\n-----END PRIVATE KEY-----\n";
    }

    static PrivateKey readKey(Path f) throws IOException {
        try (Reader r = Files.newBufferedReader(f); PEMParser p = new PEMParser(r)) {
            Object o = p.readObject();
            // BouncyCastle's provider for the conversion: the JDK's refuses the SEC1 form's algorithm
            // identifier; the key it returns encodes the named curve, which the JDK's TLS then reads.
            JcaPEMKeyConverter converter = new JcaPEMKeyConverter().setProvider(BC);
            if (o instanceof PrivateKeyInfo info) {
                return converter.getPrivateKey(info);
            }
            if (o instanceof org.bouncycastle.openssl.PEMKeyPair kp) {
                return converter.getPrivateKey(kp.getPrivateKeyInfo());
            }
            throw new IOException(f + " holds no private key");
        }
    }
}

package dev.doppel.daemon.containers;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.MissingNode;
import dev.doppel.tls.Pki;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Stream;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.net.ssl.X509TrustManager;

/**
 * A client of one Doppel daemon's API over HTTPS, written against the API contract only (JSON under
 * {@code /api/v1}, {@code Authorization: Bearer TOKEN}, server-sent events at {@code /api/v1/events}),
 * with nothing from the daemon's own classes. The daemon's certificate must chain to the installation's
 * CA and name {@code serverName} (the host's alias: the test connects through a published port on
 * localhost, so the name is checked here instead of against the URI's host). The client presents a
 * certificate of the same CA, in case the API asks for one.
 */
public final class DaemonHttp {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String serverName;
    private final URI base;
    private final String token;
    private final HttpClient http;

    /**
     * @param base       e.g. https://localhost:32771
     * @param caCert     the CA certificate (PEM)
     * @param clientDir  a host directory from {@code doppel pki issue} the client identifies with
     */
    public DaemonHttp(String serverName, URI base, Path caCert, Path clientDir, String token) throws IOException {
        this.serverName = serverName;
        this.base = base;
        this.token = token;
        this.http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .sslContext(sslContext(caCert, clientDir, serverName))
                .build();
    }

    /** One answer: status, body as text, body as JSON (a missing node when it is not JSON). */
    public record Response(int status, String body, JsonNode json) {
        public boolean ok() {
            return status / 100 == 2;
        }

        @Override
        public String toString() {
            return status + " " + body;
        }
    }

    public Response get(String path) throws IOException, InterruptedException {
        return send(request(path).GET());
    }

    public Response post(String path, Object body) throws IOException, InterruptedException {
        String json = body instanceof String s ? s : JSON.writeValueAsString(body);
        return send(request(path).header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)));
    }

    public Response delete(String path) throws IOException, InterruptedException {
        return send(request(path).DELETE());
    }

    private HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(60))
                .header("Authorization", "Bearer " + token).header("Accept", "application/json");
    }

    private Response send(HttpRequest.Builder b) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        JsonNode json;
        try {
            json = r.body().isBlank() ? MissingNode.getInstance() : JSON.readTree(r.body());
        } catch (IOException e) {
            json = MissingNode.getInstance();
        }
        return new Response(r.statusCode(), r.body(), json);
    }

    /**
     * Opens the event stream (asynchronously: a server may hold its response headers back until the
     * first event); events are collected from now on until {@link EventStream#close()}.
     */
    public EventStream events() {
        HttpRequest req = HttpRequest.newBuilder(base.resolve("/api/v1/events"))
                .header("Authorization", "Bearer " + token).header("Accept", "text/event-stream").GET().build();
        return new EventStream(serverName, http.sendAsync(req, HttpResponse.BodyHandlers.ofLines()));
    }

    /** One server-sent event: its {@code event:} type and its {@code data:} as JSON. */
    public record Event(String type, JsonNode data, long receivedNanos) {
        public String vm() {
            return data.path("vm").asText("");
        }

        @Override
        public String toString() {
            return type + " " + data;
        }
    }

    /** The events of one daemon, read by a thread of its own, kept in arrival order. */
    public static final class EventStream implements AutoCloseable {
        private final String host;
        private final CompletableFuture<HttpResponse<Stream<String>>> response;
        private final List<Event> all = new CopyOnWriteArrayList<>();
        private final BlockingQueue<Event> fresh = new LinkedBlockingQueue<>();
        private final CompletableFuture<Void> connected = new CompletableFuture<>();
        private final CompletableFuture<Void> ended = new CompletableFuture<>();
        private final List<Event> seenByAwait = new ArrayList<>();

        EventStream(String host, CompletableFuture<HttpResponse<Stream<String>>> response) {
            this.host = host;
            this.response = response;
            Thread t = new Thread(this::read, "sse-" + host);
            t.setDaemon(true);
            t.start();
        }

        /** True once the daemon answered 200 to the stream's request; false after {@code timeout}. */
        public boolean awaitConnected(Duration timeout) throws InterruptedException {
            try {
                connected.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
                return true;
            } catch (java.util.concurrent.ExecutionException e) {
                throw new AssertionError(host + ": the event stream failed: " + e.getCause().getMessage(), e.getCause());
            } catch (java.util.concurrent.TimeoutException e) {
                return false;
            }
        }

        private void read() {
            String type = "message";
            StringBuilder data = new StringBuilder();
            try {
                HttpResponse<Stream<String>> r = response.join();
                if (r.statusCode() != 200) {
                    String body = String.join("\n", r.body().limit(20).toList());
                    r.body().close();
                    throw new IllegalStateException("GET /api/v1/events answered " + r.statusCode() + " " + body);
                }
                connected.complete(null);
                var it = r.body().iterator();
                while (it.hasNext()) {
                    String line = it.next();
                    if (line.isEmpty()) {
                        if (data.length() > 0) {
                            JsonNode json;
                            try {
                                json = JSON.readTree(data.toString());
                            } catch (IOException e) {
                                json = JSON.getNodeFactory().textNode(data.toString());
                            }
                            String t = json.hasNonNull("type") && "message".equals(type) ? json.get("type").asText() : type;
                            Event e = new Event(t, json, System.nanoTime());
                            all.add(e);
                            fresh.add(e);
                        }
                        type = "message";
                        data.setLength(0);
                    } else if (line.startsWith("event:")) {
                        type = line.substring(6).strip();
                    } else if (line.startsWith("data:")) {
                        if (data.length() > 0) {
                            data.append('\n');
                        }
                        data.append(line.substring(5).stripLeading());
                    } // "id:", "retry:" and ":" comments (keep-alives) are not needed here
                }
                ended.complete(null);
            } catch (RuntimeException e) {
                Throwable cause = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
                connected.completeExceptionally(cause);
                ended.completeExceptionally(cause);
            }
        }

        /**
         * The first event (from those not yet consumed by an await) that matches, within {@code timeout};
         * an AssertionError listing every event of this stream otherwise.
         */
        public Event await(String what, Duration timeout, Predicate<Event> match) throws InterruptedException {
            long end = System.nanoTime() + timeout.toNanos();
            for (Event e : seenByAwait) {
                if (match.test(e)) {
                    seenByAwait.remove(e);
                    return e;
                }
            }
            while (true) {
                long left = end - System.nanoTime();
                Event e = left > 0 ? fresh.poll(left, TimeUnit.NANOSECONDS) : null;
                if (e == null) {
                    throw new AssertionError(host + ": no " + what + " event within " + timeout.toSeconds() + " s"
                            + endedHow() + "; events seen:\n  " + describe());
                }
                if (match.test(e)) {
                    return e;
                }
                seenByAwait.add(e);
            }
        }

        private String endedHow() {
            if (!ended.isDone()) {
                return connected.isDone() ? "" : " (the stream's response never came)";
            }
            try {
                ended.join();
                return " (the event stream ended)";
            } catch (RuntimeException e) {
                return " (the event stream failed: " + (e.getCause() != null ? e.getCause() : e) + ")";
            }
        }

        public List<Event> all() {
            return List.copyOf(all);
        }

        public String describe() {
            List<Event> list = all();
            List<Event> last = list.subList(Math.max(0, list.size() - 40), list.size());
            return (list.size() > last.size() ? "(" + (list.size() - last.size()) + " earlier ones left out)\n  " : "")
                    + String.join("\n  ", last.stream().map(Event::toString).toList());
        }

        @Override
        public void close() {
            HttpResponse<Stream<String>> r = response.isDone() && !response.isCompletedExceptionally() ? response.join() : null;
            response.cancel(true);
            if (r != null) {
                r.body().close();
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // TLS: trust only the installation's CA; the server must be named serverName.

    private static SSLContext sslContext(Path caCert, Path clientDir, String serverName) throws IOException {
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            int i = 0;
            for (Certificate c : readCertificates(cf, caCert)) {
                trust.setCertificateEntry("ca" + i++, c);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            X509TrustManager pkix = null;
            for (TrustManager tm : tmf.getTrustManagers()) {
                if (tm instanceof X509TrustManager x) {
                    pkix = x;
                }
            }
            byte[] der = Base64.getMimeDecoder().decode(Pki.pkcs8Pem(clientDir.resolve("client-key.pem"))
                    .replaceAll("-----[A-Z ]+-----", "").strip());
            PrivateKey key = KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(der));
            KeyStore ks = KeyStore.getInstance("PKCS12");
            ks.load(null, null);
            ks.setKeyEntry("client", key, new char[0],
                    readCertificates(cf, clientDir.resolve("client-cert.pem")).toArray(new Certificate[0]));
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, new char[0]);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kmf.getKeyManagers(), new TrustManager[] {new NamedServerTrust(pkix, serverName)}, null);
            return ctx;
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException("TLS client for " + serverName + ": " + e.getMessage(), e);
        }
    }

    private static Collection<? extends Certificate> readCertificates(CertificateFactory cf, Path pem) throws Exception {
        try (InputStream in = new ByteArrayInputStream(Files.readAllBytes(pem))) {
            return cf.generateCertificates(in);
        }
    }

    /**
     * The CA's chain check (the two-argument PKIX check does no host name check), then the leaf's
     * subject alternative names must hold {@code name}. Extended, so that JSSE does not add its own
     * check against the URI's host (localhost).
     */
    private static final class NamedServerTrust extends X509ExtendedTrustManager {
        private final X509TrustManager pkix;
        private final String name;

        NamedServerTrust(X509TrustManager pkix, String name) {
            this.pkix = pkix;
            this.name = name;
        }

        private void checkServer(X509Certificate[] chain, String authType) throws CertificateException {
            pkix.checkServerTrusted(chain, authType);
            Collection<List<?>> sans = chain[0].getSubjectAlternativeNames();
            if (sans != null) {
                for (List<?> san : sans) {
                    if (san.size() >= 2 && name.equalsIgnoreCase(String.valueOf(san.get(1)))) {
                        return;
                    }
                }
            }
            throw new CertificateException("the daemon's certificate does not name " + name + ": "
                    + chain[0].getSubjectX500Principal() + " " + sans);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            checkServer(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
            checkServer(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
            checkServer(chain, authType);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            pkix.checkClientTrusted(chain, authType);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
            pkix.checkClientTrusted(chain, authType);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
            pkix.checkClientTrusted(chain, authType);
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return pkix.getAcceptedIssuers();
        }
    }
}

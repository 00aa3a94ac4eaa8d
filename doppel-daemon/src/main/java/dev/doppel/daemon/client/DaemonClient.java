package dev.doppel.daemon.client;

import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.RequestOptions;
import io.vertx.core.net.SocketAddress;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * The local client of a daemon's API, over its unix socket (the CLI's way in; the JDK's HTTP client
 * speaks no unix sockets, Vert.x's does).
 */
public final class DaemonClient implements AutoCloseable {
    private final Vertx vertx = Vertx.vertx();
    private final HttpClient http = vertx.createHttpClient();
    private final Path socket;

    /** An answer: status and body text. */
    public record Answer(int status, String body) {
        public boolean ok() {
            return status / 100 == 2;
        }
    }

    public DaemonClient(Path socket) {
        this.socket = socket;
    }

    /** Whether a daemon answers on the socket. */
    public static boolean answers(Path socket) {
        if (!Files.exists(socket)) {
            return false;
        }
        try (DaemonClient c = new DaemonClient(socket)) {
            return c.call("GET", "/api/v1/host", null, 5).ok();
        } catch (IOException e) {
            return false;
        }
    }

    /** One request; {@code timeoutS} bounds the whole exchange (a protection or a fork may take minutes). */
    public Answer call(String method, String path, String jsonBody, long timeoutS) throws IOException {
        RequestOptions o = new RequestOptions().setServer(SocketAddress.domainSocketAddress(socket.toString()))
                .setMethod(HttpMethod.valueOf(method)).setURI(path).setHost("localhost").setIdleTimeout(timeoutS * 1000);
        try {
            return http.request(o).compose(req -> {
                if (jsonBody != null) {
                    req.putHeader("content-type", "application/json");
                    return req.send(Buffer.buffer(jsonBody));
                }
                return req.send();
            }).compose(res -> res.body().map(b -> new Answer(res.statusCode(), b.toString()))).await(timeoutS, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IOException("daemon at " + socket + ": " + method + " " + path + " failed: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            vertx.close().await(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            // the process ends anyway
        }
    }
}

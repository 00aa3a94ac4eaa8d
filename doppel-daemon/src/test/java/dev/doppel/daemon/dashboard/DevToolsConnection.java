package dev.doppel.daemon.dashboard;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * One WebSocket to a Chrome DevTools Protocol endpoint, over the JDK's own client: commands go out
 * with an id and their answers are matched to them by that id; messages without an id are events,
 * handed to the listeners (on the WebSocket's thread: listeners only record). Flat sessions: a command
 * for a page names the page's session id.
 */
final class DevToolsConnection implements AutoCloseable {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final URI uri;
    private final AtomicLong ids = new AtomicLong();
    private final Map<Long, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
    private final List<Consumer<JsonNode>> listeners = new CopyOnWriteArrayList<>();
    private WebSocket ws;
    private volatile String closedBecause;

    private DevToolsConnection(URI uri) {
        this.uri = uri;
    }

    /** Connects to {@code ws://...} (the browser endpoint from DevToolsActivePort). */
    static DevToolsConnection open(URI uri, Duration timeout) throws IOException {
        DevToolsConnection c = new DevToolsConnection(uri);
        try {
            c.ws = HttpClient.newHttpClient().newWebSocketBuilder().connectTimeout(timeout).buildAsync(uri, c.new Reader())
                    .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("connecting to DevTools at " + uri + ": interrupted", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException("connecting to DevTools at " + uri + ": " + e, e);
        }
        return c;
    }

    /** Events (messages without an id) go to {@code listener} as the whole message: method, params, sessionId. */
    void onEvent(Consumer<JsonNode> listener) {
        listeners.add(listener);
    }

    /**
     * Sends one command and waits for its answer.
     *
     * @param sessionId the page's session (Target.attachToTarget with flatten), or null for the browser
     * @return the answer's {@code result}
     * @throws IOException the browser answered with an error, did not answer in time, or the connection closed
     */
    JsonNode call(String sessionId, String method, Map<String, ?> params, Duration timeout) throws IOException {
        long id = ids.incrementAndGet();
        ObjectNode msg = MAPPER.createObjectNode().put("id", id).put("method", method);
        msg.set("params", MAPPER.valueToTree(params == null ? Map.of() : params));
        if (sessionId != null) {
            msg.put("sessionId", sessionId);
        }
        CompletableFuture<JsonNode> answer = new CompletableFuture<>();
        pending.put(id, answer);
        try {
            if (closedBecause != null) {
                throw new IOException("DevTools connection closed: " + closedBecause);
            }
            synchronized (this) {
                // One message at a time: the JDK's WebSocket refuses a send while the previous one is under way.
                ws.sendText(MAPPER.writeValueAsString(msg), true).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            }
            JsonNode reply = answer.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (reply.has("error")) {
                throw new IOException(method + " failed: " + reply.get("error").path("message").asText() + " "
                        + reply.get("error").path("data").asText(""));
            }
            return reply.path("result");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(method + ": interrupted", e);
        } catch (ExecutionException e) {
            throw new IOException(method + ": " + e.getCause().getMessage(), e.getCause());
        } catch (TimeoutException e) {
            throw new IOException(method + ": no answer from the browser within " + timeout.toMillis() + " ms");
        } finally {
            pending.remove(id);
        }
    }

    @Override
    public void close() {
        if (ws != null && !ws.isOutputClosed()) {
            try {
                ws.sendClose(WebSocket.NORMAL_CLOSURE, "").get(2, TimeUnit.SECONDS);
            } catch (Exception e) {
                // the browser is killed next anyway
            }
            ws.abort();
        }
        fail("closed by the test");
    }

    private void fail(String why) {
        closedBecause = why;
        pending.values().forEach(f -> f.completeExceptionally(new IOException("DevTools connection to " + uri + " closed: " + why)));
    }

    /** Assembles text frames into messages and routes them: answers by id, the rest to the listeners. */
    private final class Reader implements WebSocket.Listener {
        private final StringBuilder partial = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket socket, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                String text = partial.toString();
                partial.setLength(0);
                try {
                    JsonNode msg = MAPPER.readTree(text);
                    if (msg.has("id")) {
                        CompletableFuture<JsonNode> f = pending.get(msg.get("id").asLong());
                        if (f != null) {
                            f.complete(msg);
                        }
                    } else {
                        listeners.forEach(l -> l.accept(msg));
                    }
                } catch (IOException | RuntimeException e) {
                    // an unreadable message answers nobody; the caller's timeout says so
                }
            }
            socket.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket socket, int status, String reason) {
            fail("status " + status + " " + reason);
            return null;
        }

        @Override
        public void onError(WebSocket socket, Throwable error) {
            fail(error.toString());
        }
    }
}

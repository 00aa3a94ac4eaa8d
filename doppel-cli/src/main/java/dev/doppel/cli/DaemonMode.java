package dev.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.daemon.DaemonConfig;
import dev.doppel.daemon.client.DaemonClient;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The CLI as a client of this host's daemon: when a daemon answers on its socket
 * ({@code DOPPEL_DAEMON_SOCKET}, default {@link DaemonConfig#DEFAULT_SOCKET}), {@code vm}, {@code protect},
 * {@code unprotect}, {@code status} and {@code backup serve} ask it to act (it owns the VMs); without
 * one they act themselves, as before. {@code DOPPEL_NO_DAEMON=1} forces the direct way.
 */
final class DaemonMode implements AutoCloseable {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final DaemonClient client;
    private final Path socket;

    private DaemonMode(DaemonClient client, Path socket) {
        this.client = client;
        this.socket = socket;
    }

    /** The daemon to ask, or null when none answers (or the direct way is forced). */
    static DaemonMode find() {
        if (System.getenv("DOPPEL_NO_DAEMON") != null) {
            return null;
        }
        String env = System.getenv("DOPPEL_DAEMON_SOCKET");
        Path sock = env != null ? Path.of(env) : DaemonConfig.DEFAULT_SOCKET;
        return DaemonClient.answers(sock) ? new DaemonMode(new DaemonClient(sock), sock) : null;
    }

    Path socket() {
        return socket;
    }

    /** One call; an error answer becomes an exception with the daemon's message. */
    JsonNode call(String method, String path, Object body) throws IOException {
        DaemonClient.Answer a = client.call(method, path, body == null ? null : MAPPER.writeValueAsString(body), 1800);
        JsonNode json = a.body().isBlank() ? MAPPER.nullNode() : MAPPER.readTree(a.body());
        if (!a.ok()) {
            throw new IllegalStateException("doppeld: " + json.path("error").asText(a.body().strip()));
        }
        return json;
    }

    @Override
    public void close() {
        client.close();
    }
}

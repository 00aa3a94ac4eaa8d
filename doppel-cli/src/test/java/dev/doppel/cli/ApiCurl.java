package dev.doppel.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.hostnet.HostCommand;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** The daemon's API through {@code curl}, the stock client the daemon tests judge it by. */
final class ApiCurl {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private ApiCurl() {
    }

    /** curl's answer: HTTP status and body. */
    record Curl(int status, String body) {
        JsonNode json() throws IOException {
            return MAPPER.readTree(body);
        }
    }

    /** A request over the daemon's unix socket ({@code body}: JSON, or null for none). */
    static Curl local(String sock, String method, String path, String body) {
        List<String> args = new ArrayList<>(List.of("--unix-socket", sock, "-X", method));
        if (body != null) {
            args.addAll(List.of("-H", "content-type: application/json", "--data-binary", body));
        }
        args.add("http://doppel" + path);
        return curl(args.toArray(String[]::new));
    }

    /** Runs curl; the last line of its output is the HTTP status (-w). */
    static Curl curl(String... args) {
        List<String> argv = new ArrayList<>(List.of("curl", "-s", "--max-time", "600", "-w", "\n%{http_code}"));
        argv.addAll(List.of(args));
        HostCommand.Result r = HostCommand.tryRun(argv);
        String out = r.stdout();
        int nl = out.lastIndexOf('\n');
        int status = Integer.parseInt(out.substring(nl + 1).strip());
        return new Curl(status, out.substring(0, Math.max(0, nl)));
    }

    /** The answer is an error with that status whose message mentions {@code text}. */
    static void assertError(Curl c, int status, String text) throws IOException {
        assertEquals(status, c.status(), c.body());
        assertTrue(c.json().path("error").asText().contains(text), "error should mention '" + text + "': " + c.body());
    }
}

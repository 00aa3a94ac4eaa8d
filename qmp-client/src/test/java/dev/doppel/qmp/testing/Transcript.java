package dev.doppel.qmp.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * A recorded QMP session (see {@code src/test/resources/transcripts/README.md}): JSON Lines, one entry per
 * line, {@code {"dir": "meta"|"send"|"recv"|"eof", "raw": "<exact bytes>", "read": n, "fds": n}}. {@code raw}
 * holds the exact wire bytes (CRLF included) as a JSON string; {@code read} numbers the recv() call that
 * delivered a received message, so messages sharing a number arrived in the same read.
 */
public final class Transcript {

    private static final ObjectMapper M = new ObjectMapper();
    private static final Pattern RECORDED_ID = Pattern.compile("\"id\": \"(rec-\\d+)\"");

    /** One line of the transcript. */
    public record Entry(String dir, String raw, int read, int fds, JsonNode json) {
        public boolean isRecv() {
            return "recv".equals(dir);
        }

        public boolean isSend() {
            return "send".equals(dir);
        }

        /** The parsed message (recv/send), the meta object, or null for bytes that are not JSON (garbage sent). */
        public JsonNode message() {
            try {
                return raw == null ? json : M.readTree(raw);
            } catch (IOException e) {
                return null;
            }
        }

        public boolean isEvent() {
            return isRecv() && message() != null && message().has("event");
        }
    }

    /** A command sent and everything received after it, up to the next command. */
    public record Exchange(Entry request, List<Entry> responses) {

        public JsonNode requestJson() {
            return request.message();
        }

        /** {@code execute} or {@code exec-oob} value. */
        public String command() {
            JsonNode r = requestJson();
            if (r == null) {
                return null;
            }
            return r.has("execute") ? r.get("execute").asText() : r.path("exec-oob").asText(null);
        }

        public String recordedId() {
            JsonNode r = requestJson();
            return r == null ? null : r.path("id").asText(null);
        }

        /** The received bytes after this request, with the recorded id replaced by {@code newId} (any JSON value). */
        public String responseFor(JsonNode newId) {
            StringBuilder b = new StringBuilder();
            for (Entry e : responses) {
                b.append(e.raw());
            }
            return withId(b.toString(), recordedId(), newId);
        }

        /** Only the reply line (the one carrying the recorded id), id replaced. */
        public String replyFor(JsonNode newId) {
            for (Entry e : responses) {
                if (e.raw().contains("\"id\": \"" + recordedId() + "\"")) {
                    return withId(e.raw(), recordedId(), newId);
                }
            }
            throw new IllegalStateException("no reply recorded for " + recordedId());
        }

        /** The event lines received after this request. */
        public List<Entry> events() {
            return responses.stream().filter(Entry::isEvent).toList();
        }
    }

    private final String name;
    private final List<Entry> entries;

    private Transcript(String name, List<Entry> entries) {
        this.name = name;
        this.entries = Collections.unmodifiableList(entries);
    }

    /** Loads {@code transcripts/<name>} from the test classpath ({@code .gz} is gunzipped). */
    public static Transcript load(String name) {
        String path = "transcripts/" + name;
        try (InputStream in = Transcript.class.getClassLoader().getResourceAsStream(path)) {
            if (in == null) {
                throw new IllegalArgumentException("no transcript resource " + path);
            }
            byte[] bytes = in.readAllBytes();
            if (name.endsWith(".gz")) {
                bytes = new GZIPInputStream(new ByteArrayInputStream(bytes)).readAllBytes();
            }
            return parse(name, new String(bytes, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Transcript parse(String name, String text) throws IOException {
        List<Entry> list = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode j = M.readTree(line);
            list.add(new Entry(j.path("dir").asText(), j.hasNonNull("raw") ? j.get("raw").asText() : null,
                    j.path("read").asInt(-1), j.path("fds").asInt(0), j));
        }
        return new Transcript(name, list);
    }

    public String name() {
        return name;
    }

    public List<Entry> entries() {
        return entries;
    }

    public JsonNode meta() {
        return entries.stream().filter(e -> "meta".equals(e.dir())).findFirst().map(Entry::json).orElse(null);
    }

    /** Received bytes before the first command: the greeting. */
    public String greeting() {
        StringBuilder b = new StringBuilder();
        for (Entry e : entries) {
            if (e.isSend()) {
                break;
            }
            if (e.isRecv()) {
                b.append(e.raw());
            }
        }
        return b.toString();
    }

    public List<Exchange> exchanges() {
        List<Exchange> out = new ArrayList<>();
        Entry req = null;
        List<Entry> resp = new ArrayList<>();
        for (Entry e : entries) {
            if (e.isSend()) {
                if (req != null) {
                    out.add(new Exchange(req, List.copyOf(resp)));
                }
                req = e;
                resp = new ArrayList<>();
            } else if (e.isRecv() && req != null) {
                resp.add(e);
            }
        }
        if (req != null) {
            out.add(new Exchange(req, List.copyOf(resp)));
        }
        return out;
    }

    /** The n-th (0-based) exchange for a command. */
    public Exchange exchange(String command, int nth) {
        int i = 0;
        for (Exchange x : exchanges()) {
            if (command.equals(x.command()) && i++ == nth) {
                return x;
            }
        }
        throw new IllegalArgumentException(name + " has no exchange #" + nth + " for " + command);
    }

    public Exchange exchange(String command) {
        return exchange(command, 0);
    }

    /** All received entries in order. */
    public List<Entry> received() {
        return entries.stream().filter(Entry::isRecv).toList();
    }

    /** True if the recording ended with the peer closing the connection. */
    public boolean endsWithEof() {
        return !entries.isEmpty() && "eof".equals(entries.get(entries.size() - 1).dir());
    }

    /** Replaces the recorded id literal {@code "rec-N"} by {@code newId} in raw reply bytes. */
    public static String withId(String raw, String recordedId, JsonNode newId) {
        Matcher m = RECORDED_ID.matcher(raw);
        StringBuilder b = new StringBuilder();
        while (m.find()) {
            String id = m.group(1);
            // QEMU echoes the id as the JSON value it was sent as, so a number stays a number
            String json = id.equals(recordedId) ? newId.toString() : "\"" + id + "\"";
            m.appendReplacement(b, Matcher.quoteReplacement("\"id\": " + json));
        }
        m.appendTail(b);
        return b.toString();
    }

    @Override
    public String toString() {
        return "Transcript[" + name + ", " + entries.size() + " entries]";
    }
}

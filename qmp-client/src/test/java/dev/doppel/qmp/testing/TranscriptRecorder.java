package dev.doppel.qmp.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.doppel.qmp.transport.UnixSocketTransport;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.zip.GZIPOutputStream;

/**
 * Records one raw QMP session with a real QEMU: it talks through {@link UnixSocketTransport} directly (not
 * through QmpClient, so nothing is normalised) and writes every byte sent and received, in order, as a
 * {@link Transcript}. Commands get ids {@code rec-1}, {@code rec-2}, ... so replays can substitute their own.
 */
public final class TranscriptRecorder implements AutoCloseable {

    private static final ObjectMapper M = new ObjectMapper();

    private final UnixSocketTransport transport;
    private final List<ObjectNode> entries = new ArrayList<>();
    private final List<JsonNode> messages = new ArrayList<>();
    private final Thread reader;
    private boolean eof;
    private int nextId = 1;

    private TranscriptRecorder(UnixSocketTransport transport, ObjectNode meta) {
        this.transport = transport;
        meta.put("dir", "meta");
        entries.add(meta);
        reader = new Thread(this::readLoop, "transcript-recorder");
        reader.setDaemon(true);
        reader.start();
    }

    /** Connects (retrying up to 10 s while QEMU starts or re-listens) and starts capturing. */
    public static TranscriptRecorder open(Path socket, ObjectNode meta) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (true) {
            try {
                return new TranscriptRecorder(UnixSocketTransport.connect(socket), meta);
            } catch (IOException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(20);
            }
        }
    }

    private void readLoop() {
        byte[] buf = new byte[1 << 20];
        ByteArrayOutputStream partial = new ByteArrayOutputStream();
        int readNo = 0;
        try {
            while (true) {
                int n = transport.read(buf);
                if (n < 0) {
                    synchronized (this) {
                        if (partial.size() > 0) {
                            ObjectNode e = M.createObjectNode().put("dir", "recv-partial")
                                    .put("raw", partial.toString(StandardCharsets.UTF_8));
                            entries.add(e);
                        }
                        entries.add(M.createObjectNode().put("dir", "eof"));
                        eof = true;
                        notifyAll();
                    }
                    return;
                }
                readNo++;
                synchronized (this) {
                    for (int i = 0; i < n; i++) {
                        partial.write(buf[i]);
                        if (buf[i] == '\n') {
                            String raw = partial.toString(StandardCharsets.UTF_8);
                            partial.reset();
                            entries.add(M.createObjectNode().put("dir", "recv").put("raw", raw).put("read", readNo));
                            messages.add(M.readTree(raw));
                        }
                    }
                    notifyAll();
                }
            }
        } catch (IOException e) {
            synchronized (this) {
                entries.add(M.createObjectNode().put("dir", "error").put("text", e.toString()));
                eof = true;
                notifyAll();
            }
        }
    }

    /** The next command id this recorder will use. */
    public synchronized String nextId() {
        return "rec-" + nextId;
    }

    /** Builds one command line: {@code {"execute"|"exec-oob": cmd, "arguments": args, "id": "rec-N"}\n}. */
    public synchronized String commandLine(String command, JsonNode args, boolean oob) {
        ObjectNode m = M.createObjectNode();
        m.put(oob ? "exec-oob" : "execute", command);
        if (args != null) {
            m.set("arguments", args);
        }
        m.put("id", "rec-" + nextId++);
        return m.toString() + "\n";
    }

    /** Sends a command and waits for its reply (events arriving meanwhile are recorded too). */
    public JsonNode call(String command, JsonNode args) throws IOException, InterruptedException {
        return call(command, args, false, null);
    }

    public JsonNode call(String command, JsonNode args, boolean oob, int[] fds) throws IOException, InterruptedException {
        String line = commandLine(command, args, oob);
        String id = M.readTree(line).get("id").asText();
        sendRaw(line, fds);
        return awaitReply(id, Duration.ofSeconds(10));
    }

    /** Sends raw bytes (one or more command lines, or garbage) in a single write, recording each line. */
    public void sendRaw(String raw, int[] fds) throws IOException {
        synchronized (this) {
            boolean first = true;
            for (String part : raw.split("(?<=\n)")) {
                ObjectNode e = M.createObjectNode().put("dir", "send").put("raw", part);
                if (first && fds != null) {
                    e.put("fds", fds.length);
                }
                first = false;
                entries.add(e);
            }
        }
        transport.send(raw.getBytes(StandardCharsets.UTF_8), fds);
    }

    public JsonNode awaitReply(String id, Duration timeout) throws InterruptedException {
        return await(m -> id.equals(m.path("id").asText(null)) && (m.has("return") || m.has("error")), 0, timeout,
                "reply " + id);
    }

    /** Index for {@link #awaitEvent}: only messages received after this point count. */
    public synchronized int mark() {
        return messages.size();
    }

    public JsonNode awaitEvent(String name, int mark, Duration timeout) throws InterruptedException {
        return await(m -> name.equals(m.path("event").asText(null)), mark, timeout, "event " + name);
    }

    /** Waits for a reply that carries no id (QEMU's answer to unparseable input). */
    public JsonNode awaitIdlessError(int mark, Duration timeout) throws InterruptedException {
        return await(m -> m.has("error") && !m.has("id"), mark, timeout, "error without id");
    }

    /** Waits for any message matching {@code p} received at or after index {@code from}. */
    public JsonNode await(Predicate<JsonNode> p, int from) throws InterruptedException {
        return await(p, from, Duration.ofSeconds(10), "matching message");
    }

    /** Waits for the first message matching {@code p}. */
    public JsonNode await(Predicate<JsonNode> p) throws InterruptedException {
        return await(p, 0);
    }

    private synchronized JsonNode await(Predicate<JsonNode> p, int from, Duration timeout, String what)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            for (int i = from; i < messages.size(); i++) {
                if (p.test(messages.get(i))) {
                    return messages.get(i);
                }
            }
            long left = deadline - System.nanoTime();
            if (eof || left <= 0) {
                throw new IllegalStateException("recorder: no " + what + (eof ? " before EOF" : " in time"));
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }

    /** Waits until nothing has arrived for {@code quiet} (to capture trailing events). */
    public void settle(Duration quiet) throws InterruptedException {
        while (true) {
            int before;
            synchronized (this) {
                before = entries.size();
            }
            Thread.sleep(quiet.toMillis());
            synchronized (this) {
                if (entries.size() == before) {
                    return;
                }
            }
        }
    }

    public synchronized void awaitEof(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!eof) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new IllegalStateException("recorder: no EOF in time");
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }

    /** Writes the transcript as JSON Lines; gzipped when it exceeds 1 MB. Returns the file written. */
    public synchronized Path write(Path dir, String baseName) throws IOException {
        StringBuilder b = new StringBuilder();
        for (ObjectNode e : entries) {
            b.append(M.writeValueAsString(e)).append('\n');
        }
        byte[] bytes = b.toString().getBytes(StandardCharsets.UTF_8);
        Files.createDirectories(dir);
        if (bytes.length > 1_000_000) {
            Path f = dir.resolve(baseName + ".jsonl.gz");
            try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(f))) {
                out.write(bytes);
            }
            return f;
        }
        Path f = dir.resolve(baseName + ".jsonl");
        Files.write(f, bytes);
        return f;
    }

    @Override
    public void close() {
        transport.close();
        try {
            reader.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

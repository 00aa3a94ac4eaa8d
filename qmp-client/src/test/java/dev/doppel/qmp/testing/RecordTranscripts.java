package dev.doppel.qmp.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.jna.Memory;
import com.sun.jna.NativeLong;
import dev.doppel.qmp.FileDescriptors;
import dev.doppel.qmp.transport.Posix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Re-records {@code src/test/resources/transcripts/*.jsonl} from a real QEMU. Not part of the normal test run:
 * <pre>
 *   cd /work/main && mvn -o -pl qmp-client test -Dtest=RecordTranscripts -Ddoppel.test.groups=record \
 *       -Ddoppel.test.excludedGroups= -Dsurefire.failIfNoSpecifiedTests=false
 * </pre>
 * Sessions A: one QEMU, one connection per file, in this order; B: a second QEMU for the migration.
 */
@org.junit.jupiter.api.Tag("record")   // a tool, not a test: the default run excludes the "record" group (root pom)
class RecordTranscripts {

    private static final ObjectMapper M = new ObjectMapper();
    private static final Duration SETTLE = Duration.ofMillis(150);
    private static final Duration T = Duration.ofSeconds(10);

    @TempDir
    Path tmp;

    private Path outDir() {
        String dir = System.getProperty("doppel.record.dir");
        if (dir != null) {
            return Paths.get(dir);
        }
        return Paths.get(System.getProperty("basedir", ".")).resolve("src/test/resources/transcripts");
    }

    private ObjectNode meta(QemuProcess q, String file, String description) throws IOException, InterruptedException {
        Process v = new ProcessBuilder(QemuProcess.BINARY, "--version").redirectErrorStream(true).start();
        String version = new String(v.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().findFirst().orElse("?");
        v.waitFor();
        ObjectNode m = M.createObjectNode();
        m.put("file", file);
        m.put("description", description);
        m.put("qemu", version);
        var cmd = m.putArray("cmdline");
        for (String a : q.commandLine()) {
            cmd.add(a.replace(tmp.toString(), "$TMP"));
        }
        m.put("recorded", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        m.put("host", System.getProperty("os.name") + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch"));
        m.put("recorder", "dev.doppel.qmp.testing.RecordTranscripts / TranscriptRecorder");
        return m;
    }

    private static ObjectNode obj() {
        return M.createObjectNode();
    }

    private static ObjectNode oobArgs() {
        ObjectNode a = obj();
        a.putArray("enable").add("oob");
        return a;
    }

    private static void handshake(TranscriptRecorder r, boolean oob) throws Exception {
        r.await(m -> m.has("QMP"));
        JsonNode reply = r.call("qmp_capabilities", oob ? oobArgs() : null);
        assertTrue(reply.has("return"), reply.toString());
    }

    @Test
    void record() throws Exception {
        Path out = outDir();
        try (QemuProcess a = QemuProcess.start(tmp.resolve("a"))) {
            Path sock = a.qmpSocket();

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "handshake-oob.jsonl",
                    "greeting, qmp_capabilities with enable:[oob], query-status"))) {
                handshake(r, true);
                r.call("query-status", null);
                r.settle(SETTLE);
                r.write(out, "handshake-oob");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "handshake-plain.jsonl",
                    "greeting, qmp_capabilities without arguments (no oob), query-status, exec-oob rejected"))) {
                handshake(r, false);
                r.call("query-status", null);
                r.call("query-yank", null, true, null);
                r.settle(SETTLE);
                r.write(out, "handshake-plain");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "status-stop-cont.jsonl",
                    "query-status in prelaunch, cont (RESUME), query-status, stop (STOP), query-status, cont, stop"))) {
                handshake(r, true);
                r.call("query-status", null);
                r.call("cont", null);
                r.settle(SETTLE);
                r.call("query-status", null);
                r.call("stop", null);
                r.settle(SETTLE);
                r.call("query-status", null);
                r.call("cont", null);
                r.settle(SETTLE);
                r.call("stop", null);
                r.settle(SETTLE);
                r.write(out, "status-stop-cont");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "query-version.jsonl",
                    "query-version, query-commands"))) {
                handshake(r, true);
                r.call("query-version", null);
                r.call("query-commands", null);
                r.settle(SETTLE);
                r.write(out, "query-version");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "query-qmp-schema.jsonl",
                    "query-qmp-schema (the full introspected schema in one ~236 KB line)"))) {
                handshake(r, true);
                r.call("query-qmp-schema", null);
                r.settle(SETTLE);
                r.write(out, "query-qmp-schema");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "errors.jsonl",
                    "error replies: unknown command, unexpected/missing/mistyped parameter, unknown node, "
                            + "exec-oob of a non-oob command, unparseable input (error without id), input lacking execute"))) {
                handshake(r, true);
                r.call("no-such-command", null);
                r.call("query-status", obj().put("x", 1));
                r.call("qom-get", obj().put("path", "/machine"));
                r.call("qom-list", obj().put("path", 1));
                r.call("blockdev-del", obj().put("node-name", "no-such-node"));
                r.call("query-status", null, true, null);
                int mark = r.mark();
                r.sendRaw("garbage\n", null);
                r.awaitIdlessError(mark, T);
                String id = r.nextId();
                r.commandLine("unused", null, false); // consume the id
                r.sendRaw("{\"id\": \"" + id + "\"}\n", null);
                r.awaitReply(id, T);
                r.call("query-status", null);
                r.settle(SETTLE);
                r.write(out, "errors");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "oob.jsonl",
                    "exec-oob: query-yank, yank with no instances, migrate-recover and migrate-pause (both refused: no postcopy)"))) {
                handshake(r, true);
                r.call("query-yank", null, true, null);
                ObjectNode yank = obj();
                yank.putArray("instances");
                r.call("yank", yank, true, null);
                r.call("migrate-recover", obj().put("uri", "tcp:127.0.0.1:1"), true, null);
                r.call("migrate-pause", null, true, null);
                r.settle(SETTLE);
                r.write(out, "oob");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "interleaved.jsonl",
                    "nine commands (in-band and one exec-oob) written in ONE write; replies and STOP/RESUME events "
                            + "interleave, several messages per read; then system_reset with its RESET event"))) {
                handshake(r, true);
                StringBuilder b = new StringBuilder();
                b.append(r.commandLine("cont", null, false));
                b.append(r.commandLine("query-status", null, false));
                b.append(r.commandLine("stop", null, false));
                b.append(r.commandLine("query-yank", null, true));
                b.append(r.commandLine("query-status", null, false));
                b.append(r.commandLine("cont", null, false));
                b.append(r.commandLine("query-status", null, false));
                b.append(r.commandLine("stop", null, false));
                String last = r.nextId();
                b.append(r.commandLine("query-status", null, false));
                r.sendRaw(b.toString(), null);
                r.awaitReply(last, T);
                r.settle(SETTLE);
                r.call("system_reset", null);
                r.settle(SETTLE);
                r.write(out, "interleaved");
            }

            Path data = tmp.resolve("disk.img");
            byte[] content = new byte[64 * 1024];
            byte[] text = "doppel fd-passing test file\n".getBytes(StandardCharsets.UTF_8);
            System.arraycopy(text, 0, content, 0, text.length);
            Files.write(data, content);
            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "fds.jsonl",
                    "getfd fd0 with a real read-only fd (SCM_RIGHTS), add-fd into fdset 1, query-fdsets, blockdev-add "
                            + "file node on /dev/fdset/1 read-only, query-named-block-nodes, blockdev-del, remove-fd, "
                            + "closefd fd0, closefd fd0 again (error)"))) {
                handshake(r, true);
                int fd0 = FileDescriptors.openReadOnly(data);
                int fd1 = FileDescriptors.openReadOnly(data);
                try {
                    r.call("getfd", obj().put("fdname", "fd0"), false, new int[]{fd0});
                    r.call("add-fd", obj().put("fdset-id", 1).put("opaque", "doppel-test"), false, new int[]{fd1});
                    r.call("query-fdsets", null);
                    JsonNode add = r.call("blockdev-add", obj().put("driver", "file").put("node-name", "fdnode")
                            .put("filename", "/dev/fdset/1").put("read-only", true));
                    assertTrue(add.has("return"), add.toString());
                    r.call("query-named-block-nodes", obj().put("flat", true));
                    r.call("blockdev-del", obj().put("node-name", "fdnode"));
                    r.call("remove-fd", obj().put("fdset-id", 1));
                    r.call("closefd", obj().put("fdname", "fd0"));
                    r.call("closefd", obj().put("fdname", "fd0"));
                    r.settle(SETTLE);
                } finally {
                    FileDescriptors.close(fd0);
                    FileDescriptors.close(fd1);
                }
                r.write(out, "fds");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "qom-misc.jsonl",
                    "qom-list, qom-get, object-add iothread, qom-set/qom-get, object-del, human-monitor-command, "
                            + "query-block-jobs, query-named-block-nodes, x-colo-lost-heartbeat (error), pmemsave, "
                            + "query-migrate (none yet), query-migrate-capabilities, system_reset (RESET)"))) {
                handshake(r, true);
                r.call("qom-list", obj().put("path", "/machine/peripheral-anon"));
                r.call("qom-get", obj().put("path", "/machine").put("property", "type"));
                r.call("object-add", obj().put("qom-type", "iothread").put("id", "io0"));
                r.call("qom-get", obj().put("path", "/objects/io0").put("property", "poll-max-ns"));
                r.call("qom-set", obj().put("path", "/objects/io0").put("property", "poll-max-ns").put("value", 1000));
                r.call("qom-get", obj().put("path", "/objects/io0").put("property", "poll-max-ns"));
                r.call("object-del", obj().put("id", "io0"));
                r.call("human-monitor-command", obj().put("command-line", "info status"));
                r.call("query-block-jobs", null);
                r.call("query-named-block-nodes", null);
                r.call("x-colo-lost-heartbeat", null);
                r.call("pmemsave", obj().put("val", 0).put("size", 4096).put("filename", tmp.resolve("mem.bin").toString()));
                r.call("query-migrate", null);
                r.call("query-migrate-capabilities", null);
                r.call("system_reset", null);
                r.settle(SETTLE);
                r.write(out, "qom-misc");
            }

            try (TranscriptRecorder r = TranscriptRecorder.open(sock, meta(a, "quit.jsonl",
                    "quit: reply, SHUTDOWN event, then QEMU closes the socket (EOF)"))) {
                handshake(r, true);
                r.call("quit", null);
                r.awaitEof(T);
                r.write(out, "quit");
            }
            assertTrue(a.waitForExit(Duration.ofSeconds(5)), "QEMU did not exit after quit");
        }

        // B: migration to a pipe passed with getfd
        try (QemuProcess b = QemuProcess.start(tmp.resolve("b"))) {
            int[] pipe = FileDescriptors.pipe();
            AtomicLong streamBytes = new AtomicLong();
            AtomicReference<byte[]> head = new AtomicReference<>();
            Thread drain = new Thread(() -> {
                Memory m = new Memory(1 << 16);
                try {
                    while (true) {
                        long n = Posix.libc().read(pipe[0], m, new NativeLong(m.size())).longValue();
                        if (n <= 0) {
                            return;
                        }
                        if (head.get() == null) {
                            head.set(m.getByteArray(0, (int) Math.min(n, 8)));
                        }
                        streamBytes.addAndGet(n);
                    }
                } catch (RuntimeException e) {
                    // pipe closed
                }
            });
            drain.setDaemon(true);
            drain.start();
            try (TranscriptRecorder r = TranscriptRecorder.open(b.qmpSocket(), meta(b, "migrate.jsonl",
                    "query-migrate before, migrate-set-capabilities events, migrate-set-parameters, getfd migfd "
                            + "(write end of a pipe), migrate fd:migfd with MIGRATION/MIGRATION_PASS events, "
                            + "query-migrate completed with ram stats, query-status postmigrate, closefd"))) {
                handshake(r, true);
                r.call("query-migrate", null);
                ObjectNode caps = obj();
                caps.putArray("capabilities").addObject().put("capability", "events").put("state", true);
                r.call("migrate-set-capabilities", caps);
                r.call("migrate-set-parameters", obj().put("max-bandwidth", 1L << 30));
                r.call("getfd", obj().put("fdname", "migfd"), false, new int[]{pipe[1]});
                FileDescriptors.close(pipe[1]);
                int mark = r.mark();
                r.call("migrate", obj().put("uri", "fd:migfd"));
                r.await(m -> "MIGRATION".equals(m.path("event").asText()) && "completed".equals(m.path("data").path("status").asText()), mark);
                r.settle(SETTLE);
                r.call("query-migrate", null);
                r.call("query-status", null);
                r.call("closefd", obj().put("fdname", "migfd"));
                r.settle(SETTLE);
                drain.join(5000);
                assertEquals("QEVM", new String(head.get(), 0, 4, StandardCharsets.US_ASCII));
                r.write(out, "migrate");
            } finally {
                FileDescriptors.close(pipe[0]);
            }
        }
        List<String> files;
        try (var s = Files.list(out)) {
            files = s.map(p -> p.getFileName() + " " + p.toFile().length()).sorted().toList();
        }
        System.out.println("transcripts written to " + out + ": " + files);
    }
}

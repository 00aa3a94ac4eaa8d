package dev.doppel.qmp.commands;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpClientOptions;
import dev.doppel.qmp.QmpCommandException;
import dev.doppel.qmp.testing.FakeQmpPeer;
import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each typed wrapper must send exactly the request QEMU accepted in the recording (same command and arguments)
 * and parse QEMU's recorded reply.
 */
@Tag("unit")
@Timeout(15)
class QemuCommandsReplayTest {

    static final ObjectMapper M = new ObjectMapper();
    static final Transcript HANDSHAKE = Transcript.load("handshake-oob.jsonl");
    static final Transcript STATUS = Transcript.load("status-stop-cont.jsonl");
    static final Transcript VERSION = Transcript.load("query-version.jsonl");
    static final Transcript MIGRATE = Transcript.load("migrate.jsonl");
    static final Transcript QOM = Transcript.load("qom-misc.jsonl");
    static final Transcript FDS = Transcript.load("fds.jsonl");
    static final Transcript OOB = Transcript.load("oob.jsonl");
    static final Transcript INTERLEAVED = Transcript.load("interleaved.jsonl");

    @TempDir
    Path dir;
    FakeQmpPeer peer;
    QmpClient client;
    QemuCommands qemu;

    @BeforeEach
    void connect() throws Exception {
        peer = FakeQmpPeer.start(dir);
        client = peer.connect(QmpClientOptions.defaults("vm"), HANDSHAKE);
        qemu = client.commands();
    }

    @AfterEach
    void close() throws Exception {
        client.close();
        peer.close();
    }

    /** Runs {@code call} against the recorded exchange; asserts the request matches the recording. */
    <T> T replay(Transcript.Exchange x, Function<QemuCommands, T> call) throws Exception {
        CompletableFuture<T> f = CompletableFuture.supplyAsync(() -> call.apply(qemu));
        JsonNode req = peer.answer(x);
        JsonNode recorded = x.requestJson();
        assertEquals(recorded.has("exec-oob"), req.has("exec-oob"), "execute vs exec-oob");
        assertEquals(recorded.get("arguments"), req.get("arguments"), "arguments of " + x.command());
        try {
            return f.get(5, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw (Exception) e.getCause();
        }
    }

    void replayVoid(Transcript.Exchange x, java.util.function.Consumer<QemuCommands> call) throws Exception {
        replay(x, q -> {
            call.accept(q);
            return null;
        });
    }

    @Test
    void runState() throws Exception {
        assertEquals(new StatusInfo("prelaunch", false), replay(STATUS.exchange("query-status", 0), QemuCommands::queryStatus));
        replayVoid(STATUS.exchange("cont"), QemuCommands::cont);
        assertEquals(new StatusInfo("running", true), replay(STATUS.exchange("query-status", 1), QemuCommands::queryStatus));
        replayVoid(STATUS.exchange("stop"), QemuCommands::stop);
        assertEquals(new StatusInfo("paused", false), replay(STATUS.exchange("query-status", 2), QemuCommands::queryStatus));
        replayVoid(INTERLEAVED.exchange("system_reset"), QemuCommands::systemReset);
        assertEquals(List.of("STOP", "RESET"), client.recentEvents().stream().map(e -> e.name()).toList().subList(1, 3));
    }

    @Test
    void versionAndCommands() throws Exception {
        VersionInfo v = replay(VERSION.exchange("query-version"), QemuCommands::queryVersion);
        assertEquals(10, v.major());
        assertEquals(0, v.minor());
        assertEquals(2, v.micro());
        assertTrue(v.pkg().startsWith("Debian"));
        assertEquals(client.greeting().version(), v.asQemuVersion());
        List<String> cmds = replay(VERSION.exchange("query-commands"), QemuCommands::queryCommands);
        assertTrue(cmds.containsAll(List.of("query-status", "migrate", "x-colo-lost-heartbeat", "getfd")), cmds.toString());
    }

    @Test
    void migration() throws Exception {
        MigrationInfo before = replay(MIGRATE.exchange("query-migrate", 0), QemuCommands::queryMigrate);
        assertEquals("none", before.status());
        assertNull(before.ram());

        Map<String, Boolean> caps = new LinkedHashMap<>();
        caps.put("events", true);
        replayVoid(MIGRATE.exchange("migrate-set-capabilities"), q -> q.migrateSetCapabilities(caps));
        replayVoid(MIGRATE.exchange("migrate-set-parameters"), q -> q.migrateSetParameters(Map.of("max-bandwidth", 1L << 30)));
        try (var sub = client.subscribe("MIGRATION")) {
            replayVoid(MIGRATE.exchange("migrate"), q -> q.migrate("fd:migfd"));
            // events after the reply are still being read when migrate() returns: wait for them
            sub.await(e -> "completed".equals(e.dataText("status")), java.time.Duration.ofSeconds(2));
        }
        assertEquals(List.of("setup", "active", "device", "completed"), client.recentEvents().stream()
                .filter(e -> e.name().equals("MIGRATION")).map(e -> e.dataText("status")).toList());

        MigrationInfo done = replay(MIGRATE.exchange("query-migrate", 1), QemuCommands::queryMigrate);
        assertTrue(done.isCompleted());
        assertEquals("completed", done.status());
        assertNotNull(done.totalTimeMs());
        assertNotNull(done.downtimeMs());
        assertNotNull(done.setupTimeMs());
        MigrationInfo.RamStats ram = done.ram();
        assertEquals(67641344L, ram.total());
        assertEquals(0L, ram.remaining());
        assertTrue(ram.transferred() > 0);
        assertEquals(0L, ram.dirtyPagesRate());
        assertEquals(4096L, ram.pageSize());
        assertEquals(done.raw().get("ram").get("transferred").asLong(), ram.transferred());
        assertEquals(new StatusInfo("postmigrate", false), replay(MIGRATE.exchange("query-status"), QemuCommands::queryStatus));
    }

    @Test
    void qomObjectsHmpAndMisc() throws Exception {
        List<JsonNode> props = replay(QOM.exchange("qom-list"), q -> q.qomList("/machine/peripheral-anon"));
        assertTrue(props.stream().anyMatch(p -> p.get("name").asText().equals("type")), props.toString());
        assertEquals("pc-i440fx-10.0-machine", replay(QOM.exchange("qom-get", 0), q -> q.qomGet("/machine", "type")).asText());
        replayVoid(QOM.exchange("object-add"), q -> q.objectAdd(M.createObjectNode().put("qom-type", "iothread").put("id", "io0")));
        assertTrue(replay(QOM.exchange("qom-get", 1), q -> q.qomGet("/objects/io0", "poll-max-ns")).isNumber());
        replayVoid(QOM.exchange("qom-set"), q -> q.qomSet("/objects/io0", "poll-max-ns", 1000));
        assertEquals(1000, replay(QOM.exchange("qom-get", 2), q -> q.qomGet("/objects/io0", "poll-max-ns")).asInt());
        replayVoid(QOM.exchange("object-del"), q -> q.objectDel("io0"));
        String hmp = replay(QOM.exchange("human-monitor-command"), q -> q.humanMonitorCommand("info status"));
        assertTrue(hmp.startsWith("VM status: paused"), hmp);
        assertEquals(List.of(), replay(QOM.exchange("query-block-jobs"), QemuCommands::queryBlockJobs));
        assertEquals(List.of(), replay(QOM.exchange("query-named-block-nodes"), QemuCommands::queryNamedBlockNodes));
        QmpCommandException colo = assertThrows(QmpCommandException.class,
                () -> replayVoid(QOM.exchange("x-colo-lost-heartbeat"), QemuCommands::xColoLostHeartbeat));
        assertEquals("GenericError", colo.errorClass());
        String file = QOM.exchange("pmemsave").requestJson().get("arguments").get("filename").asText();
        replayVoid(QOM.exchange("pmemsave"), q -> q.pmemsave(0, 4096, file));
        Map<String, Boolean> caps = replay(QOM.exchange("query-migrate-capabilities"), QemuCommands::queryMigrateCapabilities);
        assertEquals(Boolean.FALSE, caps.get("x-colo"));
    }

    @Test
    void blockOnFdset() throws Exception {
        JsonNode spec = FDS.exchange("blockdev-add").requestJson().get("arguments");
        replayVoid(FDS.exchange("blockdev-add"), q -> q.blockdevAdd(spec));
        List<JsonNode> nodes = replay(FDS.exchange("query-named-block-nodes"), QemuCommands::queryNamedBlockNodesFlat);
        assertEquals("/dev/fdset/1", nodes.get(0).get("file").asText());
        assertEquals(65536, nodes.get(0).get("image").get("virtual-size").asInt());
        replayVoid(FDS.exchange("blockdev-del"), q -> q.blockdevDel("fdnode"));
    }

    @Test
    void oobWrappers() throws Exception {
        List<JsonNode> yank = replay(OOB.exchange("query-yank"), QemuCommands::queryYankOob);
        assertEquals("chardev", yank.get(0).get("type").asText());
        replayVoid(OOB.exchange("yank"), q -> q.yankOob(M.createArrayNode()));
        QmpCommandException e = assertThrows(QmpCommandException.class,
                () -> replayVoid(OOB.exchange("migrate-recover"), q -> q.migrateRecoverOob("tcp:127.0.0.1:1")));
        assertEquals("Migrate recover can only be run when postcopy is paused.", e.description());
        assertInstanceOf(QmpCommandException.class, assertThrows(QmpCommandException.class,
                () -> replayVoid(OOB.exchange("migrate-pause"), QemuCommands::migratePauseOob)));
    }

    @Test
    void getfdAndAddFdGoThroughTheFdPath() throws Exception {
        // the fake peer cannot take the descriptor, but the request must be the recorded one
        int fd = dev.doppel.qmp.FileDescriptors.openReadOnly(dir);
        try {
            CompletableFuture<Void> g = CompletableFuture.runAsync(() -> client.getfd("fd0", fd));
            JsonNode req = peer.answer(FDS.exchange("getfd"));
            assertEquals(FDS.exchange("getfd").requestJson().get("arguments"), req.get("arguments"));
            g.get(5, TimeUnit.SECONDS);
            CompletableFuture<JsonNode> a = CompletableFuture.supplyAsync(() -> client.addFd(1, fd, "doppel-test"));
            req = peer.answer(FDS.exchange("add-fd"));
            assertEquals(FDS.exchange("add-fd").requestJson().get("arguments"), req.get("arguments"));
            assertEquals(1, a.get(5, TimeUnit.SECONDS).get("fdset-id").asInt());
            CompletableFuture<Void> c = CompletableFuture.runAsync(() -> client.closefd("fd0"));
            peer.answer(FDS.exchange("closefd", 0));
            c.get(5, TimeUnit.SECONDS);
        } finally {
            dev.doppel.qmp.FileDescriptors.close(fd);
        }
    }
}

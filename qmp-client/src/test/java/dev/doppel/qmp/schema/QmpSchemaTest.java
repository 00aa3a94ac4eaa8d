package dev.doppel.qmp.schema;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpClientOptions;
import dev.doppel.qmp.QmpSchemaException;
import dev.doppel.qmp.testing.FakeQmpPeer;
import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The recorded QEMU 10.0.2 {@code query-qmp-schema}. */
@Tag("unit")
@Timeout(15)
class QmpSchemaTest {

    static final ObjectMapper M = new ObjectMapper();
    static final Transcript RECORDING = Transcript.load("query-qmp-schema.jsonl");
    static QmpSchema schema;

    @BeforeAll
    static void parse() {
        JsonNode reply = RECORDING.exchange("query-qmp-schema").responses().get(0).message();
        schema = QmpSchema.parse(reply.get("return"), "web1");
    }

    static JsonNode json(String s) throws Exception {
        return M.readTree(s);
    }

    @Test
    void commandsAndEvents() {
        assertTrue(schema.commandNames().size() > 200, schema.toString());
        assertTrue(schema.hasCommand("blockdev-add"));
        assertTrue(schema.hasCommand("x-colo-lost-heartbeat"));
        assertTrue(schema.hasCommand("migrate-recover"));
        assertFalse(schema.hasCommand("x-oob-test"), "test-only command, absent in release builds");
        assertTrue(schema.hasEvent("STOP"));
        assertTrue(schema.hasEvent("MIGRATION"));
        assertTrue(schema.hasEvent("COLO_EXIT"));
        assertFalse(schema.hasEvent("stop"));
    }

    @Test
    void oobCommands() {
        List<String> oob = schema.commandNames().stream().filter(schema::allowsOob).sorted().toList();
        assertEquals(List.of("migrate-pause", "migrate-recover", "query-yank", "yank"), oob);
    }

    @Test
    void migrationCapabilities() {
        for (String cap : List.of("x-colo", "mapped-ram", "x-ignore-shared", "postcopy-ram", "events")) {
            assertTrue(schema.hasMigrationCapability(cap), cap);
        }
        assertFalse(schema.hasMigrationCapability("x-checkpoint-delay"), "that is a parameter, not a capability");
        assertEquals(schema.migrationCapabilities(), schema.enumValues("MigrationCapability"));
        assertTrue(schema.schemaNameOf("MigrationCapability").orElseThrow().matches("\\d+"));
    }

    @Test
    void enumsByWellKnownAndSchemaName() {
        List<String> runStates = schema.enumValues("RunState");
        assertTrue(runStates.containsAll(List.of("prelaunch", "running", "paused", "postmigrate", "inmigrate", "colo")), runStates.toString());
        assertEquals(runStates, schema.enumValues(schema.schemaNameOf("RunState").orElseThrow()));
        assertTrue(schema.enumValues("BlockdevDriver").containsAll(List.of("file", "qcow2", "nbd", "replication", "quorum")));
        assertTrue(schema.enumValues("MigrationStatus").containsAll(List.of("completed", "colo", "postcopy-paused")));
        QmpSchemaException e = assertThrows(QmpSchemaException.class, () -> schema.enumValues("NoSuchType"));
        assertTrue(e.getMessage().startsWith("VM 'web1': no enum type 'NoSuchType'"), e.getMessage());
    }

    @Test
    void commandArgumentsResolveNumberedTypes() {
        assertEquals(List.of(new SchemaMember("fdname", true, "str", "str", List.of())), schema.commandArguments("getfd"));
        assertEquals(List.of(), schema.commandArguments("query-status"));

        Map<String, SchemaMember> migrate = schema.commandArguments("migrate").stream()
                .collect(java.util.stream.Collectors.toMap(SchemaMember::name, m -> m));
        assertEquals(new SchemaMember("uri", false, "str", "str", List.of()), migrate.get("uri"));
        assertFalse(migrate.get("detach").required());
        assertEquals("bool", migrate.get("detach").type());
        assertTrue(migrate.get("channels").type().startsWith("["), migrate.get("channels").toString());

        SchemaMember caps = schema.commandArguments("migrate-set-capabilities").get(0);
        assertEquals("capabilities", caps.name());
        assertTrue(caps.required());
        assertEquals("[MigrationCapabilityStatus]", caps.type());

        SchemaMember driver = schema.commandArguments("blockdev-add").stream().filter(m -> m.name().equals("driver"))
                .findFirst().orElseThrow();
        assertEquals("BlockdevDriver", driver.type());
        assertTrue(driver.enumValues().contains("file"));

        assertEquals(java.util.Set.of("status", "running"), schema.members("StatusInfo").stream().map(SchemaMember::name)
                .filter(n -> !n.equals("singlestep")).collect(java.util.stream.Collectors.toSet()));
        assertThrows(QmpSchemaException.class, () -> schema.commandArguments("no-such-command"));
    }

    @Test
    void eventMembers() {
        List<SchemaMember> m = schema.eventMembers("MIGRATION");
        assertEquals("status", m.get(0).name());
        assertEquals("MigrationStatus", m.get(0).type());
    }

    @Test
    void validateReportsUnknownCommandUnknownAndMissingMembers() throws Exception {
        assertEquals(List.of("unknown command 'no-such-command'"), schema.validate("no-such-command", null));
        assertEquals(List.of(), schema.validate("query-status", null));
        assertEquals(List.of("unknown member 'arguments.x'"), schema.validate("query-status", json("{\"x\":1}")));
        assertEquals(List.of("missing required member 'arguments.fdname'"), schema.validate("getfd", json("{}")));
        assertEquals(List.of("missing required member 'arguments.property'"),
                schema.validate("qom-get", json("{\"path\":\"/machine\"}")));
        assertEquals(List.of(), schema.validate("migrate", json("{\"uri\":\"fd:fd0\"}")));
    }

    @Test
    void validateFollowsUnionVariantsAndNesting() throws Exception {
        assertEquals(List.of(), schema.validate("blockdev-add",
                json("{\"driver\":\"file\",\"node-name\":\"n\",\"filename\":\"/dev/fdset/1\",\"read-only\":true}")));
        assertEquals(List.of("missing required member 'arguments.filename'"),
                schema.validate("blockdev-add", json("{\"driver\":\"file\",\"node-name\":\"n\"}")));
        assertEquals(List.of("unknown member 'arguments.file-name'", "missing required member 'arguments.filename'"),
                schema.validate("blockdev-add", json("{\"driver\":\"file\",\"node-name\":\"n\",\"file-name\":\"x\"}")));
        assertEquals(List.of("unknown member 'arguments.cache.directt'"), schema.validate("blockdev-add",
                json("{\"driver\":\"file\",\"filename\":\"x\",\"cache\":{\"directt\":true}}")));
        assertEquals(List.of("'arguments.capabilities[0].capability' has unknown value 'x-cola'"),
                schema.validate("migrate-set-capabilities",
                        json("{\"capabilities\":[{\"capability\":\"x-cola\",\"state\":true}]}")));
        assertEquals(List.of("missing required member 'arguments.capabilities[0].state'"),
                schema.validate("migrate-set-capabilities", json("{\"capabilities\":[{\"capability\":\"x-colo\"}]}")));
        // the recorded requests QEMU accepted are valid
        for (String t : List.of("fds.jsonl", "migrate.jsonl", "qom-misc.jsonl")) {
            for (Transcript.Exchange x : Transcript.load(t).exchanges()) {
                JsonNode reply = x.responses().stream().map(Transcript.Entry::message)
                        .filter(m -> m.has("return") || m.has("error")).findFirst().orElseThrow();
                if (reply.has("return") && x.command() != null) {
                    assertEquals(List.of(), schema.validate(x.command(), x.requestJson().get("arguments")), x.requestJson().toString());
                }
            }
        }
    }

    @Test
    void requireValidThrowsNamingVmAndCommand() throws Exception {
        QmpSchemaException e = assertThrows(QmpSchemaException.class, () -> schema.requireValid("getfd", json("{\"name\":\"x\"}")));
        assertEquals("VM 'web1': 'getfd' does not match the QMP schema: unknown member 'arguments.name'; "
                + "missing required member 'arguments.fdname'", e.getMessage());
        assertEquals(2, e.problems().size());
    }

    @Test
    void clientLoadsSchemaOnceAndValidatesBeforeSending(@TempDir Path dir) throws Exception {
        try (FakeQmpPeer peer = FakeQmpPeer.start(dir)) {
            QmpClient client = peer.connect(QmpClientOptions.defaults("web1").withValidateAgainstSchema(true),
                    Transcript.load("handshake-oob.jsonl"));
            try (client) {
                assertTrue(client.loadedSchema().isEmpty());
                peer.autoReply(RECORDING);
                QmpSchema s = client.schema();
                assertSame(s, client.schema(), "cached");
                assertTrue(s.hasMigrationCapability("x-colo"));
                QmpSchemaException e = assertThrows(QmpSchemaException.class,
                        () -> client.execute("getfd", Map.of("fdnam", "x")));
                assertTrue(e.getMessage().startsWith("VM 'web1': 'getfd' does not match the QMP schema"), e.getMessage());
                assertNull(peer.pollRequestLine(Duration.ofMillis(100)), "an invalid command is not sent");
            }
        }
    }
}

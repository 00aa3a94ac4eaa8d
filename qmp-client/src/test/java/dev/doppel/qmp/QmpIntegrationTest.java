package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.jna.Memory;
import com.sun.jna.NativeLong;
import dev.doppel.qmp.commands.MigrationInfo;
import dev.doppel.qmp.commands.QemuCommands;
import dev.doppel.qmp.schema.QmpSchema;
import dev.doppel.qmp.testing.QemuProcess;
import dev.doppel.qmp.testing.Threads;
import dev.doppel.qmp.transport.Posix;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Against a real QEMU 10 ({@code -S}, no guest). Each test gets its own QEMU, killed afterwards. */
@Tag("integration")
@Timeout(30)
class QmpIntegrationTest {

    static final ObjectMapper M = new ObjectMapper();
    static final Duration T = Duration.ofSeconds(10);

    @TempDir
    Path dir;
    QemuProcess qemu;
    QmpClient client;

    @BeforeEach
    void startQemu() throws Exception {
        // QEMU is a requirement of the suite (scripts/setup installs it), never a reason to skip.
        org.junit.jupiter.api.Assertions.assertTrue(QemuProcess.available(), "no " + QemuProcess.BINARY + ": run ./scripts/setup");
        qemu = QemuProcess.start(dir.resolve("q"));
        client = QmpClient.connectUnix(qemu.qmpSocket(), "it1", T);
    }

    @AfterEach
    void stopQemu() {
        try {
            if (client != null) {
                client.close();
            }
        } finally {
            if (qemu != null) {
                qemu.close();
            }
        }
    }

    @Test
    void connectsNegotiatesOobAndQueriesStatus() {
        QemuVersion v = client.greeting().version();
        assertEquals(10, v.major());
        assertEquals(0, v.minor());
        assertTrue(client.greeting().capabilities().contains("oob"));
        assertTrue(client.oobEnabled());
        assertTrue(client.isConnected());
        assertEquals("prelaunch", client.commands().queryStatus().status());
        assertEquals(v.micro(), client.commands().queryVersion().micro());
    }

    @Test
    void stopAndContEmitStopAndResume() {
        QemuCommands q = client.commands();
        try (EventSubscription sub = client.subscribe("STOP", "RESUME")) {
            q.cont();
            assertEquals("RESUME", sub.await("RESUME", T).name());
            assertTrue(q.queryStatus().running());
            q.stop();
            QmpEvent stop = sub.await("STOP", T);
            assertEquals("it1", stop.vmName());
            assertTrue(Math.abs(stop.timestamp().toEpochMilli() - System.currentTimeMillis()) < 60_000);
            assertEquals("paused", q.queryStatus().status());
        }
        QmpCommandException e = assertThrows(QmpCommandException.class, () -> client.execute("no-such-command"));
        assertEquals("CommandNotFound", e.errorClass());
    }

    @Test
    void schemaHasTheMigrationCapabilitiesDoppelNeeds() {
        QmpSchema s = client.schema();
        for (String cap : List.of("x-colo", "mapped-ram", "x-ignore-shared", "postcopy-ram")) {
            assertTrue(s.hasMigrationCapability(cap), cap);
        }
        assertTrue(s.hasCommand("x-colo-lost-heartbeat"));
        assertTrue(s.hasCommand("x-blockdev-change"));
        assertTrue(s.allowsOob("query-yank"));
        assertTrue(client.commands().queryCommands().contains("query-qmp-schema"));
    }

    @Test
    void validationAgainstTheLiveSchema() throws Exception {
        client.close();
        client = QmpClient.connectUnix(qemu.qmpSocket(), QmpClientOptions.defaults("it1").withValidateAgainstSchema(true), T);
        client.schema();
        QmpSchemaException e = assertThrows(QmpSchemaException.class, () -> client.execute("query-status", Map.of("bogus", 1)));
        assertEquals(List.of("unknown member 'arguments.bogus'"), e.problems());
        assertEquals("prelaunch", client.commands().queryStatus().status());
    }

    @Test
    void outOfBandCommands() {
        JsonNode yank = client.executeOob("query-yank", null, T);
        assertTrue(yank.isArray() && yank.size() >= 1, yank.toString());
        client.commands().yankOob(M.createArrayNode());
        QmpCommandException e = assertThrows(QmpCommandException.class,
                () -> client.executeOob("query-status", null, T));
        assertEquals("The command query-status does not support OOB", e.description());
    }

    /** getfd hands QEMU the write end of a pipe; migrate to fd:fd0 writes the stream into it: "QEVM...". */
    @Test
    void fdPassingMigrationStreamLandsInOurPipe() throws Exception {
        int[] pipe = FileDescriptors.pipe();
        AtomicReference<byte[]> head = new AtomicReference<>();
        AtomicLong total = new AtomicLong();
        Thread drain = new Thread(() -> {
            Memory m = new Memory(1 << 16);
            try {
                long n;
                while ((n = Posix.libc().read(pipe[0], m, new NativeLong(m.size())).longValue()) > 0) {
                    if (head.get() == null) {
                        head.set(m.getByteArray(0, (int) Math.min(8, n)));
                    }
                    total.addAndGet(n);
                }
            } catch (RuntimeException ignored) {
                // pipe closed
            }
        }, "pipe-drain");
        drain.setDaemon(true);
        drain.start();
        try {
            QemuCommands q = client.commands();
            q.migrateSetCapabilities(Map.of("events", true));
            client.getfd("fd0", pipe[1]);
            FileDescriptors.close(pipe[1]); // QEMU has its own copy now; EOF comes when QEMU closes it
            try (EventSubscription sub = client.subscribe("MIGRATION")) {
                q.migrate("fd:fd0");
                sub.await(e -> "completed".equals(e.dataText("status")), T);
            }
            MigrationInfo info = q.queryMigrate();
            assertTrue(info.isCompleted(), info.toString());
            assertEquals(67641344L, info.ram().total());
            drain.join(5000);
            assertNotNull(head.get(), "nothing arrived through the passed fd");
            assertEquals("QEVM", new String(head.get(), 0, 4, StandardCharsets.US_ASCII));
            assertEquals(info.ram().transferred(), total.get(), "every stream byte went through our pipe");
            assertEquals("postmigrate", q.queryStatus().status());
        } finally {
            FileDescriptors.close(pipe[0]);
        }
    }

    /** add-fd + blockdev-add on /dev/fdset/N with the file already unlinked: QEMU can only reach it via our fd. */
    @Test
    void fdPassingBlockdevOnFdsetAndClosefd() throws Exception {
        Path file = dir.resolve("disk.raw");
        byte[] content = new byte[3 * 65536];
        Arrays.fill(content, (byte) 0x5a);
        Files.write(file, content);
        int fd = FileDescriptors.openReadOnly(file);
        Files.delete(file);
        try {
            JsonNode added = client.addFd(null, fd, "doppel-it");
            int fdset = added.get("fdset-id").asInt();
            assertTrue(added.get("fd").asInt() > 2, added.toString());
            QemuCommands q = client.commands();
            q.blockdevAdd(M.createObjectNode().put("driver", "file").put("node-name", "fdnode")
                    .put("filename", "/dev/fdset/" + fdset).put("read-only", true));
            JsonNode node = q.queryNamedBlockNodesFlat().stream()
                    .filter(n -> n.get("node-name").asText().equals("fdnode")).findFirst().orElseThrow();
            assertEquals(content.length, node.get("image").get("virtual-size").asLong(), node.toString());
            assertTrue(node.get("ro").asBoolean());
            q.blockdevDel("fdnode");
            client.removeFd(fdset, null);

            client.getfd("fd1", fd);
            client.closefd("fd1");
            QmpCommandException again = assertThrows(QmpCommandException.class, () -> client.closefd("fd1"));
            assertEquals("File descriptor named 'fd1' not found", again.description());
        } finally {
            FileDescriptors.close(fd);
        }
    }

    @Test
    void qemuDyingEndsTheClient() throws Exception {
        qemu.process().destroyForcibly();
        QmpException reason = client.whenDisconnected().get(5, java.util.concurrent.TimeUnit.SECONDS);
        assertInstanceOf(QmpDisconnectedException.class, reason);
        assertFalse(client.isConnected());
        Threads.assertGone("qmp-reader-it1", Duration.ofSeconds(2));
        QmpDisconnectedException e = assertThrows(QmpDisconnectedException.class, () -> client.commands().queryStatus());
        assertTrue(e.getMessage().startsWith("VM 'it1': QMP connection is closed; cannot send 'query-status'"), e.getMessage());
    }

    @Test
    void quitClosesTheConnection() throws Exception {
        client.commands().quit();
        assertTrue(qemu.waitForExit(T));
        client.whenDisconnected().get(5, java.util.concurrent.TimeUnit.SECONDS);
        assertTrue(client.recentEvents().stream().anyMatch(e -> e.name().equals("SHUTDOWN")));
    }

    /** Round-trip time of query-status; prints p50/p99 (µs) for the record. */
    @Test
    void queryStatusRoundTripTime() {
        for (int i = 0; i < 300; i++) {
            client.execute("query-status");
        }
        int n = 2000;
        long[] us = new long[n];
        for (int i = 0; i < n; i++) {
            long t0 = System.nanoTime();
            client.execute("query-status");
            us[i] = (System.nanoTime() - t0) / 1000;
        }
        Arrays.sort(us);
        long p50 = us[n / 2];
        long p99 = us[(int) (n * 0.99)];
        System.out.printf("QMP query-status round trip over unix socket, %d calls: p50 %d us, p99 %d us, max %d us%n",
                n, p50, p99, us[n - 1]);
        assertTrue(p50 < 50_000, "p50 " + p50 + " us");
    }
}

package dev.doppel.qmp;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.IntNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.qmp.testing.FakeQmpPeer;
import dev.doppel.qmp.testing.Threads;
import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** QmpClient against recorded QEMU 10.0.2 sessions replayed by a fake peer on a real unix socket. */
@Tag("unit")
@Timeout(15)
class QmpClientReplayTest {

    static final Transcript HANDSHAKE = Transcript.load("handshake-oob.jsonl");
    static final Transcript PLAIN = Transcript.load("handshake-plain.jsonl");
    static final Transcript STATUS = Transcript.load("status-stop-cont.jsonl");
    static final Transcript ERRORS = Transcript.load("errors.jsonl");
    static final Transcript INTERLEAVED = Transcript.load("interleaved.jsonl");
    static final Transcript QUIT = Transcript.load("quit.jsonl");
    static final Transcript OOB = Transcript.load("oob.jsonl");
    static final Transcript QOM = Transcript.load("qom-misc.jsonl");
    static final ObjectMapper M = new ObjectMapper();

    @TempDir
    Path dir;
    FakeQmpPeer peer;
    QmpClient client;

    @BeforeEach
    void startPeer() throws Exception {
        peer = FakeQmpPeer.start(dir);
    }

    @AfterEach
    void stop() throws Exception {
        if (client != null) {
            client.close();
        }
        peer.close();
    }

    QmpClient connect(String vm) throws Exception {
        client = peer.connect(QmpClientOptions.defaults(vm), HANDSHAKE);
        return client;
    }

    static Throwable cause(CompletableFuture<?> f) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        return e.getCause();
    }

    // ------------------------------------------------------------------------------------------------ handshake

    @Test
    void greetingAndOobNegotiationFromRecording() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults("web1"));
        peer.write(HANDSHAKE.greeting());
        JsonNode negotiation = peer.answer(HANDSHAKE.exchange("qmp_capabilities"));
        client = f.get(5, TimeUnit.SECONDS);

        assertEquals(M.readTree("{\"enable\":[\"oob\"]}"), negotiation.get("arguments"));
        assertEquals(new QemuVersion(10, 0, 2, "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"), client.greeting().version());
        assertEquals(List.of("oob"), client.greeting().capabilities());
        assertTrue(client.oobEnabled());
        assertTrue(client.isConnected());
        assertEquals("web1", client.vmName());
        assertTrue(Threads.alive("qmp-reader-web1"));
    }

    @Test
    void noOobRequestedWhenDisabled() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults("web1").withEnableOob(false));
        peer.write(PLAIN.greeting());
        JsonNode negotiation = peer.answer(PLAIN.exchange("qmp_capabilities"));
        client = f.get(5, TimeUnit.SECONDS);
        assertNull(negotiation.get("arguments"));
        assertFalse(client.oobEnabled());

        QmpException e = assertThrows(QmpException.class, () -> client.executeOob("query-yank", null, Duration.ofSeconds(1)));
        assertTrue(e.getMessage().startsWith("VM 'web1': cannot send 'query-yank' out-of-band: OOB was not negotiated"), e.getMessage());
        assertEquals("query-yank", e.command());
        assertNull(peer.pollRequestLine(Duration.ofMillis(100)), "nothing may be sent");
        assertInstanceOf(QmpException.class, cause(client.executeOobAsync("query-yank", null)));
    }

    @Test
    void framingToleratesLfOnlyAndByteByByteDelivery() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults("vm"));
        peer.writeInChunks(HANDSHAKE.greeting().replace("\r\n", "\n"), 1);
        JsonNode req = peer.readRequest();
        peer.writeInChunks(HANDSHAKE.exchange("qmp_capabilities").responseFor(req.get("id")), 3);
        client = f.get(5, TimeUnit.SECONDS);

        CompletableFuture<JsonNode> status = client.executeAsync("query-status", null);
        req = peer.readRequest();
        peer.writeInChunks(STATUS.exchange("stop").responseFor(req.get("id")).replace("\r\n", "\n"), 1);
        assertEquals("{}", status.get(5, TimeUnit.SECONDS).toString());
        assertEquals("STOP", client.recentEvents().get(0).name());
    }

    @Test
    void connectUnixRetriesUntilTheSocketAppears() throws Exception {
        peer.close();
        Path late = dir.resolve("late");
        java.nio.file.Files.createDirectories(late);
        CompletableFuture<QmpClient> f = CompletableFuture.supplyAsync(
                () -> QmpClient.connectUnix(late.resolve("peer.sock"), "late-vm", Duration.ofSeconds(5)));
        Thread.sleep(300); // QEMU "still starting": no socket file yet
        peer = FakeQmpPeer.start(late);
        peer.write(HANDSHAKE.greeting());
        peer.answer(HANDSHAKE.exchange("qmp_capabilities"));
        client = f.get(5, TimeUnit.SECONDS);
        assertTrue(client.isConnected());
    }

    @Test
    void connectUnixGivesUpAtTheDeadline() {
        long t0 = System.nanoTime();
        QmpConnectException e = assertThrows(QmpConnectException.class,
                () -> QmpClient.connectUnix(dir.resolve("never.sock"), "ghost", Duration.ofMillis(300)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 290 && ms < 2000, "took " + ms + " ms");
        assertTrue(e.getMessage().startsWith("VM 'ghost': could not connect to QMP at unix:"), e.getMessage());
        assertTrue(e.getMessage().contains("never.sock"), e.getMessage());
        assertNotNull(e.getCause());
    }

    // ------------------------------------------------------------------------------------------------ execute

    @Test
    void executeReturnsTheReturnMember() throws Exception {
        connect("vm");
        CompletableFuture<JsonNode> f = CompletableFuture.supplyAsync(() -> client.execute("query-status"));
        JsonNode req = peer.answer(HANDSHAKE.exchange("query-status"));
        assertEquals("query-status", req.get("execute").asText());
        assertEquals(1, req.get("id").intValue(), "the first call's id is 1, as a JSON number: " + req);
        assertNull(req.get("arguments"));
        assertEquals(M.readTree("{\"status\":\"prelaunch\",\"running\":false}"), f.get(5, TimeUnit.SECONDS));
    }

    @Test
    void idsAreUniqueAndRepliesRoutedByIdEvenOutOfOrder() throws Exception {
        connect("vm");
        List<CompletableFuture<JsonNode>> calls = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            calls.add(client.executeAsync("query-status", null));
        }
        List<JsonNode> ids = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            ids.add(peer.readRequest().get("id"));
        }
        assertEquals(3, ids.stream().distinct().count());
        // recorded replies: prelaunch, running, paused; answer them in reverse order
        List<Transcript.Exchange> recorded = List.of(STATUS.exchange("query-status", 0), STATUS.exchange("query-status", 1),
                STATUS.exchange("query-status", 2));
        for (int i = 2; i >= 0; i--) {
            peer.write(recorded.get(i).replyFor(ids.get(i)));
        }
        assertEquals("prelaunch", calls.get(0).get(5, TimeUnit.SECONDS).get("status").asText());
        assertEquals("running", calls.get(1).get(5, TimeUnit.SECONDS).get("status").asText());
        assertEquals("paused", calls.get(2).get(5, TimeUnit.SECONDS).get("status").asText());
    }

    @Test
    void eventsInterleavedWithRepliesInOneReadAreAllDeliveredInOrder() throws Exception {
        connect("vm");
        EventSubscription all = client.subscribe();
        List<QmpEvent> heard = Collections.synchronizedList(new ArrayList<>());
        client.addEventListener(heard::add);

        // the client pipelines the same nine commands as the recording (one of them exec-oob)
        List<Transcript.Exchange> sent = INTERLEAVED.exchanges().subList(1, 10);
        List<CompletableFuture<JsonNode>> calls = new ArrayList<>();
        for (Transcript.Exchange x : sent) {
            calls.add(x.requestJson().has("exec-oob") ? client.executeOobAsync(x.command(), null)
                    : client.executeAsync(x.command(), null));
        }
        // map recorded ids to the client's, then write QEMU's whole recorded output in a single write
        String stream = sent.get(sent.size() - 1).responses().stream().map(Transcript.Entry::raw)
                .reduce("", String::concat);
        for (Transcript.Exchange x : sent) {
            JsonNode req = peer.readRequest();
            assertEquals(x.command(), req.has("execute") ? req.get("execute").asText() : req.get("exec-oob").asText());
            stream = Transcript.withId(stream, x.recordedId(), req.get("id"));
        }
        peer.write(stream);

        List<String> statuses = new ArrayList<>();
        for (int i = 0; i < calls.size(); i++) {
            JsonNode r = calls.get(i).get(5, TimeUnit.SECONDS);
            if (sent.get(i).command().equals("query-status")) {
                statuses.add(r.get("status").asText());
            }
            if (sent.get(i).command().equals("query-yank")) {
                assertEquals("compat_monitor0", r.get(0).get("id").asText());
            }
        }
        assertEquals(List.of("running", "paused", "running", "paused"), statuses);
        List<String> names = all.drain().stream().map(QmpEvent::name).toList();
        assertEquals(List.of("RESUME", "STOP", "RESUME", "STOP"), names);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        while (heard.size() < 4 && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertEquals(names, heard.stream().map(QmpEvent::name).toList());
        QmpEvent first = client.recentEvents().get(0);
        assertEquals(1795618622L, first.timestamp().getEpochSecond());
        assertEquals(846323000, first.timestamp().getNano());
        assertEquals("vm", first.vmName());
        assertTrue(first.data().isObject() && first.data().isEmpty());
    }

    @Test
    void eventBeforeTheNegotiationReplyIsKept() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults("vm"));
        peer.write(HANDSHAKE.greeting());
        JsonNode req = peer.readRequest();
        String resume = STATUS.exchange("cont").events().get(0).raw();
        peer.write(resume + HANDSHAKE.exchange("qmp_capabilities").responseFor(req.get("id")));
        client = f.get(5, TimeUnit.SECONDS);

        assertEquals(List.of("RESUME"), client.recentEvents().stream().map(QmpEvent::name).toList());
        assertEquals(1, client.eventSequence());
        try (EventSubscription live = client.subscribe("RESUME");
             EventSubscription since = client.subscribeSince(0, e -> true)) {
            assertNull(live.poll(Duration.ofMillis(50)), "a live subscription starts now");
            assertEquals("RESUME", since.poll(Duration.ZERO).name());
        }
    }

    @Test
    void subscribeSinceClosesTheSubscribeTooLateRace() throws Exception {
        connect("vm");
        long mark = client.eventSequence();
        CompletableFuture<JsonNode> stop = CompletableFuture.supplyAsync(() -> client.execute("stop"));
        peer.answer(STATUS.exchange("stop")); // QEMU sends STOP before the reply
        stop.get(5, TimeUnit.SECONDS);
        try (EventSubscription tooLate = client.subscribe("STOP");
             EventSubscription since = client.subscribeSince(mark, e -> e.name().equals("STOP"))) {
            assertThrows(QmpTimeoutException.class, () -> tooLate.await("STOP", Duration.ofMillis(50)));
            assertEquals("STOP", since.await("STOP", Duration.ZERO).name());
        }
    }

    @Test
    void errorRepliesBecomeQmpCommandException() throws Exception {
        connect("web1");
        CompletableFuture<JsonNode> f = client.executeAsync("no-such-command", null);
        peer.answer(ERRORS.exchange("no-such-command"));
        QmpCommandException e = assertInstanceOf(QmpCommandException.class, cause(f));
        assertEquals("CommandNotFound", e.errorClass());
        assertEquals("The command no-such-command has not been found", e.description());
        assertEquals("no-such-command", e.command());
        assertEquals("web1", e.vmName());
        assertEquals("VM 'web1': 'no-such-command' failed: CommandNotFound: The command no-such-command has not been found",
                e.getMessage());

        CompletableFuture<JsonNode> g = CompletableFuture.supplyAsync(
                () -> client.execute("blockdev-del", Map.of("node-name", "no-such-node")));
        JsonNode req = peer.answer(ERRORS.exchange("blockdev-del"));
        assertEquals(M.readTree("{\"node-name\":\"no-such-node\"}"), req.get("arguments"));
        QmpCommandException e2 = assertInstanceOf(QmpCommandException.class, cause(g));
        assertEquals("VM 'web1': 'blockdev-del' failed: GenericError: Failed to find node with node-name='no-such-node'",
                e2.getMessage());
        // the blocking path reports the caller's stack, not the reader's
        assertTrue(java.util.Arrays.stream(e2.getStackTrace()).noneMatch(s -> s.getClassName().contains("StreamQmpConnection")));
    }

    @Test
    void replyWithoutIdIsDroppedNotMisrouted() throws Exception {
        connect("vm");
        CompletableFuture<JsonNode> f = client.executeAsync("query-status", null);
        JsonNode req = peer.readRequest();
        // QEMU's answer to unparseable input carries no id: it must not fail our pending call
        peer.write(idlessErrorLine());
        Thread.sleep(100);
        assertFalse(f.isDone());
        peer.write(ERRORS.exchange("query-status", 2).replyFor(req.get("id")));
        assertEquals("paused", f.get(5, TimeUnit.SECONDS).get("status").asText());
    }

    static String idlessErrorLine() {
        return ERRORS.received().stream().filter(e -> e.raw().startsWith("{\"error\"")).findFirst().orElseThrow().raw();
    }

    @Test
    void timedOutCallFailsAndItsLateReplyIsDropped() throws Exception {
        connect("web1");
        long t0 = System.nanoTime();
        QmpTimeoutException e = assertThrows(QmpTimeoutException.class,
                () -> client.execute("query-status", null, Duration.ofMillis(200)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 190 && ms < 2000, "took " + ms);
        JsonNode late = peer.readRequest();
        assertTrue(e.getMessage().startsWith("VM 'web1': no reply to 'query-status' (id " + late.get("id")
                + ") within 200 ms"), e.getMessage());
        assertEquals("query-status", e.command());

        CompletableFuture<JsonNode> next = client.executeAsync("query-status", null);
        JsonNode req = peer.readRequest();
        peer.write(STATUS.exchange("query-status", 0).replyFor(late.get("id"))); // late: prelaunch
        peer.write(STATUS.exchange("query-status", 1).replyFor(req.get("id")));  // ours: running
        assertEquals("running", next.get(5, TimeUnit.SECONDS).get("status").asText());
        assertTrue(client.isConnected());
    }

    /**
     * Ids are the smallest free numbers (QEMU reads monitor input a byte at a time, so every digit costs
     * round-trip time). An answered call's id is reused; an abandoned call's id is not, until its late reply.
     */
    @Test
    void idsAreReusedOnlyOnceTheirReplyHasArrived() throws Exception {
        connect("web1");
        for (int i = 0; i < 2; i++) {                       // sequential calls: always id 1
            CompletableFuture<JsonNode> f = client.executeAsync("query-status", null);
            JsonNode req = peer.readRequest();
            assertEquals(IntNode.valueOf(1), req.get("id"), req.toString());
            peer.write(STATUS.exchange("query-status", 1).replyFor(req.get("id")));
            assertEquals("running", f.get(5, TimeUnit.SECONDS).get("status").asText());
        }

        assertThrows(QmpTimeoutException.class, () -> client.execute("query-status", null, Duration.ofMillis(100)));
        JsonNode abandoned = peer.readRequest().get("id");
        assertEquals(IntNode.valueOf(1), abandoned);
        CompletableFuture<JsonNode> second = client.executeAsync("query-status", null);
        JsonNode secondId = peer.readRequest().get("id");
        assertEquals(IntNode.valueOf(2), secondId, "id 1 may still get its late reply: not reused");
        peer.write(STATUS.exchange("query-status", 0).replyFor(abandoned));   // the late reply: prelaunch
        peer.write(STATUS.exchange("query-status", 2).replyFor(secondId));    // paused
        assertEquals("paused", second.get(5, TimeUnit.SECONDS).get("status").asText());

        CompletableFuture<JsonNode> third = client.executeAsync("query-status", null);
        JsonNode thirdReq = peer.readRequest();
        assertEquals(IntNode.valueOf(1), thirdReq.get("id"), "the late reply freed id 1");
        peer.write(STATUS.exchange("query-status", 1).replyFor(thirdReq.get("id")));
        assertEquals("running", third.get(5, TimeUnit.SECONDS).get("status").asText());
    }

    @Test
    void peerClosingFailsPendingCallsNamingVmAndCommand() throws Exception {
        connect("web1");
        CompletableFuture<JsonNode> migrate = client.executeAsync("migrate", Map.of("uri", "fd:fd0"));
        CompletableFuture<QmpException> gone = client.whenDisconnected();
        JsonNode id = peer.readRequest().get("id");
        peer.closeClient();

        QmpDisconnectedException e = assertInstanceOf(QmpDisconnectedException.class, cause(migrate));
        assertTrue(e.getMessage().startsWith("VM 'web1': QMP connection closed while waiting for reply to 'migrate' (id "
                + id + ")"), e.getMessage());
        assertEquals("migrate", e.command());
        assertInstanceOf(QmpDisconnectedException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("closed by peer"), e.getCause().getMessage());
        assertNotNull(gone.get(2, TimeUnit.SECONDS));
        assertFalse(client.isConnected());
        Threads.assertGone("qmp-reader-web1", Duration.ofSeconds(2));

        QmpDisconnectedException after = assertThrows(QmpDisconnectedException.class, () -> client.execute("query-status"));
        assertTrue(after.getMessage().startsWith("VM 'web1': QMP connection is closed; cannot send 'query-status'"),
                after.getMessage());
    }

    @Test
    void closeFailsPendingCalls() throws Exception {
        connect("web1");
        CompletableFuture<JsonNode> migrate = client.executeAsync("migrate", Map.of("uri", "fd:fd0"));
        JsonNode id = peer.readRequest().get("id");
        client.close();
        QmpDisconnectedException e = assertInstanceOf(QmpDisconnectedException.class, cause(migrate));
        assertTrue(e.getMessage().startsWith("VM 'web1': QMP connection closed while waiting for reply to 'migrate' (id "
                + id + "): QMP connection unix:"), e.getMessage());
        assertTrue(e.getMessage().endsWith("closed by client"), e.getMessage());
        Threads.assertGone("qmp-reader-web1", Duration.ofSeconds(2));
        client.close(); // idempotent
    }

    @Test
    void quitReplyThenShutdownThenEof() throws Exception {
        connect("vm");
        CompletableFuture<Void> quit = CompletableFuture.runAsync(() -> client.commands().quit());
        peer.answer(QUIT.exchange("quit"));
        peer.closeClient(); // the recording ends with EOF
        quit.get(5, TimeUnit.SECONDS);
        QmpException reason = client.whenDisconnected().get(2, TimeUnit.SECONDS);
        assertInstanceOf(QmpDisconnectedException.class, reason);
        QmpEvent shutdown = client.recentEvents().get(0);
        assertEquals("SHUTDOWN", shutdown.name());
        assertEquals("host-qmp-quit", shutdown.dataText("reason"));
    }

    @Test
    void eventWaitsEndWhenTheConnectionEnds() throws Exception {
        connect("web1");
        EventSubscription sub = client.subscribe("STOP");
        CompletableFuture<QmpEvent> wait = CompletableFuture.supplyAsync(() -> sub.await("STOP", Duration.ofSeconds(10)));
        Thread.sleep(50);
        long t0 = System.nanoTime();
        peer.closeClient();
        QmpDisconnectedException e = assertInstanceOf(QmpDisconnectedException.class, cause(wait));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(2));
        assertTrue(e.getMessage().startsWith("VM 'web1': QMP connection closed while waiting for event 'STOP'"), e.getMessage());
    }

    @Test
    void aStuckEventListenerDoesNotStallTheReader() throws Exception {
        connect("vm");
        CountDownLatch release = new CountDownLatch(1);
        List<String> heard = Collections.synchronizedList(new ArrayList<>());
        client.addEventListener(e -> {
            heard.add(e.name());
            try {
                release.await();
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
            }
        });
        CompletableFuture<JsonNode> stop = client.executeAsync("stop", null);
        peer.answer(STATUS.exchange("stop"));
        stop.get(5, TimeUnit.SECONDS);
        CompletableFuture<JsonNode> cont = client.executeAsync("cont", null);
        peer.answer(STATUS.exchange("cont"));
        cont.get(5, TimeUnit.SECONDS);
        CompletableFuture<JsonNode> status = client.executeAsync("query-status", null);
        peer.answer(STATUS.exchange("query-status", 1));
        assertEquals("running", status.get(5, TimeUnit.SECONDS).get("status").asText());
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        while (heard.isEmpty() && System.nanoTime() < until) {
            Thread.sleep(5); // the listener thread may start a little late
        }
        Thread.sleep(50);
        assertEquals(List.of("STOP"), new ArrayList<>(heard), "the listener is still stuck on the first event");
        release.countDown();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        while (heard.size() < 2 && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertEquals(List.of("STOP", "RESUME"), new ArrayList<>(heard));
    }

    @Test
    void asyncCallbacksRunOffTheReaderAndMayBlock() throws Exception {
        connect("vm");
        CompletableFuture<JsonNode> first = client.executeAsync("query-status", null);
        // a dependent stage that itself blocks on another QMP call: must not deadlock the reader
        CompletableFuture<String> chained = first.thenApply(r -> Thread.currentThread().getName() + "|"
                + client.execute("query-status").get("status").asText());
        peer.answer(STATUS.exchange("query-status", 0));
        peer.answer(STATUS.exchange("query-status", 1));
        String[] got = chained.get(5, TimeUnit.SECONDS).split("\\|");
        assertTrue(got[0].startsWith("qmp-callback-vm-"), got[0]);
        assertEquals("running", got[1]);
    }

    @Test
    void blockingCallFromASubscriptionFilterFailsFastInsteadOfDeadlocking() throws Exception {
        connect("vm");
        java.util.concurrent.atomic.AtomicReference<RuntimeException> seen = new java.util.concurrent.atomic.AtomicReference<>();
        client.subscribe(e -> {
            try {
                client.execute("query-status", null, Duration.ofSeconds(10));
            } catch (RuntimeException ex) {
                seen.set(ex);
            }
            return true;
        });
        CompletableFuture<JsonNode> stop = client.executeAsync("stop", null);
        long t0 = System.nanoTime();
        peer.answer(STATUS.exchange("stop"));
        stop.get(5, TimeUnit.SECONDS);
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(2));
        IllegalStateException e = assertInstanceOf(IllegalStateException.class, seen.get());
        assertTrue(e.getMessage().contains("on the QMP reader thread"), e.getMessage());
        peer.readRequest(); // the refused call had already been sent; its reply would be dropped
    }

    record QomGet(String path, String property) {
    }

    record BlockdevFile(String driver, String nodeName, String filename, Boolean readOnly,
                        @JsonProperty("x-explicit") Integer explicit) {
    }

    @Test
    void argumentsFromMapJsonNodeAndRecords() throws Exception {
        connect("vm");
        Transcript.Exchange qomGet = QOM.exchange("qom-get", 0);
        JsonNode recordedArgs = qomGet.requestJson().get("arguments");

        CompletableFuture<JsonNode> a = client.executeAsync("qom-get", Map.of("path", "/machine", "property", "type"));
        assertEquals(recordedArgs, peer.answer(qomGet).get("arguments"));
        assertEquals("pc-i440fx-10.0-machine", a.get(5, TimeUnit.SECONDS).asText());

        CompletableFuture<JsonNode> b = client.executeAsync("qom-get", recordedArgs.deepCopy());
        assertEquals(recordedArgs, peer.answer(qomGet).get("arguments"));
        b.get(5, TimeUnit.SECONDS);

        CompletableFuture<JsonNode> c = client.executeAsync("qom-get", new QomGet("/machine", "type"));
        assertEquals(recordedArgs, peer.answer(qomGet).get("arguments"));
        c.get(5, TimeUnit.SECONDS);

        // records: kebab-case names, nulls left out, @JsonProperty wins
        CompletableFuture<JsonNode> d = client.executeAsync("blockdev-del",
                new BlockdevFile("file", "fdnode", "/dev/fdset/1", true, null));
        JsonNode sent = peer.answer(ERRORS.exchange("blockdev-del")).get("arguments");
        assertEquals(M.readTree("{\"driver\":\"file\",\"node-name\":\"fdnode\",\"filename\":\"/dev/fdset/1\",\"read-only\":true}"), sent);
        assertInstanceOf(QmpCommandException.class, cause(d));

        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> client.executeAsync("qom-get", List.of(1, 2)));
        assertTrue(bad.getMessage().contains("VM 'vm': bad arguments for 'qom-get'"), bad.getMessage());
    }

    @Test
    void oobCommandsUseExecOob() throws Exception {
        connect("vm");
        CompletableFuture<JsonNode> f = client.executeOobAsync("query-yank", null);
        JsonNode req = peer.answer(OOB.exchange("query-yank"));
        assertEquals("query-yank", req.get("exec-oob").asText());
        assertFalse(req.has("execute"));
        assertEquals("chardev", f.get(5, TimeUnit.SECONDS).get(0).get("type").asText());
    }
}

package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.IntNode;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.doppel.qmp.testing.FakeQmpPeer;
import dev.doppel.qmp.testing.Threads;
import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A misbehaving peer (a real unix socket server in the test) must produce a clear, typed error within a bounded
 * time and never leave a reader thread behind. The class-level timeout is the "never stuck" guard.
 */
@Tag("unit")
@Timeout(20)
class QmpBadPeerTest {

    static final Transcript HANDSHAKE = Transcript.load("handshake-oob.jsonl");
    static final Transcript STATUS = Transcript.load("status-stop-cont.jsonl");
    static final String VM = "bad1";
    static final String READER = "qmp-reader-" + VM;

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
        Threads.assertGone(READER, Duration.ofSeconds(2));
    }

    private QmpClient connect() throws Exception {
        client = peer.connect(QmpClientOptions.defaults(VM), HANDSHAKE);
        return client;
    }

    private static Throwable failure(CompletableFuture<?> f, Duration within) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(within.toMillis(), TimeUnit.MILLISECONDS));
        return e.getCause();
    }

    @Test
    void garbageBytesFailTheConnectionWithASnippet() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        peer.readRequest();
        peer.write("\u0001\u0002this is {not json at all\r\n");
        QmpProtocolException e = assertInstanceOf(QmpProtocolException.class, failure(pending, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().startsWith("VM 'bad1': QMP protocol error while waiting for reply to 'query-status' (id "),
                e.getMessage());
        assertTrue(e.getMessage().contains("malformed JSON"), e.getMessage());
        assertTrue(e.getMessage().contains("offending bytes: '\\x01\\x02this is {not json at all'"), e.getMessage());
        assertInstanceOf(QmpProtocolException.class, e.getCause());
        assertInstanceOf(com.fasterxml.jackson.core.JsonProcessingException.class, e.getCause().getCause());
        assertFalse(client.isConnected());
        Threads.assertGone(READER, Duration.ofSeconds(2));
    }

    @Test
    void trailingGarbageAfterAValidMessageIsAProtocolError() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        JsonNode id = peer.readRequest().get("id");
        String reply = STATUS.exchange("query-status").replyFor(id);
        peer.write(reply.replace("\r\n", " trailing\r\n"));
        assertInstanceOf(QmpProtocolException.class, failure(pending, Duration.ofSeconds(3)));
    }

    @Test
    void nonObjectJsonIsAProtocolError() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        peer.readRequest();
        peer.write("[1, 2, 3]\r\n");
        QmpProtocolException e = assertInstanceOf(QmpProtocolException.class, failure(pending, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().contains("expected a JSON object"), e.getMessage());
    }

    @Test
    void halfAMessageThenCloseMentionsThePartialData() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        JsonNode id = peer.readRequest().get("id");
        String reply = STATUS.exchange("query-status").replyFor(id);
        peer.write(reply.substring(0, 20));
        peer.closeClient();
        QmpDisconnectedException e = assertInstanceOf(QmpDisconnectedException.class, failure(pending, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().contains("closed by peer in the middle of a message (20 bytes without end of line: '"
                + reply.substring(0, 20) + "')"), e.getMessage());
        assertTrue(e.getMessage().startsWith("VM 'bad1': QMP connection closed while waiting for reply to 'query-status'"),
                e.getMessage());
    }

    @Test
    void twentyMegabyteLineKillsTheConnectionAtTheLimit() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        peer.readRequest();
        byte[] huge = new byte[20 * 1024 * 1024 + 2];
        Arrays.fill(huge, (byte) 'a');
        huge[huge.length - 2] = '\r';
        huge[huge.length - 1] = '\n';
        long t0 = System.nanoTime();
        CompletableFuture<Void> writing = peer.writeAsync(huge); // blocks once the client stops reading
        QmpProtocolException e = assertInstanceOf(QmpProtocolException.class, failure(pending, Duration.ofSeconds(5)));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
        assertTrue(e.getMessage().contains("message exceeds 10485760 bytes"), e.getMessage());
        assertInstanceOf(QmpProtocolException.class, e.getCause());
        assertTrue(e.getCause().getMessage().startsWith("VM 'bad1': message exceeds 10485760 bytes"), e.getCause().getMessage());
        Threads.assertGone(READER, Duration.ofSeconds(2));
        peer.closeClient();
        try {
            writing.get(5, TimeUnit.SECONDS);
        } catch (ExecutionException expected) {
            // the peer's write fails once the socket is gone
        }
    }

    @Test
    void smallerLimitFromOptions() throws Exception {
        client = peer.connect(QmpClientOptions.defaults(VM).withMaxMessageBytes(4096), HANDSHAKE);
        CompletableFuture<JsonNode> pending = client.executeAsync("query-qmp-schema", null);
        JsonNode id = peer.readRequest().get("id");
        peer.writeAsync(Transcript.load("query-qmp-schema.jsonl").exchange("query-qmp-schema").responseFor(id)
                .getBytes(StandardCharsets.UTF_8)); // fails with EPIPE once the client hangs up
        QmpProtocolException e = assertInstanceOf(QmpProtocolException.class, failure(pending, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().contains("message exceeds 4096 bytes"), e.getMessage());
    }

    @Test
    void silentPeerGivesGreetingTimeout() throws Exception {
        long t0 = System.nanoTime();
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults(VM).withGreetingTimeout(Duration.ofMillis(300)));
        QmpGreetingException e = assertInstanceOf(QmpGreetingException.class, failure(f, Duration.ofSeconds(3)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 290 && ms < 2500, "took " + ms);
        assertTrue(e.getMessage().startsWith("VM 'bad1': no QMP greeting from unix:"), e.getMessage());
        assertTrue(e.getMessage().endsWith("within 300 ms"), e.getMessage());
        Threads.assertGone(READER, Duration.ofSeconds(2));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        while (!peer.clientClosed() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertTrue(peer.clientClosed(), "the client must close its socket");
    }

    @Test
    void firstMessageNotAGreeting() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults(VM));
        peer.write(STATUS.exchange("query-status").replyFor(TextNode.valueOf("rec-2")));
        QmpGreetingException e = assertInstanceOf(QmpGreetingException.class, failure(f, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().startsWith("VM 'bad1': expected the QMP greeting from unix:"), e.getMessage());
        assertTrue(e.getMessage().contains("prelaunch"), e.getMessage());
    }

    @Test
    void garbageInsteadOfGreeting() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults(VM));
        peer.write("SSH-2.0-OpenSSH_9.2\r\n");
        QmpGreetingException e = assertInstanceOf(QmpGreetingException.class, failure(f, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().contains("connection ended before the QMP greeting: malformed JSON"), e.getMessage());
        assertInstanceOf(QmpProtocolException.class, e.getCause());
    }

    @Test
    void closedBeforeGreeting() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults(VM));
        peer.closeClient();
        QmpGreetingException e = assertInstanceOf(QmpGreetingException.class, failure(f, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().contains("connection ended before the QMP greeting: QMP connection unix:"), e.getMessage());
    }

    @Test
    void negotiationErrorIsQmpNegotiationException() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults(VM));
        peer.write(HANDSHAKE.greeting());
        JsonNode id = peer.readRequest().get("id");
        // a recorded error reply (CommandNotFound) in place of the capabilities reply
        peer.write(Transcript.load("errors.jsonl").exchange("no-such-command").replyFor(id));
        QmpNegotiationException e = assertInstanceOf(QmpNegotiationException.class, failure(f, Duration.ofSeconds(3)));
        assertTrue(e.getMessage().contains("rejected: CommandNotFound"), e.getMessage());
        assertEquals("qmp_capabilities", e.command());
        assertInstanceOf(QmpCommandException.class, e.getCause());
    }

    @Test
    void peerClosingDuringNegotiation() throws Exception {
        CompletableFuture<QmpClient> f = peer.connectAsync(QmpClientOptions.defaults(VM));
        peer.write(HANDSHAKE.greeting());
        peer.readRequest();
        peer.closeClient();
        QmpNegotiationException e = assertInstanceOf(QmpNegotiationException.class, failure(f, Duration.ofSeconds(3)));
        assertInstanceOf(QmpDisconnectedException.class, e.getCause());
    }

    @Test
    void unexpectedReplyIdIsDroppedAndNeverDeliveredToTheWrongCaller() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        JsonNode id = peer.readRequest().get("id");
        peer.write(STATUS.exchange("query-status", 0).replyFor(IntNode.valueOf(999)));  // prelaunch, for nobody
        peer.write(STATUS.exchange("query-status", 0).replyFor(TextNode.valueOf("surprise")));
        peer.write(STATUS.exchange("query-status", 0).replyFor(TextNode.valueOf(id.asText())));  // ours, but as a string
        peer.write(STATUS.exchange("query-status", 0).replyFor(IntNode.valueOf(42)));
        Thread.sleep(150);
        assertFalse(pending.isDone(), "an unknown id must not complete a pending call");
        peer.write(STATUS.exchange("query-status", 2).replyFor(id));             // paused, ours
        assertEquals("paused", pending.get(3, TimeUnit.SECONDS).get("status").asText());
        assertTrue(client.isConnected());
    }

    @Test
    void blankLinesAreIgnored() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        JsonNode id = peer.readRequest().get("id");
        peer.write("\r\n\r\n   \r\n" + STATUS.exchange("query-status").replyFor(id));
        assertEquals("prelaunch", pending.get(3, TimeUnit.SECONDS).get("status").asText());
    }

    @Test
    void invalidUtf8IsAProtocolErrorNotAHang() throws Exception {
        connect();
        CompletableFuture<JsonNode> pending = client.executeAsync("query-status", null);
        peer.readRequest();
        byte[] bad = "{\"return\": \"\u00ff\"}\r\n".getBytes(StandardCharsets.ISO_8859_1);
        peer.write(bad);
        assertInstanceOf(QmpProtocolException.class, failure(pending, Duration.ofSeconds(3)));
    }
}

package dev.doppel.vm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Host side of the guest agent's virtio-serial link (newline-delimited JSON; protocol in
 * guest/README.md). Three kinds of guest message arrive: replies to host commands ({@code ok}),
 * events ({@code event}), and calls made by guest programs such as {@code vmfork} ({@code call}),
 * which go to the registered call handler and are answered with {@link #answerCall}.
 */
public final class GuestAgentClient implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(GuestAgentClient.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String vmName;
    /** The current link; replaced by {@link #reconnect} when the VM moves to another QEMU process. */
    private volatile SocketChannel channel;
    /** Links replaced by {@link #reconnect}, still read until their QEMU closes them. */
    private final Set<SocketChannel> draining = ConcurrentHashMap.newKeySet();
    private final Map<Long, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(1);
    private volatile Consumer<JsonNode> callHandler = call -> log.warn("unhandled guest call {}", call);
    private volatile Consumer<JsonNode> eventHandler = event -> { };
    private volatile boolean closed;

    private GuestAgentClient(String vmName, SocketChannel channel) {
        this.vmName = vmName;
        this.channel = channel;
        startReader(channel);
    }

    private void startReader(SocketChannel ch) {
        Thread reader = new Thread(() -> readLoop(ch), "agent-" + vmName);
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Moves the session to another socket: the VM continues in a new QEMU process (fork, reshare,
     * failover). Calls in flight are kept: the guest agent lives on in the snapshot and answers them
     * on the new link, with the same ids.
     */
    public synchronized void reconnect(Path socket) throws IOException {
        SocketChannel next = SocketChannel.open(StandardProtocolFamily.UNIX);
        next.connect(UnixDomainSocketAddress.of(socket));
        SocketChannel old = channel;
        channel = next;
        // The old link is not closed here: a call the guest wrote just before the VM moved may
        // still sit unread in it (the agent never writes a call twice), and closing would drop it.
        // Its reader drains it and closes it when the old QEMU goes away (EOF).
        try {
            old.shutdownOutput();
        } catch (IOException e) {
            log.debug("vm={} previous agent link: {}", vmName, e.getMessage());
        }
        draining.add(old);
        startReader(next);
    }

    /** Connects to the agent chardev socket of a VM (QEMU must be running). */
    public static GuestAgentClient connect(String vmName, Path socket) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        return new GuestAgentClient(vmName, ch);
    }

    public void onCall(Consumer<JsonNode> handler) {
        this.callHandler = handler;
    }

    public void onEvent(Consumer<JsonNode> handler) {
        this.eventHandler = handler;
    }

    /** Sends a command and waits for the guest's reply; fails on {@code ok:false} with the guest's error. */
    public JsonNode command(String name, Map<String, Object> arguments, Duration timeout) throws IOException, TimeoutException {
        long id = nextId.getAndIncrement();
        ObjectNode msg = MAPPER.valueToTree(arguments == null ? Map.of() : arguments);
        msg.put("id", id);
        msg.put("cmd", name);
        CompletableFuture<JsonNode> reply = new CompletableFuture<>();
        pending.put(id, reply);
        try {
            send(msg);
            JsonNode r = reply.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (!r.path("ok").asBoolean(false)) {
                throw new IOException("VM '" + vmName + "': guest agent command '" + name + "' failed: " + r.path("error").asText("?"));
            }
            return r;
        } catch (ExecutionException e) {
            throw new IOException("VM '" + vmName + "': guest agent command '" + name + "': " + e.getCause().getMessage(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (TimeoutException e) {
            throw new TimeoutException("VM '" + vmName + "': guest agent did not answer '" + name + "' within " + timeout.toMillis() + " ms");
        } finally {
            pending.remove(id);
        }
    }

    /** Answers a guest call (id from the call) with a result value. */
    public void answerCall(long id, Object result) throws IOException {
        ObjectNode msg = MAPPER.createObjectNode();
        msg.put("id", id);
        msg.set("result", MAPPER.valueToTree(result));
        send(msg);
    }

    /** Answers a guest call with an error. */
    public void failCall(long id, String error) throws IOException {
        ObjectNode msg = MAPPER.createObjectNode();
        msg.put("id", id);
        msg.put("error", error);
        send(msg);
    }

    private synchronized void send(JsonNode msg) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap((MAPPER.writeValueAsString(msg) + "\n").getBytes(StandardCharsets.UTF_8));
        while (buf.hasRemaining()) {
            channel.write(buf);
        }
    }

    private void readLoop(SocketChannel ch) {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                dispatch(line);
            }
        } catch (IOException e) {
            if (!closed) {
                log.debug("vm={} agent link closed: {}", vmName, e.getMessage());
            }
        } finally {
            draining.remove(ch);
            // A link replaced by reconnect() ends quietly: its calls are answered on the new one.
            if (ch == channel) {
                IOException gone = new IOException("guest agent link of VM '" + vmName + "' closed");
                pending.values().forEach(f -> f.completeExceptionally(gone));
            }
        }
    }

    private void dispatch(String line) {
        JsonNode msg;
        try {
            msg = MAPPER.readTree(line);
        } catch (IOException e) {
            log.warn("vm={} agent sent malformed line, dropped: {}", vmName, line.length() > 200 ? line.substring(0, 200) : line);
            return;
        }
        if (msg.has("call")) {
            callHandler.accept(msg);
        } else if (msg.has("event")) {
            eventHandler.accept(msg);
        } else if (msg.has("ok") && msg.has("id")) {
            CompletableFuture<JsonNode> f = pending.get(msg.get("id").asLong());
            if (f != null) {
                f.complete(msg);
            } else {
                log.warn("vm={} agent reply with unknown id dropped: {}", vmName, line);
            }
        } else {
            log.warn("vm={} agent message of unknown kind dropped: {}", vmName, line);
        }
    }

    @Override
    public void close() {
        closed = true;
        List<SocketChannel> all = new ArrayList<>(draining);
        all.add(channel);
        for (SocketChannel ch : all) {
            try {
                ch.close();
            } catch (IOException e) {
                log.debug("vm={} closing agent link: {}", vmName, e.getMessage());
            }
        }
    }
}

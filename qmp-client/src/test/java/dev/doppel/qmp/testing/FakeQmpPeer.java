package dev.doppel.qmp.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpClientOptions;
import dev.doppel.qmp.transport.TcpTransport;
import dev.doppel.qmp.transport.UnixSocketTransport;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A scripted QMP server on a real unix socket: the test thread plays QEMU's side (write recorded bytes, read
 * the client's requests) while the client under test connects through {@link UnixSocketTransport}. Every
 * blocking method has a timeout so a broken client cannot hang a test.
 */
public final class FakeQmpPeer implements AutoCloseable {

    private static final ObjectMapper M = new ObjectMapper();

    private final Path socketPath;
    private final ServerSocketChannel server;
    private final CompletableFuture<SocketChannel> accepted = new CompletableFuture<>();
    private final LinkedBlockingQueue<String> requests = new LinkedBlockingQueue<>();
    private volatile boolean clientClosed;
    private Thread autoReplier;

    private FakeQmpPeer(Path socketPath) throws IOException {
        this.socketPath = socketPath;
        if (socketPath != null) {
            Files.deleteIfExists(socketPath);
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(socketPath));
        } else {
            server = ServerSocketChannel.open(StandardProtocolFamily.INET);
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        }
        Thread t = new Thread(this::acceptAndRead, "fake-qmp-peer");
        t.setDaemon(true);
        t.start();
    }

    /** Listens on {@code dir/peer.sock}. */
    public static FakeQmpPeer start(Path dir) throws IOException {
        return new FakeQmpPeer(dir.resolve("peer.sock"));
    }

    /** Listens on TCP 127.0.0.1 (ephemeral port). */
    public static FakeQmpPeer startTcp() throws IOException {
        return new FakeQmpPeer(null);
    }

    public Path socketPath() {
        return socketPath;
    }

    /** The TCP port (TCP peers only). */
    public int port() {
        try {
            return ((InetSocketAddress) server.getLocalAddress()).getPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void acceptAndRead() {
        try {
            SocketChannel c = server.accept();
            accepted.complete(c);
            ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
            ByteArrayOutputStream line = new ByteArrayOutputStream();
            while (c.read(buf) >= 0) {
                buf.flip();
                while (buf.hasRemaining()) {
                    byte b = buf.get();
                    if (b == '\n') {
                        requests.add(line.toString(StandardCharsets.UTF_8));
                        line.reset();
                    } else {
                        line.write(b);
                    }
                }
                buf.clear();
            }
        } catch (IOException e) {
            accepted.completeExceptionally(e);
        } finally {
            clientClosed = true;
        }
    }

    /** Starts {@code QmpClient.connect} on another thread (it blocks until the handshake is played). */
    public CompletableFuture<QmpClient> connectAsync(QmpClientOptions options) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return QmpClient.connect(socketPath != null ? UnixSocketTransport.connect(socketPath)
                        : TcpTransport.connect("127.0.0.1", port(), Duration.ofSeconds(5)), options);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /**
     * Connects a client and plays the recorded greeting + {@code qmp_capabilities} reply of {@code handshake}
     * (e.g. {@code handshake-oob.jsonl}).
     */
    public QmpClient connect(QmpClientOptions options, Transcript handshake) throws Exception {
        CompletableFuture<QmpClient> f = connectAsync(options);
        write(handshake.greeting());
        answer(handshake.exchange("qmp_capabilities"));
        return f.get(5, TimeUnit.SECONDS);
    }

    private SocketChannel channel() {
        try {
            return accepted.get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("no client connected to the fake peer within 5 s", e);
        }
    }

    /** Writes raw bytes to the client. */
    public void write(String raw) throws IOException {
        write(raw.getBytes(StandardCharsets.UTF_8));
    }

    public synchronized void write(byte[] bytes) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        SocketChannel c = channel();
        while (b.hasRemaining()) {
            c.write(b);
        }
    }

    /** Writes on a background thread (for writes that may block because the client stops reading). */
    public CompletableFuture<Void> writeAsync(byte[] bytes) {
        return CompletableFuture.runAsync(() -> {
            try {
                write(bytes);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** Writes {@code raw} in chunks of {@code chunk} bytes with a flush-sized pause between (framing tests). */
    public void writeInChunks(String raw, int chunk) throws IOException, InterruptedException {
        byte[] all = raw.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < all.length; i += chunk) {
            byte[] part = new byte[Math.min(chunk, all.length - i)];
            System.arraycopy(all, i, part, 0, part.length);
            write(part);
            Thread.sleep(0, 200_000);
        }
    }

    /** The next request line from the client, parsed; fails if none within 5 s. */
    public JsonNode readRequest() throws Exception {
        return readRequest(Duration.ofSeconds(5));
    }

    public JsonNode readRequest(Duration timeout) throws Exception {
        String line = requests.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (line == null) {
            throw new AssertionError("fake peer: no request from the client within " + timeout);
        }
        return M.readTree(line);
    }

    /** The next request line, or null if none arrives within {@code timeout}. */
    public String pollRequestLine(Duration timeout) throws InterruptedException {
        return requests.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * Reads the client's next request, checks it is {@code exchange}'s command, and writes the recorded
     * responses with the client's id substituted. Returns the request.
     */
    public JsonNode answer(Transcript.Exchange exchange) throws Exception {
        JsonNode req = readRequest();
        String cmd = req.has("execute") ? req.get("execute").asText() : req.path("exec-oob").asText();
        if (!cmd.equals(exchange.command())) {
            throw new AssertionError("fake peer: expected '" + exchange.command() + "', client sent " + req);
        }
        write(exchange.responseFor(req.get("id")));
        return req;
    }

    /**
     * Answers every further request in the background from the recorded exchanges of {@code transcripts}, by
     * command name (the n-th request for a command gets the n-th recording, the last one repeating).
     */
    public void autoReply(Transcript... transcripts) {
        Map<String, List<Transcript.Exchange>> byCommand = new HashMap<>();
        for (Transcript t : transcripts) {
            for (Transcript.Exchange x : t.exchanges()) {
                if (x.command() != null) {
                    byCommand.computeIfAbsent(x.command(), k -> new ArrayList<>()).add(x);
                }
            }
        }
        Map<String, Integer> used = new HashMap<>();
        autoReplier = new Thread(() -> {
            try {
                while (!Thread.currentThread().isInterrupted()) {
                    String line = requests.poll(100, TimeUnit.MILLISECONDS);
                    if (line == null) {
                        if (clientClosed) {
                            return;
                        }
                        continue;
                    }
                    JsonNode req = M.readTree(line);
                    String cmd = req.has("execute") ? req.get("execute").asText() : req.path("exec-oob").asText();
                    List<Transcript.Exchange> xs = byCommand.get(cmd);
                    if (xs == null) {
                        throw new AssertionError("fake peer: no recording for " + cmd);
                    }
                    int n = used.merge(cmd, 1, Integer::sum) - 1;
                    write(xs.get(Math.min(n, xs.size() - 1)).responseFor(req.get("id")));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (IOException e) {
                // client gone
            }
        }, "fake-qmp-autoreply");
        autoReplier.setDaemon(true);
        autoReplier.start();
    }

    /** Half-closes: the client sees EOF. */
    public void shutdownOutput() throws IOException {
        channel().shutdownOutput();
    }

    /** Closes the client connection. */
    public void closeClient() throws IOException {
        channel().close();
    }

    /** True once the client closed its side (the peer's reader saw EOF). */
    public boolean clientClosed() {
        return clientClosed;
    }

    @Override
    public void close() throws IOException {
        if (autoReplier != null) {
            autoReplier.interrupt();
        }
        if (accepted.isDone() && !accepted.isCompletedExceptionally()) {
            accepted.join().close();
        }
        server.close();
        if (socketPath != null) {
            Files.deleteIfExists(socketPath);
        }
    }
}

package dev.doppel.remus.testbed;

import dev.doppel.hostnet.HostSockets;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The client side of Remus's promise, against the guest's {@code kvserver}: PUTs as fast as a
 * window of outstanding requests allows and records every PUT whose {@code OK} it received (the
 * acknowledged set), with the send and receive times of each. After a failover the same client
 * checks that every acknowledged key is present with its value ({@link #verify}).
 *
 * <p>One connection; requests are pipelined (the server answers in order), because with output
 * commit every reply waits for the end of its epoch: one request at a time would measure the epoch
 * length, not the system.
 */
public final class KvClient implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvClient.class);

    /**
     * An acknowledged PUT: the key, its value, when the request left and the reply arrived (nanoTime), and
     * the server's PUT sequence number from the reply ({@code OK <seq>}; -1 if it had none).
     */
    public record Ack(String key, String value, long sentNanos, long ackedNanos, long seq) {
    }

    private record Pending(String key, String value, long sentNanos) {
    }

    private final HostSockets host;
    private final InetSocketAddress server;
    private final String prefix;
    private final int window;
    private final List<Ack> acks = Collections.synchronizedList(new ArrayList<>());
    private final AtomicLong sent = new AtomicLong();
    private volatile Socket socket;
    private volatile boolean running;
    private volatile Throwable connectionFailure;
    private Thread writer;
    private Thread reader;

    public KvClient(HostSockets host, InetSocketAddress server, String prefix, int window) {
        this.host = host;
        this.server = server;
        this.prefix = prefix;
        this.window = window;
    }

    /** Connects (retrying until {@code timeout}: the guest may still be starting its server). */
    public void connect(Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        IOException last = null;
        while (System.nanoTime() < deadline) {
            try {
                Socket s = host.connect(server, Duration.ofSeconds(2));
                s.setTcpNoDelay(true);
                socket = s;
                return;
            } catch (IOException e) {
                last = e;
                Thread.sleep(200);
            }
        }
        throw new IOException("kvserver at " + server + " not reachable within " + timeout.toSeconds() + " s", last);
    }

    /** Starts PUTting in the background until {@link #stopPuts()} or the connection breaks. */
    public void startPuts() throws IOException {
        Socket s = socket;
        BlockingQueue<Pending> inFlight = new ArrayBlockingQueue<>(window);
        OutputStream out = s.getOutputStream();
        BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
        running = true;
        writer = new Thread(() -> {
            try {
                for (long n = 1; running; n++) {
                    String key = prefix + "-" + n;
                    String value = "v" + n + "-" + Long.toHexString(System.nanoTime());
                    Pending p = new Pending(key, value, System.nanoTime());
                    while (running && !inFlight.offer(p, 100, TimeUnit.MILLISECONDS)) {
                        // window full
                    }
                    if (!running) {
                        break;
                    }
                    out.write(("PUT " + key + " " + value + "\n").getBytes(StandardCharsets.US_ASCII));
                    sent.incrementAndGet();
                }
            } catch (IOException | InterruptedException e) {
                connectionFailure = e;
            }
        }, "kv-put-" + prefix);
        reader = new Thread(() -> {
            try {
                String line;
                while ((line = in.readLine()) != null) {
                    long now = System.nanoTime();
                    Pending p = inFlight.poll();
                    if (p == null) {
                        throw new IOException("reply '" + line + "' without a request");
                    }
                    if (!line.startsWith("OK ")) {
                        throw new IOException("PUT " + p.key() + " answered '" + line + "'");
                    }
                    acks.add(new Ack(p.key(), p.value(), p.sentNanos(), now, serverSeq(line)));
                }
                connectionFailure = new IOException("connection closed by the server");
            } catch (IOException e) {
                if (running) {
                    connectionFailure = e;
                }
            }
        }, "kv-ack-" + prefix);
        writer.setDaemon(true);
        reader.setDaemon(true);
        writer.start();
        reader.start();
    }

    private static long serverSeq(String okLine) {
        try {
            return Long.parseLong(okLine.substring(3).trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** Stops sending; replies still in flight keep arriving until {@link #close()}. */
    public void stopPuts() {
        running = false;
    }

    /** Waits until the acknowledged count passes {@code n} or {@code timeout}; returns the count. */
    public int awaitAcks(int n, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (acks.size() < n && System.nanoTime() < deadline && connectionFailure == null) {
            Thread.sleep(20);
        }
        return acks.size();
    }

    public List<Ack> acks() {
        synchronized (acks) {
            return List.copyOf(acks);
        }
    }

    public long sent() {
        return sent.get();
    }

    /** Why the connection broke, or null while it works. */
    public Throwable connectionFailure() {
        return connectionFailure;
    }

    /**
     * After a failover: waits for the PUT stream's connection to carry replies again (it survived
     * if the acknowledged count grows within {@code timeout}).
     */
    public boolean connectionSurvives(Duration timeout) throws InterruptedException {
        int before = acks.size();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (acks.size() > before) {
                return true;
            }
            if (connectionFailure != null) {
                return false;
            }
            Thread.sleep(20);
        }
        return false;
    }

    /** The outcome of checking acknowledged keys: those missing or with another value. */
    public record Verification(int checked, List<String> missing, List<String> wrong) {
        public boolean ok() {
            return missing.isEmpty() && wrong.isEmpty();
        }
    }

    /** GETs every acknowledged key over a new connection; everything must be there with its value. */
    public static Verification verify(HostSockets host, InetSocketAddress server, List<Ack> acked, Duration timeout)
            throws IOException, InterruptedException {
        KvClient c = new KvClient(host, server, "verify", 1);
        c.connect(timeout);
        List<String> missing = new ArrayList<>();
        List<String> wrong = new ArrayList<>();
        try (Socket s = c.socket) {
            s.setSoTimeout((int) timeout.toMillis());
            OutputStream out = s.getOutputStream();
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            int batch = 256;
            for (int i = 0; i < acked.size(); i += batch) {
                List<Ack> part = acked.subList(i, Math.min(acked.size(), i + batch));
                StringBuilder req = new StringBuilder();
                part.forEach(a -> req.append("GET ").append(a.key()).append('\n'));
                out.write(req.toString().getBytes(StandardCharsets.US_ASCII));
                for (Ack a : part) {
                    String line = in.readLine();
                    if (line == null) {
                        throw new IOException("kvserver closed the connection during verification");
                    }
                    if (line.equals("MISSING")) {
                        missing.add(a.key());
                    } else if (!line.equals("VALUE " + a.value())) {
                        wrong.add(a.key() + " (got '" + line + "')");
                    }
                }
            }
        }
        log.info("kv verify: {} acknowledged keys checked, {} missing, {} wrong", acked.size(), missing.size(), wrong.size());
        return new Verification(acked.size(), missing, wrong);
    }

    @Override
    public void close() {
        running = false;
        Socket s = socket;
        if (s != null) {
            try {
                s.close();
            } catch (IOException e) {
                log.debug("kv client close: {}", e.toString());
            }
        }
    }
}

package dev.doppel.vm.qga;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Host side of the standard QEMU guest agent ({@code qemu-ga}, Debian's {@code qemu-guest-agent})
 * on a VM's {@code org.qemu.guest_agent.0} virtio-serial port, as a chardev unix socket. Unlike
 * Doppel's own agent ({@link dev.doppel.vm.GuestAgentClient}) this protocol has no ids: the agent
 * answers one command at a time, in order, so this client sends one command at a time too
 * (methods are synchronized) and reads exactly one answer.
 *
 * <p>Bytes written before the agent opened its port wait in QEMU's socket and reach the agent when
 * it starts, and answers to a command whose caller gave up arrive later. So before the first command
 * and after any timeout the client resynchronises with {@code guest-sync-delimited} (0xFF first, to
 * reset the agent's parser; the agent puts 0xFF before that answer; everything before the answer
 * carrying our random id is dropped). Shapes follow QEMU's {@code qga/qapi-schema.json}.
 */
public final class QgaClient implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(QgaClient.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();
    /** The port name qemu-ga opens under /dev/virtio-ports (and Debian's unit waits for). */
    public static final String PORT_NAME = "org.qemu.guest_agent.0";
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);

    private final String vm;
    private final QgaWire wire;
    private boolean synced;

    private QgaClient(String vm, QgaWire wire) {
        this.vm = vm;
        this.wire = wire;
    }

    /** Connects to the agent's chardev socket (QEMU must be running; the guest need not be). */
    public static QgaClient connect(String vm, Path socket) throws QgaException {
        try {
            return new QgaClient(vm, QgaWire.connect(socket));
        } catch (IOException e) {
            throw new QgaException(vm, "connect", socket + ": " + e.getMessage(), e);
        }
    }

    /**
     * Connects and waits until the agent answers {@code guest-ping} (the guest has booted far enough
     * to start {@code qemu-guest-agent}). {@code progress} gets the time waited, about every 5 s.
     *
     * @throws QgaException.Timeout if the agent does not answer within {@code timeout}
     */
    public static QgaClient awaitAgent(String vm, Path socket, Duration timeout, Consumer<Duration> progress) throws QgaException {
        long start = System.nanoTime();
        long end = start + timeout.toNanos();
        long nextReport = start + Duration.ofSeconds(5).toNanos();
        QgaClient client = null;
        try {
            while (true) {
                if (client == null && Files.exists(socket)) {
                    client = connect(vm, socket);
                }
                if (client != null) {
                    try {
                        client.sync(Duration.ofSeconds(2));
                        client.ping(Duration.ofSeconds(5));
                        return client;
                    } catch (QgaException.Timeout e) {
                        log.debug("vm={} guest agent not answering yet", vm);
                    }
                } else {
                    sleep(200);
                }
                long now = System.nanoTime();
                if (now > end) {
                    throw new QgaException.Timeout(vm, "guest-ping", timeout.toMillis());
                }
                if (now > nextReport) {
                    progress.accept(Duration.ofNanos(now - start));
                    nextReport = now + Duration.ofSeconds(5).toNanos();
                }
            }
        } catch (QgaException | RuntimeException e) {
            if (client != null) {
                client.close();
            }
            throw e;
        }
    }

    /**
     * {@code guest-sync-delimited}: after it, the next object read answers the next command sent.
     *
     * @throws QgaException.Timeout if no answer with our id arrives (the agent is not running)
     */
    public synchronized void sync(Duration timeout) throws QgaException {
        long id = ThreadLocalRandom.current().nextLong(1, Integer.MAX_VALUE);
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            wire.discardBuffered();
            wire.write(new byte[] {(byte) QgaWire.DELIMITER});
            wire.write(request("guest-sync-delimited", Map.of("id", id)));
            while (true) {
                // The agent answers our lone 0xFF with a parse error (no delimiter before it) and
                // earlier syncs with their own ids: only the answer with our id counts.
                if (!wire.skipToDelimiter(deadline)) {
                    throw new QgaException.Timeout(vm, "guest-sync-delimited", timeout.toMillis());
                }
                byte[] obj = wire.readObject(deadline);
                if (obj == null) {
                    throw new QgaException.Timeout(vm, "guest-sync-delimited", timeout.toMillis());
                }
                JsonNode answer = MAPPER.readTree(obj);
                if (answer.path("return").asLong(-1) == id) {
                    synced = true;
                    return;
                }
                log.debug("vm={} guest agent: stale answer dropped while syncing: {}", vm, answer);
            }
        } catch (QgaException e) {
            throw e;
        } catch (IOException e) {
            throw new QgaException(vm, "guest-sync-delimited", e.getMessage(), e);
        }
    }

    /**
     * Runs one command and returns its {@code return} value.
     *
     * @throws QgaException.CommandError the agent answered with an error
     * @throws QgaException.Timeout      no answer in time (the link is resynchronised before the next command)
     */
    public synchronized JsonNode execute(String command, Map<String, ?> arguments, Duration timeout) throws QgaException {
        if (!synced) {
            sync(timeout);
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            wire.write(request(command, arguments));
            byte[] obj = wire.readObject(deadline);
            if (obj == null) {
                synced = false; // its answer may still come; the next command syncs past it
                throw new QgaException.Timeout(vm, command, timeout.toMillis());
            }
            JsonNode answer = MAPPER.readTree(obj);
            if (answer.has("error")) {
                JsonNode err = answer.get("error");
                throw new QgaException.CommandError(vm, command, err.path("class").asText("?"), err.path("desc").asText("?"));
            }
            if (!answer.has("return")) {
                synced = false;
                throw new QgaException(vm, command, "answer without return or error: " + answer);
            }
            return answer.get("return");
        } catch (QgaException e) {
            throw e;
        } catch (IOException e) {
            synced = false;
            throw new QgaException(vm, command, e.getMessage(), e);
        }
    }

    private static byte[] request(String command, Map<String, ?> arguments) throws IOException {
        ObjectNode msg = MAPPER.createObjectNode();
        msg.put("execute", command);
        if (arguments != null && !arguments.isEmpty()) {
            msg.set("arguments", MAPPER.valueToTree(arguments));
        }
        return (MAPPER.writeValueAsString(msg) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    /** {@code guest-ping}: the agent is alive. */
    public void ping(Duration timeout) throws QgaException {
        execute("guest-ping", null, timeout);
    }

    /** {@code guest-exec}: starts {@code path} with {@code args} in the guest; returns its pid. */
    public long exec(String path, List<String> args, boolean captureOutput) throws QgaException {
        return exec(path, args, captureOutput, null);
    }

    /**
     * {@code guest-exec} with {@code input} (may be null) as the program's standard input: the agent
     * writes it to a pipe and closes the pipe, so the program reads exactly these bytes, then EOF.
     * Input never appears on a command line (where other guest processes could read it).
     */
    public long exec(String path, List<String> args, boolean captureOutput, byte[] input) throws QgaException {
        Map<String, Object> a = new java.util.LinkedHashMap<>();
        a.put("path", path);
        a.put("arg", args);
        a.put("capture-output", captureOutput);
        if (input != null) {
            a.put("input-data", Base64.getEncoder().encodeToString(input));
        }
        return execute("guest-exec", a, DEFAULT_TIMEOUT).path("pid").asLong();
    }

    /** {@code guest-exec-status} of a pid from {@link #exec}; output is decoded from base64. */
    public ExecStatus execStatus(long pid) throws QgaException {
        JsonNode r = execute("guest-exec-status", Map.of("pid", pid), DEFAULT_TIMEOUT);
        return new ExecStatus(r.path("exited").asBoolean(false),
                r.has("exitcode") ? r.get("exitcode").asInt() : null,
                r.has("signal") ? r.get("signal").asInt() : null,
                decode(r.path("out-data").asText("")), decode(r.path("err-data").asText("")),
                r.path("out-truncated").asBoolean(false) || r.path("err-truncated").asBoolean(false));
    }

    /**
     * Runs a program in the guest to its end and returns its status and output.
     *
     * @throws QgaException.Timeout if it has not exited within {@code timeout} (it keeps running)
     */
    public ExecStatus run(Duration timeout, String path, String... args) throws QgaException {
        return runWithInput(timeout, null, path, args);
    }

    /** {@link #run} with {@code input} (may be null) on the program's standard input. */
    public ExecStatus runWithInput(Duration timeout, byte[] input, String path, String... args) throws QgaException {
        long pid = exec(path, List.of(args), true, input);
        long end = System.nanoTime() + timeout.toNanos();
        long pollMs = 20;
        while (true) {
            ExecStatus s = execStatus(pid);
            if (s.exited()) {
                return s;
            }
            if (System.nanoTime() > end) {
                throw new QgaException.Timeout(vm, "guest-exec of " + path + " (pid " + pid + ")", timeout.toMillis());
            }
            sleep(pollMs);
            pollMs = Math.min(200, pollMs * 2);
        }
    }

    /** {@code guest-set-time} to {@code time} (e.g. the host's clock after a fork or a failover). */
    public void setTime(Instant time) throws QgaException {
        long ns = Math.addExact(Math.multiplyExact(time.getEpochSecond(), 1_000_000_000L), time.getNano());
        execute("guest-set-time", Map.of("time", ns), DEFAULT_TIMEOUT);
    }

    /** {@code guest-get-host-name}. */
    public String hostName() throws QgaException {
        return execute("guest-get-host-name", null, DEFAULT_TIMEOUT).path("host-name").asText();
    }

    /** {@code guest-network-get-interfaces}: every interface with its MAC and addresses. */
    public List<NetworkInterface> networkInterfaces() throws QgaException {
        List<NetworkInterface> out = new ArrayList<>();
        for (JsonNode n : execute("guest-network-get-interfaces", null, DEFAULT_TIMEOUT)) {
            List<IpAddress> addrs = new ArrayList<>();
            for (JsonNode a : n.path("ip-addresses")) {
                addrs.add(new IpAddress(a.path("ip-address-type").asText(), a.path("ip-address").asText(), a.path("prefix").asInt()));
            }
            out.add(new NetworkInterface(n.path("name").asText(), n.path("hardware-address").asText(null), addrs));
        }
        return out;
    }

    private static byte[] decode(String base64) {
        return base64.isEmpty() ? new byte[0] : Base64.getDecoder().decode(base64);
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    @Override
    public void close() {
        try {
            wire.close();
        } catch (IOException e) {
            log.debug("vm={} closing guest agent link: {}", vm, e.getMessage());
        }
    }

    /**
     * What {@code guest-exec-status} says of a program.
     *
     * @param exitCode  null while running or when killed by a signal
     * @param signal    the signal that ended it, or null
     * @param truncated the agent cut the captured output (16 MiB)
     */
    public record ExecStatus(boolean exited, Integer exitCode, Integer signal, byte[] out, byte[] err, boolean truncated) {
        public String stdout() {
            return new String(out, StandardCharsets.UTF_8);
        }

        public String stderr() {
            return new String(err, StandardCharsets.UTF_8);
        }

        public boolean succeeded() {
            return exited && exitCode != null && exitCode == 0;
        }
    }

    /** An interface as the guest sees it; {@code mac} may be null (e.g. for lo on some agents). */
    public record NetworkInterface(String name, String mac, List<IpAddress> addresses) {
    }

    /** @param type {@code ipv4} or {@code ipv6} */
    public record IpAddress(String type, String address, int prefix) {
    }
}

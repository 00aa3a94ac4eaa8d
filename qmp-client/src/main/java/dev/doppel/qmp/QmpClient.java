package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.doppel.qmp.commands.QemuCommands;
import dev.doppel.qmp.connection.QmpConnection;
import dev.doppel.qmp.connection.QmpJson;
import dev.doppel.qmp.connection.StreamQmpConnection;
import dev.doppel.qmp.schema.QmpSchema;
import dev.doppel.qmp.transport.QmpTransport;
import dev.doppel.qmp.transport.TcpTransport;
import dev.doppel.qmp.transport.UnixSocketTransport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * A QMP client for one QEMU monitor: greeting, capabilities negotiation, command execution with id routing,
 * events. It sits on a {@link QmpConnection} (framing, JSON, reader thread) which sits on a
 * {@link QmpTransport} (bytes and fds).
 *
 * <h2>Threads</h2>
 * <ul>
 *   <li>{@code qmp-reader-<vm>} (daemon) reads every message, completes the matching call and fans events out.
 *       It never runs user code except event subscription filters (keep those cheap).</li>
 *   <li>{@code qmp-events-<vm>} runs {@link #addEventListener event listeners}, in arrival order.</li>
 *   <li>{@code qmp-callback-<vm>-N} complete the futures returned by {@code executeAsync}, so a dependent stage
 *       that blocks (even one calling {@link #execute}) cannot stall the reader.</li>
 * </ul>
 * Blocking {@code execute*} methods wait on the caller's thread. All methods are thread safe.
 *
 * <h2>Failures</h2>
 * Every exception is a {@link QmpException} naming the VM and the command or phase: connect
 * ({@link QmpConnectException}), greeting ({@link QmpGreetingException}), negotiation
 * ({@link QmpNegotiationException}), an error reply ({@link QmpCommandException}), a timeout
 * ({@link QmpTimeoutException}: the call is abandoned and its late reply dropped), the connection ending
 * ({@link QmpDisconnectedException}, or {@link QmpProtocolException} when the peer broke framing). Replies whose
 * id matches no pending call are logged at WARN and dropped, never handed to another caller. Reconnecting is
 * explicit: make a new client.
 */
public final class QmpClient implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(QmpClient.class);
    private static final int ABANDONED_MEMORY = 1024;
    private static final Duration CONNECT_RETRY_PAUSE = Duration.ofMillis(20);

    private record PendingCall(int id, String command, CompletableFuture<JsonNode> future) {
    }

    private final QmpConnection connection;
    private final QmpClientOptions options;
    private final String vm;
    private final EventHub events;
    private final Map<Integer, PendingCall> pending = new ConcurrentHashMap<>();
    private final CallIds ids = new CallIds();
    private final Object stateLock = new Object();
    private volatile QmpException closedReason;
    private final CompletableFuture<QmpGreeting> greetingFuture = new CompletableFuture<>();
    private volatile boolean greetingSeen;
    private final CompletableFuture<QmpException> disconnected = new CompletableFuture<>();
    private volatile QmpGreeting greeting;
    private volatile boolean oobEnabled;
    private volatile QmpSchema schema;
    private final Object schemaLock = new Object();
    /** Calls given up before their reply (id to command), to name them when the late reply comes. */
    private final Map<Integer, String> abandoned = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, String> eldest) {
            return size() > ABANDONED_MEMORY;
        }
    };
    private final ThreadPoolExecutor callbackExecutor;
    private final Semaphore fdCommandLock = new Semaphore(1);
    private final QemuCommands commands;

    private QmpClient(QmpConnection connection, QmpClientOptions options) {
        this.connection = connection;
        this.options = options;
        this.vm = options.vmName();
        this.events = new EventHub(vm, options.eventBacklogSize());
        AtomicInteger n = new AtomicInteger();
        this.callbackExecutor = new ThreadPoolExecutor(0, Integer.MAX_VALUE, 10, TimeUnit.SECONDS,
                new SynchronousQueue<>(), r -> {
            Thread t = new Thread(r, "qmp-callback-" + vm + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.commands = new QemuCommands(this, options.defaultTimeout());
    }

    // ------------------------------------------------------------------------------------------------ connect

    /**
     * Reads the greeting from {@code transport}, negotiates capabilities (requesting {@code oob} when offered and
     * {@link QmpClientOptions#enableOob()}), and returns a ready client. Events that arrive during this are kept
     * in the backlog (see {@link #subscribeSince}).
     *
     * @throws QmpGreetingException    no greeting within {@link QmpClientOptions#greetingTimeout()}, or not one
     * @throws QmpNegotiationException {@code qmp_capabilities} failed
     */
    public static QmpClient connect(QmpTransport transport, QmpClientOptions options) {
        return connect(new StreamQmpConnection(transport, options.vmName(), options.maxMessageBytes()), options);
    }

    /** Same as {@link #connect(QmpTransport, QmpClientOptions)} over any message-level connection. */
    public static QmpClient connect(QmpConnection connection, QmpClientOptions options) {
        QmpClient client = new QmpClient(connection, options);
        try {
            client.handshake();
            return client;
        } catch (RuntimeException e) {
            client.connection.close(new QmpDisconnectedException(options.vmName(), null,
                    "QMP connection abandoned during connect: " + e.getMessage(), e));
            client.callbackExecutor.shutdown();
            throw e;
        }
    }

    /**
     * Connects to a unix socket QMP monitor ({@code -qmp unix:PATH,server=on,wait=off}), retrying while the
     * socket does not exist yet or refuses (QEMU still starting) until {@code timeout}, then connects with
     * default options.
     *
     * @throws QmpConnectException if no connection could be made before the deadline
     */
    public static QmpClient connectUnix(Path socket, String vmName, Duration timeout) {
        return connectUnix(socket, QmpClientOptions.defaults(vmName), timeout);
    }

    /** {@link #connectUnix(Path, String, Duration)} with explicit options. */
    public static QmpClient connectUnix(Path socket, QmpClientOptions options, Duration timeout) {
        String vmName = options.vmName();
        QmpTransport t = retryConnect(vmName, "unix:" + socket, timeout, () -> UnixSocketTransport.connect(socket));
        return connect(t, options);
    }

    /** Connects to a TCP QMP monitor, retrying until {@code timeout}. No fd passing over TCP. */
    public static QmpClient connectTcp(String host, int port, String vmName, Duration timeout) {
        return connectTcp(host, port, QmpClientOptions.defaults(vmName), timeout);
    }

    /** {@link #connectTcp(String, int, String, Duration)} with explicit options. */
    public static QmpClient connectTcp(String host, int port, QmpClientOptions options, Duration timeout) {
        QmpTransport t = retryConnect(options.vmName(), "tcp:" + host + ":" + port, timeout,
                () -> TcpTransport.connect(host, port, Duration.ofSeconds(2)));
        return connect(t, options);
    }

    private interface Connector {
        QmpTransport connect() throws IOException;
    }

    private static QmpTransport retryConnect(String vmName, String where, Duration timeout, Connector c) {
        long deadline = System.nanoTime() + timeout.toNanos();
        int attempts = 0;
        while (true) {
            attempts++;
            try {
                return c.connect();
            } catch (IOException e) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new QmpConnectException(vmName, null, "could not connect to QMP at " + where + " within "
                            + timeout.toMillis() + " ms (" + attempts + " attempts): " + e.getMessage(), e);
                }
                try {
                    Thread.sleep(Math.max(1, Math.min(CONNECT_RETRY_PAUSE.toMillis(), TimeUnit.NANOSECONDS.toMillis(left))));
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new QmpConnectException(vmName, null, "interrupted while connecting to QMP at " + where, ie);
                }
            } catch (RuntimeException | UnsatisfiedLinkError e) {
                throw new QmpConnectException(vmName, null, "cannot connect to QMP at " + where + ": " + e, e);
            }
        }
    }

    private void handshake() {
        connection.start(new Listener());
        String d = connection.describe();
        QmpGreeting g;
        try {
            g = greetingFuture.get(options.greetingTimeout().toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new QmpGreetingException(vm, null, "no QMP greeting from " + d + " within "
                    + options.greetingTimeout().toMillis() + " ms", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof QmpGreetingException ge) {
                ge.fillInStackTrace();
                throw ge;
            }
            String why = c instanceof QmpException q ? q.detail() : String.valueOf(c);
            throw new QmpGreetingException(vm, null, "connection ended before the QMP greeting: " + why, c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpGreetingException(vm, null, "interrupted while waiting for the QMP greeting from " + d, e);
        }
        greeting = g;
        boolean oob = options.enableOob() && g.offersOob();
        ObjectNode args = null;
        if (oob) {
            args = QmpJson.MAPPER.createObjectNode();
            args.putArray("enable").add("oob");
        }
        try {
            await(submit("execute", "qmp_capabilities", args, null), options.defaultTimeout());
        } catch (QmpCommandException e) {
            throw new QmpNegotiationException(vm, "qmp_capabilities", "QMP capabilities negotiation with " + d
                    + " rejected: " + e.errorClass() + ": " + e.description(), e);
        } catch (QmpException e) {
            throw new QmpNegotiationException(vm, "qmp_capabilities", "QMP capabilities negotiation with " + d
                    + " failed: " + e.detail(), e);
        }
        oobEnabled = oob;
        log.info("VM '{}': QMP connected to {} (QEMU {}, offered {}, oob {})", vm, d, g.version(),
                g.capabilities(), oob ? "enabled" : "off");
    }

    // ------------------------------------------------------------------------------------------------ state

    /** The greeting QEMU sent. */
    public QmpGreeting greeting() {
        return greeting;
    }

    public String vmName() {
        return vm;
    }

    public QmpClientOptions options() {
        return options;
    }

    /** True if {@code exec-oob} is available (offered by QEMU and requested). */
    public boolean oobEnabled() {
        return oobEnabled;
    }

    /** True until the connection ends (peer closed, protocol error, or {@link #close()}). */
    public boolean isConnected() {
        return closedReason == null && connection.isOpen();
    }

    /** Describes the endpoint, e.g. {@code unix:/run/web1.qmp}. */
    public String describe() {
        return connection.describe();
    }

    /**
     * Completes (normally) with the reason when the connection ends: QEMU exited or closed the socket, a
     * protocol error, or {@link #close()}. Useful to notice a dead QEMU without polling. Completes on the reader
     * thread or the closing thread: attach only non-blocking stages, or use an {@code *Async} stage.
     */
    public CompletableFuture<QmpException> whenDisconnected() {
        return disconnected.copy();
    }

    /** The typed command wrappers, using {@link QmpClientOptions#defaultTimeout()}. */
    public QemuCommands commands() {
        return commands;
    }

    // ------------------------------------------------------------------------------------------------ execute

    /**
     * Sends {@code {"execute": command, "arguments": ..., "id": "doppel-N"}} and returns a future of the reply's
     * {@code return} member. Arguments may be null, a {@code Map}, a Jackson {@code JsonNode} (object), or any
     * Jackson-serialisable object such as a record (its properties are written kebab-case, nulls omitted).
     *
     * <p>The future fails with {@link QmpCommandException} (error reply), {@link QmpDisconnectedException} or
     * {@link QmpProtocolException} (connection ended), {@link QmpSchemaException} (validation); it has no
     * timeout of its own: use {@code orTimeout} or the blocking {@link #execute(String, Object, Duration)}. It is
     * completed on a callback thread, never the reader.
     *
     * @throws IllegalArgumentException if the arguments do not serialise to a JSON object
     */
    public CompletableFuture<JsonNode> executeAsync(String command, Object arguments) {
        return publicFuture(submit("execute", command, arguments, null).future());
    }

    /** Blocking execute without arguments and with the default timeout. */
    public JsonNode execute(String command) {
        return execute(command, null, options.defaultTimeout());
    }

    /** Blocking execute with the default timeout. */
    public JsonNode execute(String command, Object arguments) {
        return execute(command, arguments, options.defaultTimeout());
    }

    /**
     * Blocking execute: waits on the caller's thread for the reply's {@code return} member.
     *
     * @throws QmpCommandException      QEMU answered with an error
     * @throws QmpTimeoutException      no reply within {@code timeout}; the call is abandoned and its late reply
     *                                  will be logged and dropped (the command may still take effect in QEMU)
     * @throws QmpDisconnectedException the connection ended before the reply (or was already closed)
     * @throws QmpProtocolException     the peer broke framing while we waited
     * @throws QmpSchemaException       validation against the loaded schema failed (nothing sent)
     */
    public JsonNode execute(String command, Object arguments, Duration timeout) {
        return await(submit("execute", command, arguments, null), timeout);
    }

    /**
     * Sends {@code {"exec-oob": ...}}: QEMU runs it immediately on its monitor I/O thread, even while in-band
     * commands are queued or stuck. Only commands whose schema says {@code allow-oob} qualify (QEMU 10:
     * {@code migrate-recover}, {@code migrate-pause}, {@code yank}, {@code query-yank}); QEMU rejects others with
     * a GenericError. The future fails with a {@link QmpException} at once if OOB was not negotiated.
     */
    public CompletableFuture<JsonNode> executeOobAsync(String command, Object arguments) {
        QmpException notOob = oobUnavailable(command);
        if (notOob != null) {
            return CompletableFuture.failedFuture(notOob);
        }
        return publicFuture(submit("exec-oob", command, arguments, null).future());
    }

    /** Blocking {@link #executeOobAsync}; throws like {@link #execute(String, Object, Duration)}. */
    public JsonNode executeOob(String command, Object arguments, Duration timeout) {
        QmpException notOob = oobUnavailable(command);
        if (notOob != null) {
            throw notOob;
        }
        return await(submit("exec-oob", command, arguments, null), timeout);
    }

    /** {@link #executeOob(String, Object, Duration)} with the default timeout. */
    public JsonNode executeOob(String command, Object arguments) {
        return executeOob(command, arguments, options.defaultTimeout());
    }

    private QmpException oobUnavailable(String command) {
        if (oobEnabled) {
            return null;
        }
        QmpGreeting g = greeting;
        return new QmpException(vm, command, "cannot send '" + command + "' out-of-band: OOB was not negotiated "
                + "(server offered " + (g == null ? "nothing yet" : g.capabilities()) + ", enableOob="
                + options.enableOob() + ")");
    }

    /**
     * Executes a command with file descriptors attached: they travel with SCM_RIGHTS in the same
     * {@code sendmsg} as the command's first byte, which is where QEMU looks for them. Only one fd-carrying
     * command is in flight at a time (QEMU keeps just the latest received fds per connection). The kernel
     * duplicates the descriptors into QEMU; the caller still owns (and should eventually close) its own.
     *
     * @throws QmpException if the transport cannot pass fds (TCP, libvirt); otherwise as {@link #execute}
     */
    public JsonNode executeWithFds(String command, Object arguments, int[] fds, Duration timeout) {
        if (fds == null || fds.length == 0) {
            throw new IllegalArgumentException("VM '" + vm + "': executeWithFds('" + command + "') needs at least one fd");
        }
        if (!connection.supportsFdPassing()) {
            throw new QmpException(vm, command, "cannot pass file descriptors with '" + command + "': transport "
                    + connection.describe() + " does not support fd passing (needs a unix socket)");
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            if (!fdCommandLock.tryAcquire(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
                throw new QmpTimeoutException(vm, command, "another fd-passing command is still in flight; '"
                        + command + "' not sent within " + timeout.toMillis() + " ms");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpException(vm, command, "interrupted before sending '" + command + "'", e);
        }
        try {
            PendingCall call = submit("execute", command, arguments, fds.clone());
            return await(call, Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
        } finally {
            fdCommandLock.release();
        }
    }

    /** {@code getfd}: hands {@code fd} to QEMU under {@code fdname} (then usable as e.g. {@code fd:NAME}). */
    public void getfd(String fdname, int fd) {
        executeWithFds("getfd", Map.of("fdname", fdname), new int[]{fd}, options.defaultTimeout());
    }

    /**
     * {@code add-fd}: adds {@code fd} to fd set {@code fdsetId} (null: QEMU picks a new set), usable as
     * {@code /dev/fdset/N} where QEMU opens files.
     *
     * @return the reply, {@code {"fdset-id": N, "fd": M}} (M is QEMU's own number for the fd)
     */
    public JsonNode addFd(Integer fdsetId, int fd, String opaque) {
        Map<String, Object> args = new LinkedHashMap<>();
        if (fdsetId != null) {
            args.put("fdset-id", fdsetId);
        }
        if (opaque != null) {
            args.put("opaque", opaque);
        }
        return executeWithFds("add-fd", args, new int[]{fd}, options.defaultTimeout());
    }

    /** {@code closefd}: closes the fd QEMU received under {@code fdname}. */
    public void closefd(String fdname) {
        execute("closefd", Map.of("fdname", fdname));
    }

    /** {@code remove-fd}: removes {@code fd} (QEMU's number, or null for all) from fd set {@code fdsetId}. */
    public void removeFd(int fdsetId, Integer fd) {
        Map<String, Object> args = new LinkedHashMap<>();
        args.put("fdset-id", fdsetId);
        if (fd != null) {
            args.put("fd", fd);
        }
        execute("remove-fd", args);
    }

    private PendingCall submit(String kind, String command, Object arguments, int[] fds) {
        Objects.requireNonNull(command, "command");
        ObjectNode args;
        try {
            args = QmpJson.toArguments(arguments);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("VM '" + vm + "': bad arguments for '" + command + "': " + e.getMessage(), e);
        }
        QmpSchema s = schema;
        if (options.validateAgainstSchema() && s != null) {
            List<String> problems = s.validate(command, args);
            if (!problems.isEmpty()) {
                PendingCall refused = new PendingCall(0, command, new CompletableFuture<>());
                refused.future().completeExceptionally(new QmpSchemaException(vm, command, problems));
                return refused;
            }
        }
        int id = ids.take();
        PendingCall call = new PendingCall(id, command, new CompletableFuture<>());
        ObjectNode msg = QmpJson.MAPPER.createObjectNode();
        msg.put(kind, command);
        if (args != null) {
            msg.set("arguments", args);
        }
        msg.put("id", id);
        synchronized (stateLock) {
            QmpException closed = closedReason;
            if (closed != null) {
                ids.free(id);
                call.future().completeExceptionally(new QmpDisconnectedException(vm, command,
                        "QMP connection is closed; cannot send '" + command + "': " + closed.detail(), closed));
                return call;
            }
            pending.put(id, call);
        }
        try {
            connection.send(msg, fds);
        } catch (UnsupportedOperationException e) {
            forget(call);
            call.future().completeExceptionally(new QmpException(vm, command, "cannot send '" + command + "' over "
                    + connection.describe() + ": " + e.getMessage(), e));
        } catch (IOException | RuntimeException e) {
            forget(call);
            call.future().completeExceptionally(new QmpDisconnectedException(vm, command, "sending '" + command
                    + "' (id " + id + ") to " + connection.describe() + " failed: " + e.getMessage(), e));
            connection.close(new QmpDisconnectedException(vm, null, "QMP connection " + connection.describe()
                    + " closed after a failed send: " + e.getMessage(), e));
        }
        return call;
    }

    private JsonNode await(PendingCall call, Duration timeout) {
        if (connection.isDeliveryThread()) {
            abandon(call);
            throw new IllegalStateException("VM '" + vm + "': blocking call '" + call.command() + "' on the QMP reader "
                    + "thread (from an event subscription filter?) would wait for itself; use executeAsync");
        }
        try {
            spinBriefly(call.future());
            return call.future().get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            abandon(call);
            if (call.future().isDone()) {
                return await(call, Duration.ZERO.plusNanos(1)); // the reply won the race
            }
            throw new QmpTimeoutException(vm, call.command(), "no reply to '" + call.command() + "' (id " + call.id()
                    + ") within " + timeout.toMillis() + " ms; a late reply will be logged and dropped", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof QmpException q) {
                q.fillInStackTrace(); // show the caller's stack rather than the reader's
                throw q;
            }
            throw new QmpException(vm, call.command(), "'" + call.command() + "' failed: " + c, c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            abandon(call);
            throw new QmpException(vm, call.command(), "interrupted while waiting for reply to '" + call.command()
                    + "' (id " + call.id() + ")", e);
        }
    }

    /**
     * Most QMP replies arrive within a few hundred microseconds. Parking the caller at once costs a
     * scheduler wake-up on top of the reader's (tens of µs on a virtualised host, a third of a
     * round trip), so the caller first polls for a bounded moment.
     */
    private void spinBriefly(CompletableFuture<JsonNode> future) {
        long spinNanos = options.replySpin().toNanos();
        if (spinNanos <= 0) {
            return;
        }
        long end = System.nanoTime() + spinNanos;
        while (!future.isDone() && System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }

    /** The caller gives up: the id stays taken (see {@link CallIds}) until a late reply frees it. */
    private void abandon(PendingCall call) {
        if (pending.remove(call.id(), call)) {
            synchronized (abandoned) {
                abandoned.put(call.id(), call.command());
            }
        }
    }

    /** A call whose request was never sent: its id is free again. */
    private void forget(PendingCall call) {
        if (pending.remove(call.id(), call)) {
            ids.free(call.id());
        }
    }

    private CompletableFuture<JsonNode> publicFuture(CompletableFuture<JsonNode> internal) {
        if (internal.isDone()) {
            return internal;
        }
        CompletableFuture<JsonNode> out = new CompletableFuture<>();
        internal.whenComplete((r, e) -> {
            Runnable complete = () -> {
                if (e != null) {
                    out.completeExceptionally(e);
                } else {
                    out.complete(r);
                }
            };
            try {
                callbackExecutor.execute(complete);
            } catch (RejectedExecutionException rejected) {
                complete.run();
            }
        });
        return out;
    }

    // ------------------------------------------------------------------------------------------------ events

    /**
     * Subscribes to events matching {@code filter} from now on. The filter runs on the reader thread: keep it
     * cheap and non-blocking. Close the subscription when done.
     */
    public EventSubscription subscribe(Predicate<QmpEvent> filter) {
        return events.subscribe(Objects.requireNonNull(filter, "filter"), -1);
    }

    /** Subscribes to the named events (all events if none are named) from now on. */
    public EventSubscription subscribe(String... eventNames) {
        Set<String> names = Set.of(eventNames);
        return subscribe(e -> names.isEmpty() || names.contains(e.name()));
    }

    /**
     * Subscribes including events already received since {@code sequence} (see {@link #eventSequence()}), as far
     * as the backlog still holds them, atomically followed by live events: no gap, no duplicate.
     *
     * <p>This solves the subscribe-too-late race. {@code execute("stop")} returns after QEMU's {@code STOP}
     * event was already read (QEMU emits it before the reply), so a subscription created after the call misses
     * it. Either subscribe before the call, or take {@code long mark = client.eventSequence()} before and
     * {@code subscribeSince(mark, ...)} after. {@code subscribeSince(0, ...)} also sees events from before
     * {@code connect} returned (as long as the backlog of {@link QmpClientOptions#eventBacklogSize()} holds them).
     */
    public EventSubscription subscribeSince(long sequence, Predicate<QmpEvent> filter) {
        return events.subscribe(Objects.requireNonNull(filter, "filter"), Math.max(0, sequence));
    }

    /** The sequence number the next received event will get (= number of events received so far). */
    public long eventSequence() {
        return events.nextSequence();
    }

    /**
     * The last {@link QmpClientOptions#eventBacklogSize()} events, oldest first, including those received before
     * {@code connect} returned. For looking back after the fact; prefer {@link #subscribeSince} for waiting.
     */
    public List<QmpEvent> recentEvents() {
        return events.recent();
    }

    /**
     * Adds a listener called for every event on the single {@code qmp-events-<vm>} thread, in arrival order.
     * A listener may block or call {@link #execute}; that only delays other listeners, never the reader. If
     * listeners fall more than 10 000 events behind, events are dropped for them (logged).
     */
    public void addEventListener(Consumer<QmpEvent> listener) {
        events.addListener(Objects.requireNonNull(listener, "listener"));
    }

    public void removeEventListener(Consumer<QmpEvent> listener) {
        events.removeListener(listener);
    }

    // ------------------------------------------------------------------------------------------------ schema

    /**
     * QEMU's QMP schema ({@code query-qmp-schema}), fetched on first use and cached. Once loaded, and if
     * {@link QmpClientOptions#validateAgainstSchema()}, every command is validated before sending.
     */
    public QmpSchema schema() {
        QmpSchema s = schema;
        if (s != null) {
            return s;
        }
        synchronized (schemaLock) {
            if (schema == null) {
                schema = QmpSchema.parse(execute("query-qmp-schema"), vm);
            }
            return schema;
        }
    }

    /** The schema if {@link #schema()} has already loaded it. */
    public Optional<QmpSchema> loadedSchema() {
        return Optional.ofNullable(schema);
    }

    // ------------------------------------------------------------------------------------------------ close

    /**
     * Closes the connection. Every pending call fails with {@link QmpDisconnectedException}
     * ("VM 'web1': QMP connection closed while waiting for reply to 'migrate' (id doppel-7): ...") before this
     * returns; event waits fail likewise. Idempotent. Does not stop QEMU.
     */
    @Override
    public void close() {
        connection.close();
        callbackExecutor.shutdown();
    }

    @Override
    public String toString() {
        return "QmpClient[" + vm + " " + connection.describe() + (isConnected() ? "" : " closed") + "]";
    }

    // ------------------------------------------------------------------------------------------------ reader side

    /** Runs on the reader thread (and onClosed possibly on the closing thread). */
    private final class Listener implements QmpConnection.Listener {

        @Override
        public void onMessage(ObjectNode msg) {
            if (!greetingSeen) {
                greetingSeen = true;
                try {
                    greetingFuture.complete(QmpGreeting.parse(msg));
                } catch (IllegalArgumentException e) {
                    QmpGreetingException ge = new QmpGreetingException(vm, null, "expected the QMP greeting from "
                            + connection.describe() + ", got '" + QmpJson.snippet(msg.toString(), 200) + "' ("
                            + e.getMessage() + ")", e);
                    greetingFuture.completeExceptionally(ge);
                    connection.close(ge);
                }
                return;
            }
            if (msg.has("event")) {
                events.publish(QmpEvent.fromMessage(msg, vm));
            } else if (msg.has("return") || msg.has("error")) {
                routeReply(msg);
            } else if (msg.has("QMP")) {
                log.warn("VM '{}': unexpected second QMP greeting dropped: {}", vm, QmpJson.snippet(msg.toString(), 200));
            } else {
                log.warn("VM '{}': unrecognised QMP message dropped: {}", vm, QmpJson.snippet(msg.toString(), 200));
            }
        }

        private void routeReply(ObjectNode msg) {
            JsonNode idNode = msg.get("id");
            if (idNode == null) {
                // QEMU answers input it could not parse as a command (bad JSON, no "execute") without an id
                log.warn("VM '{}': QEMU sent a reply without id; it cannot be routed and is dropped: {}", vm,
                        QmpJson.snippet(msg.toString(), 300));
                return;
            }
            if (!idNode.isIntegralNumber() || !idNode.canConvertToInt()) {
                log.warn("VM '{}': reply with id {} that this client never sends; dropped: {}", vm, idNode,
                        QmpJson.snippet(msg.toString(), 300));
                return;
            }
            int id = idNode.intValue();
            PendingCall call = pending.remove(id);
            if (call == null) {
                String late;
                synchronized (abandoned) {
                    late = abandoned.remove(id);
                }
                if (late != null) {
                    ids.free(id);
                    log.warn("VM '{}': late reply to '{}' (id {}) after its caller gave up; dropped: {}", vm, late, id,
                            QmpJson.snippet(msg.toString(), 300));
                } else {
                    log.warn("VM '{}': reply with unknown id {} matches no pending call; dropped: {}", vm, id,
                            QmpJson.snippet(msg.toString(), 300));
                }
                return;
            }
            ids.free(id);
            JsonNode err = msg.get("error");
            if (err != null) {
                call.future().completeExceptionally(new QmpCommandException(vm, call.command(), String.valueOf(id),
                        err.path("class").asText("(no class)"), err.path("desc").asText("")));
            } else {
                call.future().complete(msg.get("return"));
            }
        }

        @Override
        public void onClosed(QmpException reason) {
            List<PendingCall> calls;
            synchronized (stateLock) {
                closedReason = reason;
                calls = new ArrayList<>(pending.values());
                pending.clear();
            }
            greetingFuture.completeExceptionally(reason);
            for (PendingCall call : calls) {
                call.future().completeExceptionally(failure(call, reason));
            }
            if (!calls.isEmpty()) {
                log.info("VM '{}': {} pending QMP call(s) failed: {} ({})", vm, calls.size(),
                        Arrays.toString(calls.stream().map(c -> c.command() + "/" + c.id()).toArray()), reason.detail());
            }
            events.close(reason);
            disconnected.complete(reason);
            callbackExecutor.shutdown();
        }

        private QmpException failure(PendingCall call, QmpException reason) {
            String what = "'" + call.command() + "' (id " + call.id() + ")";
            if (reason instanceof QmpProtocolException) {
                return new QmpProtocolException(vm, call.command(), "QMP protocol error while waiting for reply to "
                        + what + ": " + reason.detail(), reason);
            }
            return new QmpDisconnectedException(vm, call.command(), "QMP connection closed while waiting for reply to "
                    + what + ": " + reason.detail(), reason);
        }
    }
}

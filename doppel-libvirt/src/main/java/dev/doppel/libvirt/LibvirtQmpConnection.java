package dev.doppel.libvirt;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.doppel.qmp.QmpDisconnectedException;
import dev.doppel.qmp.QmpException;
import dev.doppel.qmp.QmpProtocolException;
import dev.doppel.qmp.connection.QmpConnection;
import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.libvirt.event.DomainEvent;
import org.libvirt.event.LifecycleListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Instant;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link QmpConnection} whose QEMU belongs to libvirt: commands go through {@code virDomainQemuMonitorCommand},
 * events come from {@code virConnectDomainQemuMonitorEventRegister}, so a {@code QmpClient} over it works like
 * one over QEMU's socket (which libvirt owns and does not share).
 *
 * <p>What differs from a socket, and how it is bridged:
 * <ul>
 *   <li>libvirt did the greeting and {@code qmp_capabilities} long ago. {@link #start} delivers a greeting built
 *       from QEMU's own {@code query-version} answer, with no capabilities (so the client never sends
 *       {@code exec-oob}, which libvirt cannot pass through), and {@code qmp_capabilities} is answered here.</li>
 *   <li>libvirt puts its own {@code id} on each command and returns the reply text; the client's id is taken off
 *       before and put back on the reply.</li>
 *   <li>Commands run one at a time in send order on one thread ({@code qmp-libvirt-cmd-VM}), as QEMU runs a
 *       socket's in-band commands; libvirt serialises them with its own jobs anyway.</li>
 *   <li>Replies and events reach the listener on one delivery thread ({@code qmp-libvirt-VM}) in the order
 *       they arrive here. libvirtd sends replies and events as separate messages, so an event QEMU emitted
 *       before a reply (e.g. {@code STOP} before the reply to {@code stop}) may arrive after it.</li>
 *   <li>A libvirt-level failure of a running domain (e.g. its job lock timed out) becomes a QMP error reply
 *       ({@code GenericError}, "libvirt: …") for that command only. The connection ends when the domain stops
 *       (libvirt's lifecycle event) or a command finds it no longer running.</li>
 *   <li>No file descriptor passing ({@link #supportsFdPassing()} is false).</li>
 * </ul>
 */
public final class LibvirtQmpConnection implements QmpConnection {
    private static final Logger log = LoggerFactory.getLogger(LibvirtQmpConnection.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final LibvirtConnection connection;
    private final Domain domain;
    private final String name;
    private final String uuid;
    private final ExecutorService commands;
    private final ExecutorService delivery;
    private final AtomicBoolean ended = new AtomicBoolean();
    private final LifecycleListener lifecycle = this::onLifecycle;
    private volatile Thread deliveryThread;
    private volatile Listener listener;
    private volatile QemuMonitorEventSource events;

    private LibvirtQmpConnection(LibvirtConnection connection, Domain domain, String name, String uuid) {
        this.connection = connection;
        this.domain = domain;
        this.name = name;
        this.uuid = uuid;
        this.commands = Executors.newSingleThreadExecutor(r -> daemon(r, "qmp-libvirt-cmd-" + name));
        this.delivery = Executors.newSingleThreadExecutor(r -> {
            Thread t = daemon(r, "qmp-libvirt-" + name);
            deliveryThread = t;
            return t;
        });
    }

    /**
     * A connection to the QEMU of the running domain {@code name}. Nothing is registered with libvirt until
     * {@link #start}.
     *
     * @throws LibvirtCallException if there is no such domain
     */
    public static LibvirtQmpConnection forDomain(LibvirtConnection connection, String name) {
        Domain d = connection.domain(name);
        try {
            return new LibvirtQmpConnection(connection, d, name, d.getUUIDString());
        } catch (LibvirtException e) {
            throw new LibvirtCallException(connection.uri(), name, "reading the UUID", e);
        }
    }

    private static Thread daemon(Runnable r, String threadName) {
        Thread t = new Thread(r, threadName);
        t.setDaemon(true);
        return t;
    }

    /** Registers for the domain's monitor and lifecycle events, then delivers the greeting (or ends). */
    @Override
    public void start(Listener l) {
        if (listener != null) {
            throw new IllegalStateException("already started");
        }
        listener = Objects.requireNonNull(l, "listener");
        try {
            // Lifecycle first: a domain that stops between the two registrations still ends this connection.
            connection.libvirt().addLifecycleListener(lifecycle);
            events = QemuMonitorEventSource.register(connection, name, uuid, this::onMonitorEvent);
        } catch (LibvirtException | RuntimeException e) {
            end(new QmpDisconnectedException(name, null, "cannot follow domain '" + name + "' through libvirt "
                    + connection.uri() + ": " + e.getMessage(), e));
            return;
        }
        submitCommand(() -> {
            ObjectNode version = runOnDomain("query-version", "{\"execute\":\"query-version\"}");
            if (version == null) {
                return;
            }
            if (!version.has("return")) {
                end(new QmpProtocolException(name, "query-version", "QEMU of domain '" + name
                        + "' answered query-version through libvirt with " + version));
                return;
            }
            ObjectNode greeting = JSON.createObjectNode();
            ObjectNode qmp = greeting.putObject("QMP");
            qmp.set("version", version.get("return"));
            qmp.putArray("capabilities"); // no oob: libvirt passes in-band commands only
            deliver(greeting);
        });
    }

    @Override
    public void send(ObjectNode message, int[] fds) throws IOException {
        if (fds != null && fds.length > 0) {
            throw new UnsupportedOperationException("libvirt's monitor passthrough of domain '" + name
                    + "' carries no file descriptors");
        }
        if (ended.get()) {
            throw new IOException("QMP connection " + describe() + " is closed");
        }
        ObjectNode request = message.deepCopy();
        JsonNode id = request.remove("id");
        if (request.has("exec-oob")) {
            String command = request.path("exec-oob").asText();
            submitCommand(() -> deliver(error(id, "libvirt cannot pass exec-oob '" + command + "' to domain '" + name + "'")));
            return;
        }
        String command = request.path("execute").asText("");
        if (command.equals("qmp_capabilities")) {
            // libvirt negotiated long ago; answering here keeps QmpClient's handshake unchanged.
            submitCommand(() -> deliver(reply(id, JSON.createObjectNode())));
            return;
        }
        String text = JSON.writeValueAsString(request);
        submitCommand(() -> {
            ObjectNode answer = runOnDomain(command, text);
            if (answer != null) {
                answer.remove("id");
                if (id != null) {
                    answer.set("id", id);
                }
                deliver(answer);
            }
        });
    }

    /**
     * Runs one command on the domain's monitor: the parsed reply, or an error reply for a libvirt-level failure
     * of a still running domain, or null after ending the connection (domain gone, garbage from libvirt).
     */
    private ObjectNode runOnDomain(String command, String text) {
        String raw;
        try {
            raw = domain.qemuMonitorCommand(text, 0);
        } catch (LibvirtException e) {
            if (!domainRunning()) {
                end(new QmpDisconnectedException(name, command, "domain '" + name + "' is no longer running in libvirt "
                        + connection.uri() + " ('" + command + "' failed: " + e.getMessage() + ")", e));
                return null;
            }
            return error(null, "libvirt: " + e.getMessage());
        }
        try {
            JsonNode node = JSON.readTree(raw);
            if (node instanceof ObjectNode o) {
                return o;
            }
            end(new QmpProtocolException(name, command, "libvirt returned a non-object reply to '" + command + "': " + raw));
        } catch (JsonProcessingException e) {
            end(new QmpProtocolException(name, command, "libvirt returned malformed JSON for '" + command + "': " + raw, e));
        }
        return null;
    }

    private boolean domainRunning() {
        try {
            return domain.isActive() == 1;
        } catch (LibvirtException e) {
            return false;
        }
    }

    /** On libvirt's event loop thread. */
    private void onMonitorEvent(String event, long seconds, int micros, String dataJson) {
        ObjectNode msg = JSON.createObjectNode();
        msg.put("event", event);
        if (dataJson != null) {
            try {
                msg.set("data", JSON.readTree(dataJson));
            } catch (JsonProcessingException e) {
                log.warn("domain '{}': QEMU event {} with unreadable data dropped: {}", name, event, dataJson);
                return;
            }
        }
        ObjectNode ts = msg.putObject("timestamp");
        ts.put("seconds", seconds);
        ts.put("microseconds", micros);
        deliver(msg);
    }

    /** On libvirt's event loop thread: the domain stopping ends this connection, as QEMU closing its socket would. */
    private int onLifecycle(Domain d, DomainEvent event) {
        try {
            if (!uuid.equals(d.getUUIDString())) {
                return 0;
            }
        } catch (LibvirtException e) {
            return 0;
        }
        DomainLifecycleEvent e = DomainLifecycleEvent.from(name, uuid, event, Instant.now(), System.nanoTime());
        if (e.ended()) {
            QmpDisconnectedException why = new QmpDisconnectedException(name, null, "domain '" + name + "' "
                    + e.kind().name().toLowerCase(Locale.ROOT) + " (libvirt: " + e.cause() + ")");
            // Not here: ending deregisters callbacks, which is a daemon call; do it off the event loop.
            try {
                delivery.execute(() -> end(why));
            } catch (RejectedExecutionException ignored) {
                // already ended
            }
        }
        return 0;
    }

    private void submitCommand(Runnable task) {
        try {
            commands.execute(task);
        } catch (RejectedExecutionException e) {
            // ended meanwhile: the listener has been told
        }
    }

    private void deliver(ObjectNode message) {
        try {
            delivery.execute(() -> {
                if (ended.get()) {
                    return;
                }
                try {
                    listener.onMessage(message);
                } catch (RuntimeException e) {
                    log.error("domain '{}': QMP message handler failed; message dropped: {}", name, message, e);
                }
            });
        } catch (RejectedExecutionException e) {
            // ended meanwhile
        }
    }

    private static ObjectNode reply(JsonNode id, JsonNode value) {
        ObjectNode r = JSON.createObjectNode();
        r.set("return", value);
        if (id != null) {
            r.set("id", id);
        }
        return r;
    }

    private static ObjectNode error(JsonNode id, String desc) {
        ObjectNode r = JSON.createObjectNode();
        ObjectNode err = r.putObject("error");
        err.put("class", "GenericError");
        err.put("desc", desc);
        if (id != null) {
            r.set("id", id);
        }
        return r;
    }

    @Override
    public boolean supportsFdPassing() {
        return false;
    }

    @Override
    public String describe() {
        return "libvirt:" + connection.uri() + "#" + name;
    }

    @Override
    public boolean isOpen() {
        return !ended.get();
    }

    @Override
    public boolean isDeliveryThread() {
        return Thread.currentThread() == deliveryThread;
    }

    @Override
    public void close() {
        close(new QmpDisconnectedException(name, null, "QMP connection " + describe() + " closed by client"));
    }

    @Override
    public void close(QmpException reason) {
        end(reason);
    }

    private void end(QmpException reason) {
        if (!ended.compareAndSet(false, true)) {
            return;
        }
        try {
            connection.libvirt().removeLifecycleListener(lifecycle);
        } catch (LibvirtException | RuntimeException e) {
            log.debug("domain '{}': removing the lifecycle listener failed: {}", name, e.getMessage());
        }
        QemuMonitorEventSource ev = events;
        if (ev != null) {
            ev.close();
        }
        // The Domain reference is left to libvirt-java's finalizer: a command may still be inside libvirt on the
        // command thread (a native call cannot be interrupted), and freeing under it would be a use after free.
        commands.shutdownNow();
        delivery.shutdown();
        log.debug("domain '{}': QMP connection {} ended: {}", name, describe(), reason.getMessage());
        Listener l = listener;
        if (l != null) {
            try {
                l.onClosed(reason);
            } catch (RuntimeException e) {
                log.error("domain '{}': QMP close handler failed", name, e);
            }
        }
    }
}

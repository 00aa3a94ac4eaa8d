package dev.doppel.libvirt;

import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.libvirt.event.DomainEvent;
import org.libvirt.event.LifecycleListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Instant;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Domain lifecycle events of every domain on one connection (libvirt's
 * {@code VIR_DOMAIN_EVENT_ID_LIFECYCLE}), pushed by libvirtd the moment it sees them: no polling.
 *
 * <p>Listeners run one at a time, in arrival order, on this object's own thread
 * ({@code libvirt-lifecycle}), not on libvirt's event loop thread, so they may call libvirt (look a domain up,
 * read its XML) without holding up other callbacks.
 */
public final class DomainLifecycle implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DomainLifecycle.class);

    /** Receives events; must not block for long (later events wait for it). */
    public interface Listener {
        void onEvent(DomainLifecycleEvent event);
    }

    private final LibvirtConnection connection;
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final ExecutorService dispatch;
    private final LifecycleListener callback = this::received;
    private final AtomicBoolean closed = new AtomicBoolean();

    private DomainLifecycle(LibvirtConnection connection) {
        this.connection = connection;
        this.dispatch = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "libvirt-lifecycle");
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * Starts receiving lifecycle events of all domains of {@code connection}.
     *
     * @throws LibvirtCallException if libvirt refuses the registration
     */
    public static DomainLifecycle watch(LibvirtConnection connection) {
        DomainLifecycle lifecycle = new DomainLifecycle(connection);
        try {
            connection.libvirt().addLifecycleListener(lifecycle.callback);
        } catch (LibvirtException e) {
            lifecycle.dispatch.shutdownNow();
            throw new LibvirtCallException(connection.uri(), null, "registering for domain lifecycle events", e);
        }
        return lifecycle;
    }

    public void addListener(Listener listener) {
        listeners.add(listener);
    }

    public void removeListener(Listener listener) {
        listeners.remove(listener);
    }

    /** Runs on libvirt's event loop thread: note the time, read name and UUID (no daemon call), hand it on. */
    private int received(Domain domain, DomainEvent event) {
        long nanos = System.nanoTime();
        Instant at = Instant.now();
        String name;
        String uuid;
        try {
            name = domain.getName();
            uuid = domain.getUUIDString();
        } catch (LibvirtException e) {
            log.warn("libvirt {}: lifecycle event {} for a domain whose name cannot be read: {}", connection.uri(), event,
                    e.getMessage());
            return 0;
        }
        DomainLifecycleEvent e = DomainLifecycleEvent.from(name, uuid, event, at, nanos);
        if (e.kind() == DomainLifecycleEvent.Kind.SUSPENDED || e.kind() == DomainLifecycleEvent.Kind.RESUMED) {
            // A protected domain pauses at every checkpoint (10-20 pairs a second): not worth a line each.
            log.debug("libvirt {}: domain '{}' {} ({})", connection.uri(), name, e.kind(), e.cause());
        } else {
            log.info("libvirt {}: domain '{}' {} ({})", connection.uri(), name, e.kind(), e.cause());
        }
        if (!closed.get()) {
            dispatch.execute(() -> deliver(e));
        }
        return 0;
    }

    private void deliver(DomainLifecycleEvent e) {
        for (Listener l : listeners) {
            try {
                l.onEvent(e);
            } catch (RuntimeException ex) {
                log.error("libvirt {}: lifecycle listener failed on domain '{}' {}", connection.uri(), e.domain(), e.kind(), ex);
            }
        }
    }

    /** Stops receiving; events already received are still delivered (for at most 2 s). */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            connection.libvirt().removeLifecycleListener(callback);
        } catch (LibvirtException | RuntimeException e) {
            log.debug("libvirt {}: removing the lifecycle listener failed (connection closed?): {}", connection.uri(),
                    e.getMessage());
        }
        dispatch.shutdown();
        try {
            if (!dispatch.awaitTermination(2, TimeUnit.SECONDS)) {
                dispatch.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            dispatch.shutdownNow();
        }
    }
}

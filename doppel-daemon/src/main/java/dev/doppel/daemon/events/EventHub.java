package dev.doppel.daemon.events;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's event stream: every event is logged (structured) and handed to every subscriber
 * (SSE connections, metrics); the last {@value #KEPT} are kept so that a client that reconnects with
 * {@code Last-Event-ID} misses nothing. Publishing never blocks: subscribers hand the event to their
 * own thread or event loop.
 */
public final class EventHub {
    private static final Logger log = LoggerFactory.getLogger(EventHub.class);
    private static final int KEPT = 2000;

    private final ArrayDeque<DaemonEvent> recent = new ArrayDeque<>();
    private final List<Consumer<DaemonEvent>> subscribers = new CopyOnWriteArrayList<>();
    private long nextId = 1;

    /** Publishes an event; checkpoints are logged at debug level (one per epoch), the rest at info. */
    public void publish(String type, String vm, long epoch, String cause, Map<String, Object> data) {
        DaemonEvent e;
        synchronized (this) {
            e = new DaemonEvent(nextId++, type, vm, epoch, cause, System.currentTimeMillis(), data);
            recent.addLast(e);
            if (recent.size() > KEPT) {
                recent.removeFirst();
            }
            // In the lock: every subscriber sees the events in id order (they only hand them on).
            for (Consumer<DaemonEvent> s : subscribers) {
                s.accept(e);
            }
        }
        if (type.equals("checkpoint") || type.equals("backup-epoch")) {
            log.debug("event={} vm={} epoch={} data={}", type, vm, epoch, e.data());
        } else if (cause != null) {
            log.info("event={} vm={} epoch={} cause=\"{}\" data={}", type, vm, epoch, cause, e.data());
        } else {
            log.info("event={} vm={} epoch={} data={}", type, vm, epoch, e.data());
        }
    }

    /**
     * Subscribes; returns the kept events after {@code afterId} (negative: none), taken atomically with the
     * subscription so that nothing falls between the replay and the live stream.
     */
    public synchronized List<DaemonEvent> subscribe(Consumer<DaemonEvent> subscriber, long afterId) {
        subscribers.add(subscriber);
        List<DaemonEvent> replay = new ArrayList<>();
        if (afterId >= 0) {
            for (DaemonEvent e : recent) {
                if (e.id() > afterId) {
                    replay.add(e);
                }
            }
        }
        return replay;
    }

    public void unsubscribe(Consumer<DaemonEvent> subscriber) {
        subscribers.remove(subscriber);
    }
}

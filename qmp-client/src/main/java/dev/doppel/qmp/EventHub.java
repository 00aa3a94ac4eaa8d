package dev.doppel.qmp;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * Event fan-out for one client. Runs on the reader thread: each event gets the next sequence number, goes into
 * the bounded backlog, into every subscription existing at that moment, and (as one task) onto the listener
 * executor. Listeners run on a single daemon thread {@code qmp-events-<vm>} with a bounded queue, so a slow or
 * stuck listener delays other listeners but never the reader; when that queue is full events are dropped for
 * listeners (with a warning), never for subscriptions or the backlog.
 */
final class EventHub {

    static final Logger log = LoggerFactory.getLogger(EventHub.class);
    static final int LISTENER_QUEUE = 10_000;

    private record Sequenced(long seq, QmpEvent event) {
    }

    private final String vmName;
    private final int backlogSize;
    private final ArrayDeque<Sequenced> backlog = new ArrayDeque<>();
    private final List<EventSubscription> subscriptions = new ArrayList<>();
    private final CopyOnWriteArrayList<Consumer<QmpEvent>> listeners = new CopyOnWriteArrayList<>();
    private final ThreadPoolExecutor listenerExecutor;
    private long nextSeq;
    private long listenerDrops;
    private QmpException closedReason;

    EventHub(String vmName, int backlogSize) {
        this.vmName = vmName;
        this.backlogSize = backlogSize;
        this.listenerExecutor = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS,
                new LinkedBlockingQueue<>(LISTENER_QUEUE), r -> {
            Thread t = new Thread(r, "qmp-events-" + vmName);
            t.setDaemon(true);
            return t;
        }, (r, ex) -> {
            synchronized (this) {
                if (listenerDrops++ % 1000 == 0) {
                    log.warn("VM '{}': event listeners are not keeping up ({} events queued); dropping events for "
                            + "listeners (subscriptions and backlog unaffected)", vmName, LISTENER_QUEUE);
                }
            }
        });
    }

    /** Reader side. */
    synchronized void publish(QmpEvent e) {
        long seq = nextSeq++;
        if (backlogSize > 0) {
            if (backlog.size() >= backlogSize) {
                backlog.pollFirst();
            }
            backlog.addLast(new Sequenced(seq, e));
        }
        for (EventSubscription s : subscriptions) {
            s.offer(e);
        }
        if (!listeners.isEmpty() && closedReason == null) {
            listenerExecutor.execute(() -> {
                for (Consumer<QmpEvent> l : listeners) {
                    try {
                        l.accept(e);
                    } catch (RuntimeException ex) {
                        log.warn("VM '{}': event listener failed on {}", vmName, e.name(), ex);
                    }
                }
            });
        }
    }

    synchronized EventSubscription subscribe(Predicate<QmpEvent> filter, long sinceSeq) {
        EventSubscription s = new EventSubscription(this, filter, vmName);
        if (sinceSeq >= 0) {
            for (Sequenced q : backlog) {
                if (q.seq() >= sinceSeq) {
                    s.offer(q.event());
                }
            }
        }
        if (closedReason != null) {
            s.disconnected(closedReason);
        } else {
            subscriptions.add(s);
        }
        return s;
    }

    synchronized void remove(EventSubscription s) {
        subscriptions.remove(s);
    }

    synchronized long nextSequence() {
        return nextSeq;
    }

    synchronized long oldestSequenceInBacklog() {
        return backlog.isEmpty() ? nextSeq : backlog.peekFirst().seq();
    }

    synchronized List<QmpEvent> recent() {
        List<QmpEvent> out = new ArrayList<>(backlog.size());
        for (Sequenced q : backlog) {
            out.add(q.event());
        }
        return out;
    }

    void addListener(Consumer<QmpEvent> l) {
        listeners.add(l);
    }

    boolean removeListener(Consumer<QmpEvent> l) {
        return listeners.remove(l);
    }

    /** Reader side (or closer): no more events will come. */
    void close(QmpException reason) {
        List<EventSubscription> subs;
        synchronized (this) {
            if (closedReason != null) {
                return;
            }
            closedReason = reason;
            subs = new ArrayList<>(subscriptions);
            subscriptions.clear();
        }
        for (EventSubscription s : subs) {
            s.disconnected(reason);
        }
        listenerExecutor.shutdown(); // queued listener tasks still run
    }
}

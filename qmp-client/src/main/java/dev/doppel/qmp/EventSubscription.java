package dev.doppel.qmp;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Predicate;

/**
 * A buffered queue of the events matching a filter, fed by the client's reader thread in arrival order from the
 * moment of {@link QmpClient#subscribe} (or, with {@link QmpClient#subscribeSince}, from an earlier point still
 * in the backlog). Consumers take events on their own threads; nothing they do can stall the reader.
 *
 * <p>Capacity is {@value #CAPACITY} events; beyond that the oldest are dropped (and counted, see
 * {@link #droppedCount()}) so a forgotten subscription cannot exhaust memory. Close subscriptions you no longer
 * need (try-with-resources).
 *
 * <p>When the connection ends, events already queued can still be taken; after that {@link #poll} and
 * {@link #await} throw {@link QmpDisconnectedException} instead of waiting out their timeout.
 */
public final class EventSubscription implements AutoCloseable {

    /** Maximum queued events per subscription. */
    public static final int CAPACITY = 10_000;

    private final EventHub hub;
    private final Predicate<QmpEvent> filter;
    private final String vmName;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition arrived = lock.newCondition();
    private final ArrayDeque<QmpEvent> queue = new ArrayDeque<>();
    private boolean closed;
    private QmpException disconnected;
    private long dropped;

    EventSubscription(EventHub hub, Predicate<QmpEvent> filter, String vmName) {
        this.hub = hub;
        this.filter = filter;
        this.vmName = vmName;
    }

    /** Reader side: offers an event if it passes the filter. */
    void offer(QmpEvent e) {
        boolean match;
        try {
            match = filter.test(e);
        } catch (RuntimeException ex) {
            EventHub.log.warn("VM '{}': event filter threw on {}; event skipped for this subscription", vmName, e.name(), ex);
            return;
        }
        if (!match) {
            return;
        }
        lock.lock();
        try {
            if (closed) {
                return;
            }
            if (queue.size() >= CAPACITY) {
                queue.pollFirst();
                if (dropped++ % 1000 == 0) {
                    EventHub.log.warn("VM '{}': event subscription full ({} events); dropping the oldest", vmName, CAPACITY);
                }
            }
            queue.addLast(e);
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Reader side: the connection is gone. */
    void disconnected(QmpException reason) {
        lock.lock();
        try {
            if (disconnected == null) {
                disconnected = reason;
            }
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Takes the next event, waiting up to {@code timeout}.
     *
     * @return the event, or null if none arrived in time or the subscription is closed
     * @throws QmpDisconnectedException if the queue is empty and the connection has ended
     */
    public QmpEvent poll(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            while (true) {
                QmpEvent e = queue.pollFirst();
                if (e != null) {
                    return e;
                }
                if (closed) {
                    return null;
                }
                if (disconnected != null) {
                    throw gone("the next event");
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return null;
                }
                arrived.awaitNanos(left);
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            throw new QmpException(vmName, null, "interrupted while waiting for an event", ie);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Takes the first queued or arriving event named {@code eventName}; other events stay queued in order.
     *
     * @throws QmpTimeoutException if none arrives within {@code timeout}
     * @throws QmpDisconnectedException if the connection ends first
     */
    public QmpEvent await(String eventName, Duration timeout) {
        return await(e -> e.name().equals(eventName), "event '" + eventName + "'", timeout);
    }

    /** Like {@link #await(String, Duration)} for any event matching {@code match}. */
    public QmpEvent await(Predicate<QmpEvent> match, Duration timeout) {
        return await(match, "matching event", timeout);
    }

    private QmpEvent await(Predicate<QmpEvent> match, String what, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            while (true) {
                for (Iterator<QmpEvent> it = queue.iterator(); it.hasNext(); ) {
                    QmpEvent e = it.next();
                    if (match.test(e)) {
                        it.remove();
                        return e;
                    }
                }
                if (closed) {
                    throw new IllegalStateException("VM '" + vmName + "': event subscription is closed");
                }
                if (disconnected != null) {
                    throw gone(what);
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new QmpTimeoutException(vmName, null, "no " + what + " within " + timeout.toMillis()
                            + " ms (" + queue.size() + " other event(s) queued)");
                }
                arrived.awaitNanos(left);
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            throw new QmpException(vmName, null, "interrupted while waiting for " + what, ie);
        } finally {
            lock.unlock();
        }
    }

    /** Removes and returns everything queued now, oldest first; never blocks. */
    public List<QmpEvent> drain() {
        lock.lock();
        try {
            List<QmpEvent> out = new ArrayList<>(queue);
            queue.clear();
            return out;
        } finally {
            lock.unlock();
        }
    }

    /** Events currently queued. */
    public int size() {
        lock.lock();
        try {
            return queue.size();
        } finally {
            lock.unlock();
        }
    }

    /** Events dropped because the queue was full. */
    public long droppedCount() {
        lock.lock();
        try {
            return dropped;
        } finally {
            lock.unlock();
        }
    }

    public boolean isClosed() {
        lock.lock();
        try {
            return closed;
        } finally {
            lock.unlock();
        }
    }

    /** Stops receiving events and drops the queue. Idempotent. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            queue.clear();
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
        hub.remove(this);
    }

    private QmpDisconnectedException gone(String what) {
        return new QmpDisconnectedException(vmName, null, "QMP connection closed while waiting for " + what + ": "
                + disconnected.detail(), disconnected);
    }
}

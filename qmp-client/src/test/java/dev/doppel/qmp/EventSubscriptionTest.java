package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** EventHub/EventSubscription semantics, fed with events QEMU actually sent (from the recordings). */
@Tag("unit")
@Timeout(10)
class EventSubscriptionTest {

    static List<QmpEvent> recordedEvents() {
        List<QmpEvent> out = new ArrayList<>();
        for (String t : List.of("status-stop-cont.jsonl", "migrate.jsonl", "interleaved.jsonl", "quit.jsonl")) {
            for (Transcript.Entry e : Transcript.load(t).received()) {
                JsonNode m = e.message();
                if (m.has("event")) {
                    out.add(QmpEvent.fromMessage(m, "vm"));
                }
            }
        }
        return out;
    }

    static final List<QmpEvent> EVENTS = recordedEvents();

    @Test
    void recordedEventsParse() {
        QmpEvent migration = EVENTS.stream().filter(e -> e.name().equals("MIGRATION")).findFirst().orElseThrow();
        assertEquals("setup", migration.dataText("status"));
        QmpEvent stop = EVENTS.stream().filter(e -> e.name().equals("STOP")).findFirst().orElseThrow();
        assertTrue(stop.data().isObject() && stop.data().isEmpty(), "absent data becomes {}");
        assertEquals(1795618621L, EVENTS.get(0).timestamp().getEpochSecond());
        assertEquals(314180000, EVENTS.get(0).timestamp().getNano());
    }

    @Test
    void awaitTakesTheFirstMatchAndLeavesOthersQueuedInOrder() {
        EventHub hub = new EventHub("vm", 1000);
        EventSubscription sub = hub.subscribe(e -> true, -1);
        EVENTS.forEach(hub::publish);
        QmpEvent completed = sub.await(e -> "completed".equals(e.dataText("status")), Duration.ZERO);
        assertEquals("MIGRATION", completed.name());
        assertEquals("STOP", sub.await("STOP", Duration.ZERO).name());
        List<QmpEvent> rest = sub.drain();
        assertEquals(EVENTS.size() - 2, rest.size());
        assertEquals(EVENTS.get(0), rest.get(0));
        assertNull(sub.poll(Duration.ofMillis(20)));
    }

    @Test
    void awaitTimesOutNamingTheEvent() {
        EventHub hub = new EventHub("web1", 10);
        EventSubscription sub = hub.subscribe(e -> true, -1);
        hub.publish(EVENTS.get(0));
        long t0 = System.nanoTime();
        QmpTimeoutException e = assertThrows(QmpTimeoutException.class, () -> sub.await("SHUTDOWN", Duration.ofMillis(100)));
        assertTrue(System.nanoTime() - t0 >= TimeUnit.MILLISECONDS.toNanos(95));
        assertEquals("VM 'web1': no event 'SHUTDOWN' within 100 ms (1 other event(s) queued)", e.getMessage());
    }

    @Test
    void awaitWakesUpOnArrival() throws Exception {
        EventHub hub = new EventHub("vm", 10);
        EventSubscription sub = hub.subscribe(e -> true, -1);
        CompletableFuture<QmpEvent> f = CompletableFuture.supplyAsync(() -> sub.await("SHUTDOWN", Duration.ofSeconds(5)));
        Thread.sleep(50);
        EVENTS.forEach(hub::publish);
        assertEquals("SHUTDOWN", f.get(2, TimeUnit.SECONDS).name());
    }

    @Test
    void filtersAndBacklogAreBoundedAndSequenced() {
        EventHub hub = new EventHub("vm", 3);
        EventSubscription stops = hub.subscribe(e -> e.name().equals("STOP"), -1);
        EVENTS.forEach(hub::publish);
        assertEquals(EVENTS.stream().filter(e -> e.name().equals("STOP")).count(), stops.size());
        assertEquals(EVENTS.subList(EVENTS.size() - 3, EVENTS.size()), hub.recent());
        assertEquals(EVENTS.size(), hub.nextSequence());
        // since an old sequence: only what the backlog still holds
        assertEquals(3, hub.subscribe(e -> true, 0).size());
        assertEquals(1, hub.subscribe(e -> true, EVENTS.size() - 1).size());
        assertEquals(0, hub.subscribe(e -> true, EVENTS.size()).size());
    }

    @Test
    void fullSubscriptionDropsOldest() {
        EventHub hub = new EventHub("vm", 0);
        EventSubscription sub = hub.subscribe(e -> true, -1);
        for (int i = 0; i < EventSubscription.CAPACITY + 5; i++) {
            hub.publish(EVENTS.get(i % EVENTS.size()));
        }
        assertEquals(EventSubscription.CAPACITY, sub.size());
        assertEquals(5, sub.droppedCount());
        assertEquals(EVENTS.get(5 % EVENTS.size()), sub.poll(Duration.ZERO));
    }

    @Test
    void closedSubscriptionStopsReceiving() {
        EventHub hub = new EventHub("vm", 10);
        EventSubscription sub = hub.subscribe(e -> true, -1);
        sub.close();
        hub.publish(EVENTS.get(0));
        assertEquals(0, sub.size());
        assertNull(sub.poll(Duration.ofMillis(10)));
        assertThrows(IllegalStateException.class, () -> sub.await("STOP", Duration.ZERO));
    }

    @Test
    void disconnectKeepsQueuedEventsThenFails() {
        EventHub hub = new EventHub("web1", 10);
        EventSubscription sub = hub.subscribe(e -> true, -1);
        hub.publish(EVENTS.get(0));
        hub.close(new QmpDisconnectedException("web1", null, "QMP connection unix:/x closed by peer"));
        assertEquals(EVENTS.get(0), sub.poll(Duration.ZERO));
        QmpDisconnectedException e = assertThrows(QmpDisconnectedException.class, () -> sub.poll(Duration.ofSeconds(5)));
        assertEquals("VM 'web1': QMP connection closed while waiting for the next event: QMP connection unix:/x closed by peer",
                e.getMessage());
        // a subscription made after the end fails at once instead of waiting out its timeout
        long t0 = System.nanoTime();
        assertThrows(QmpDisconnectedException.class, () -> hub.subscribe(x -> true, -1).await("STOP", Duration.ofSeconds(5)));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(1));
    }

    @Test
    void throwingFilterOnlyAffectsItsSubscription() {
        EventHub hub = new EventHub("vm", 10);
        EventSubscription bad = hub.subscribe(e -> {
            throw new IllegalStateException("boom");
        }, -1);
        EventSubscription good = hub.subscribe(e -> true, -1);
        hub.publish(EVENTS.get(0));
        assertEquals(0, bad.size());
        assertEquals(1, good.size());
    }
}

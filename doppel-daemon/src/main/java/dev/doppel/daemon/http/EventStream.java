package dev.doppel.daemon.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.daemon.events.DaemonEvent;
import dev.doppel.daemon.events.EventHub;
import io.vertx.core.Context;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.RoutingContext;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

/**
 * {@code GET /api/v1/events}: the event stream as Server-Sent Events ({@code id:}, {@code event:},
 * {@code data:} JSON). {@code ?types=a,b} filters; {@code Last-Event-ID} replays what the client
 * missed. A client that cannot keep up (its write queue full) is disconnected rather than buffered
 * without bound: it reconnects with Last-Event-ID.
 */
final class EventStream implements Handler<RoutingContext> {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final long KEEPALIVE_MS = 15_000;

    private final Vertx vertx;
    private final EventHub hub;

    EventStream(Vertx vertx, EventHub hub) {
        this.vertx = vertx;
        this.hub = hub;
    }

    @Override
    public void handle(RoutingContext ctx) {
        HttpServerResponse res = ctx.response();
        String typesParam = ctx.request().getParam("types");
        Set<String> types = typesParam == null || typesParam.isBlank() ? null : Set.of(typesParam.split(","));
        // Last-Event-ID: N replays the kept events after N (0: all kept, e.g. what a restarted daemon found)
        long after = parseLong(ctx.request().getHeader("Last-Event-ID"));
        res.setChunked(true).putHeader("content-type", "text/event-stream").putHeader("cache-control", "no-cache")
                .putHeader("x-accel-buffering", "no");
        res.write(": doppel event stream\n\n");
        Context context = vertx.getOrCreateContext();
        Consumer<DaemonEvent> subscriber = new Consumer<>() {
            @Override
            public void accept(DaemonEvent e) {
                if (types != null && !types.contains(e.type())) {
                    return;
                }
                context.runOnContext(v -> send(res, e, this));
            }
        };
        List<DaemonEvent> missed = hub.subscribe(subscriber, after);
        missed.forEach(e -> subscriber.accept(e));
        long timer = vertx.setPeriodic(KEEPALIVE_MS, id -> {
            if (!res.closed()) {
                res.write(": keepalive\n\n");
            }
        });
        res.closeHandler(v -> {
            hub.unsubscribe(subscriber);
            vertx.cancelTimer(timer);
        });
    }

    private void send(HttpServerResponse res, DaemonEvent e, Consumer<DaemonEvent> subscriber) {
        if (res.closed() || res.ended()) {
            hub.unsubscribe(subscriber);
            return;
        }
        if (res.writeQueueFull()) {
            hub.unsubscribe(subscriber);
            res.reset();
            return;
        }
        try {
            res.write("id: " + e.id() + "\nevent: " + e.type() + "\ndata: " + MAPPER.writeValueAsString(e) + "\n\n");
        } catch (JsonProcessingException ex) {
            res.write(": unencodable event " + e.id() + "\n\n");
        }
    }

    private static long parseLong(String s) {
        try {
            return s == null ? -1 : Long.parseLong(s.strip());
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}

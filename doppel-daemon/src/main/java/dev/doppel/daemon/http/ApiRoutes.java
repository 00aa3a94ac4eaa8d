package dev.doppel.daemon.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.daemon.ApiException;
import dev.doppel.daemon.HostServices;
import dev.doppel.daemon.backup.BackupSettings;
import dev.doppel.daemon.fork.ForkFamilies;
import dev.doppel.remus.service.ProtectionIntent;
import dev.doppel.vm.VmDefinition;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Vertx;
import io.vertx.core.WorkerExecutor;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import io.vertx.ext.web.handler.StaticHandler;
import io.vertx.micrometer.PrometheusScrapingHandler;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The REST API (described in {@code /openapi.yaml}): requests are parsed into typed values here, at
 * the edge, and the work runs on a worker pool — starting a VM, protecting it or forking it blocks
 * for seconds, and nothing blocks an event-loop thread.
 */
public final class ApiRoutes {
    private static final Logger log = LoggerFactory.getLogger(ApiRoutes.class);
    private static final ObjectMapper MAPPER = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, true);

    private final Vertx vertx;
    private final HostServices host;
    private final WorkerExecutor workers;
    private final Runnable stopDaemon;

    public ApiRoutes(Vertx vertx, HostServices host, Runnable stopDaemon) {
        this.vertx = vertx;
        this.host = host;
        this.stopDaemon = stopDaemon;
        // Long operations (a protection's initial synchronisation, a fork) may take minutes on TCG.
        this.workers = vertx.createSharedWorkerExecutor("doppel-api", 16, 30, TimeUnit.MINUTES);
    }

    /** The routes; {@code auth} (the TCP listener's bearer token, or null) runs on every request but for the dashboard's files. */
    public Router router(io.vertx.core.Handler<RoutingContext> auth, PrometheusMeterRegistry registry) {
        Router r = Router.router(vertx);
        // The dashboard's files come before the token check: a browser cannot send the token when it
        // opens the page, and the files hold no data. The page itself sends the token on every API call.
        r.get("/").handler(ctx -> ctx.redirect("/dashboard/"));
        // Vert.x matches "/dashboard" to "/dashboard/" too: redirect only the bare path (the page's links are relative).
        r.get("/dashboard").handler(ctx -> {
            if (ctx.request().path().equals("/dashboard")) {
                ctx.redirect("/dashboard/");
            } else {
                ctx.next();
            }
        });
        r.get("/dashboard/*").handler(StaticHandler.create("webroot/dashboard").setCachingEnabled(false));
        if (auth != null) {
            r.route().handler(auth);
        }
        r.route("/api/*").handler(BodyHandler.create().setBodyLimit(1 << 20));
        r.get("/api/v1/host").handler(ctx -> run(ctx, 200, host::describe));

        r.get("/api/v1/vms").handler(ctx -> run(ctx, 200, host::listVms));
        r.post("/api/v1/vms").handler(ctx -> run(ctx, 201, () -> host.vms().start(body(ctx, VmDefinition.class))));
        r.get("/api/v1/vms/:name").handler(ctx -> run(ctx, 200, () -> host.vm(ctx.pathParam("name"))));
        r.delete("/api/v1/vms/:name").handler(ctx -> run(ctx, 200, () -> host.stopVm(ctx.pathParam("name"),
                Duration.ofMillis(longParam(ctx, "graceMs", 5000)))));
        r.get("/api/v1/vms/:name/console").handler(ctx -> run(ctx, 200, () -> {
            String vm = ctx.pathParam("name");
            int lines = (int) longParam(ctx, "lines", 50);
            // A family member's console is tailed by its fork controller, not kept in its run directory.
            return Map.of("vm", vm, "lines", host.forks().isMember(vm) ? host.forks().console(vm, lines) : host.vms().console(vm, lines));
        }));

        r.post("/api/v1/vms/:name/protection").handler(ctx -> run(ctx, 200,
                () -> host.protections().protect(ctx.pathParam("name"), body(ctx, ProtectionIntent.class))));
        r.get("/api/v1/vms/:name/protection").handler(ctx -> run(ctx, 200, () -> {
            var s = host.protections().status(ctx.pathParam("name"));
            if (s == null) {
                throw new ApiException(404, ctx.pathParam("name"), "VM '" + ctx.pathParam("name") + "' is not protected from this host");
            }
            return s;
        }));
        r.delete("/api/v1/vms/:name/protection").handler(ctx -> run(ctx, 200, () -> {
            host.protections().unprotect(ctx.pathParam("name"));
            return Map.of("vm", ctx.pathParam("name"), "protection", "stopped; the VM runs on");
        }));

        r.get("/api/v1/backup").handler(ctx -> run(ctx, 200, () -> host.backup().view()));
        r.post("/api/v1/backup").handler(ctx -> run(ctx, 201, () -> host.backup().start(body(ctx, BackupSettings.class))));
        r.delete("/api/v1/backup").handler(ctx -> run(ctx, 200, () -> {
            host.backup().stop();
            return Map.of("backup", "stopped; restored VMs run on");
        }));

        r.get("/api/v1/families").handler(ctx -> run(ctx, 200, () -> host.forks().families()));
        r.post("/api/v1/families").handler(ctx -> run(ctx, 201,
                () -> host.forks().startParent(body(ctx, ForkFamilies.ParentRequest.class))));
        r.post("/api/v1/families/:vm/fork").handler(ctx -> run(ctx, 201, () -> {
            Map<?, ?> b = body(ctx, Map.class);
            Object n = b.get("clones");
            Object hosts = b.get("hosts");
            if (!(n instanceof Number num) || (hosts != null && !(hosts instanceof List<?> l && l.stream().allMatch(String.class::isInstance)))) {
                throw new ApiException(400, ctx.pathParam("vm"), "body must be {\"clones\": N} or {\"clones\": N, \"hosts\": [\"NAME\", ...]}");
            }
            List<String> names = hosts == null ? List.of() : ((List<?>) hosts).stream().map(String.class::cast).toList();
            return host.forks().fork(ctx.pathParam("vm"), num.intValue(), names);
        }));
        r.get("/api/v1/hosts").handler(ctx -> run(ctx, 200, () -> host.forks().hosts()));
        r.post("/api/v1/families/:vm/wait").handler(ctx -> run(ctx, 200, () -> Map.of("vm", ctx.pathParam("vm"),
                "exitCode", host.forks().await(ctx.pathParam("vm"), Duration.ofMillis(longParam(ctx, "timeoutMs", 60_000))))));
        r.delete("/api/v1/families/:vm").handler(ctx -> run(ctx, 200, () -> {
            host.forks().kill(ctx.pathParam("vm"));
            return Map.of("vm", ctx.pathParam("vm"), "killed", true);
        }));

        r.get("/api/v1/events").handler(new EventStream(vertx, host.events()));
        r.post("/api/v1/daemon/stop").handler(ctx -> {
            json(ctx, 202, Map.of("daemon", "stopping; VMs keep running"));
            vertx.setTimer(100, id -> stopDaemon.run());
        });

        r.get("/metrics").handler(PrometheusScrapingHandler.create(registry));
        r.get("/openapi.yaml").handler(ctx -> resource(ctx, "openapi.yaml", "application/yaml"));
        r.route().last().handler(ctx -> json(ctx, 404, Map.of("error", "no such endpoint: " + ctx.request().method() + " "
                + ctx.request().path() + " (see /openapi.yaml)")));
        return r;
    }

    private <T> void run(RoutingContext ctx, int status, Callable<T> work) {
        workers.<T>executeBlocking(work, false).onComplete(ar -> {
            if (ar.succeeded()) {
                json(ctx, status, ar.result());
            } else {
                fail(ctx, ar.cause());
            }
        });
    }

    private static void fail(RoutingContext ctx, Throwable t) {
        Map<String, Object> body = new LinkedHashMap<>();
        int status;
        if (t instanceof ApiException a) {
            status = a.status();
            if (a.vm() != null) {
                body.put("vm", a.vm());
            }
        } else if (t instanceof IllegalArgumentException || t instanceof JsonProcessingException) {
            status = 400;
        } else if (t instanceof IllegalStateException) {
            status = 409;
        } else {
            status = 500;
            log.warn("event=api-error method={} path={} cause=\"{}\"", ctx.request().method(), ctx.request().path(), t.toString());
        }
        String msg = t.getMessage() == null ? t.toString() : t.getMessage();
        body.put("error", msg);
        json(ctx, status, body);
    }

    private static void json(RoutingContext ctx, int status, Object value) {
        if (ctx.response().ended() || ctx.response().closed()) {
            return;
        }
        try {
            ctx.response().setStatusCode(status).putHeader("content-type", "application/json")
                    .end(MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(value) + "\n");
        } catch (JsonProcessingException e) {
            ctx.response().setStatusCode(500).end("{\"error\":\"cannot encode the answer\"}\n");
        }
    }

    private static <T> T body(RoutingContext ctx, Class<T> type) {
        String text = ctx.body() == null ? null : ctx.body().asString();
        if (text == null || text.isBlank()) {
            throw new ApiException(400, null, "a JSON body is required (see /openapi.yaml)");
        }
        try {
            return MAPPER.readValue(text, type);
        } catch (JsonProcessingException e) {
            Throwable c = e.getCause() instanceof IllegalArgumentException iae ? iae : e;
            throw new ApiException(400, null, "bad request body: " + (c == e ? e.getOriginalMessage() : c.getMessage()));
        }
    }

    private static long longParam(RoutingContext ctx, String name, long dflt) {
        String v = ctx.request().getParam(name);
        try {
            return v == null ? dflt : Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new ApiException(400, null, "query parameter " + name + " must be a number, got '" + v + "'");
        }
    }

    private static void resource(RoutingContext ctx, String name, String type) {
        try (InputStream in = ApiRoutes.class.getResourceAsStream("/" + name)) {
            if (in == null) {
                json(ctx, 404, Map.of("error", name + " is not packaged"));
                return;
            }
            ctx.response().putHeader("content-type", type).end(io.vertx.core.buffer.Buffer.buffer(in.readAllBytes()));
        } catch (IOException e) {
            json(ctx, 500, Map.of("error", e.getMessage()));
        }
    }
}

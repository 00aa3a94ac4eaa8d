package dev.doppel.daemon.dashboard;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.vm.FileTrees;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Debian's {@code chromium}, headless, driven over the Chrome DevTools Protocol: one page whose DOM a
 * test reads with JavaScript expressions. Everything it writes stays in one temporary directory (the
 * profile, and its HOME: the crash handler's database would otherwise go to ~/.config/chromium);
 * {@link #close} kills every process of this browser (its children, and the crash handlers that detach
 * from it) and deletes that directory.
 */
public final class HeadlessChromium implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(HeadlessChromium.class);
    private static final Duration START_TIMEOUT = Duration.ofSeconds(60);
    private static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration POLL = Duration.ofMillis(250);

    private final Path dir;
    private final Process process;
    private final List<String> console = new java.util.concurrent.CopyOnWriteArrayList<>();
    private DevToolsConnection devtools;
    private String session;

    private HeadlessChromium(Path dir, Process process) {
        this.dir = dir;
        this.process = process;
    }

    /**
     * Starts the browser with one blank page (console messages and uncaught errors recorded from then on).
     *
     * @param flags more command-line flags, e.g. {@code --ignore-certificate-errors-spki-list=...}
     */
    public static HeadlessChromium start(List<String> flags) throws IOException {
        Path dir = Files.createTempDirectory("doppel-chromium-");
        Path home = Files.createDirectories(dir.resolve("home"));
        List<String> cmd = new ArrayList<>(List.of("chromium",
                "--headless=new",
                "--no-sandbox",                 // root has no user namespace sandbox
                "--remote-debugging-port=0",    // the port it picks is written to DevToolsActivePort
                "--user-data-dir=" + dir.resolve("profile"),
                "--window-size=1400,1000",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--password-store=basic", "--mute-audio"));
        cmd.addAll(flags);
        cmd.add("about:blank");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("chromium.log").toFile());
        pb.environment().put("HOME", home.toString());
        pb.environment().put("XDG_CONFIG_HOME", home.resolve(".config").toString());
        pb.environment().put("XDG_CACHE_HOME", home.resolve(".cache").toString());
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            FileTrees.deleteRecursively(dir);
            throw new IOException("cannot start chromium (Debian package 'chromium'; ./scripts/setup installs it): " + e.getMessage(), e);
        }
        HeadlessChromium b = new HeadlessChromium(dir, p);
        try {
            b.connect();
            return b;
        } catch (IOException | RuntimeException e) {
            b.close();
            throw e;
        }
    }

    private void connect() throws IOException {
        Path portFile = dir.resolve("profile").resolve("DevToolsActivePort");
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        List<String> lines = List.of();
        while (lines.size() < 2) {
            if (!process.isAlive()) {
                throw new IOException("chromium exited (" + process.exitValue() + ") before DevTools listened: " + logTail());
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("chromium did not open DevTools within " + START_TIMEOUT.toSeconds() + " s: " + logTail());
            }
            sleep(Duration.ofMillis(100));
            if (Files.exists(portFile)) {
                lines = Files.readAllLines(portFile);
            }
        }
        devtools = DevToolsConnection.open(URI.create("ws://127.0.0.1:" + lines.get(0).strip() + lines.get(1).strip()), CALL_TIMEOUT);
        String target = devtools.call(null, "Target.createTarget", Map.of("url", "about:blank"), CALL_TIMEOUT).path("targetId").asText();
        session = devtools.call(null, "Target.attachToTarget", Map.of("targetId", target, "flatten", true), CALL_TIMEOUT)
                .path("sessionId").asText();
        devtools.onEvent(this::record);
        devtools.call(session, "Runtime.enable", Map.of(), CALL_TIMEOUT);
        devtools.call(session, "Page.enable", Map.of(), CALL_TIMEOUT);
    }

    private void record(JsonNode event) {
        if (!session.equals(event.path("sessionId").asText())) {
            return;
        }
        JsonNode params = event.path("params");
        switch (event.path("method").asText()) {
            case "Runtime.consoleAPICalled" -> {
                StringBuilder line = new StringBuilder("console." + params.path("type").asText() + ":");
                params.path("args").forEach(a -> line.append(' ').append(a.has("value") ? a.get("value").asText() : a.path("description").asText()));
                console.add(line.toString());
            }
            case "Runtime.exceptionThrown" -> {
                JsonNode d = params.path("exceptionDetails");
                console.add("uncaught: " + d.path("exception").path("description").asText(d.path("text").asText()));
            }
            default -> {
            }
        }
    }

    /** Loads {@code url} in the page and waits until its document is complete. */
    public void navigate(String url) throws IOException {
        JsonNode r = devtools.call(session, "Page.navigate", Map.of("url", url), CALL_TIMEOUT);
        if (r.hasNonNull("errorText")) {
            throw new IOException("loading " + url.replaceAll("#.*", "#...") + ": " + r.get("errorText").asText());
        }
        waitFor("the page to load", "document.readyState === 'complete'", Duration.ofSeconds(30));
    }

    /**
     * Evaluates a JavaScript expression in the page (promises awaited) and returns its value as JSON
     * (null for undefined).
     *
     * @throws IOException the expression threw (its message), or the browser did not answer
     */
    public JsonNode evaluate(String expression) throws IOException {
        JsonNode r = devtools.call(session, "Runtime.evaluate",
                Map.of("expression", expression, "returnByValue", true, "awaitPromise", true), CALL_TIMEOUT);
        if (r.has("exceptionDetails")) {
            JsonNode d = r.get("exceptionDetails");
            throw new IOException("'" + expression + "' threw: " + d.path("exception").path("description").asText(d.path("text").asText()));
        }
        return r.path("result").path("value");
    }

    /**
     * Polls {@code expression} until its value is truthy and returns that value.
     *
     * @throws AssertionError not within {@code timeout}: names {@code what} and shows the page's text and console
     */
    public JsonNode waitFor(String what, String expression, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        String lastError = null;
        while (true) {
            try {
                JsonNode v = evaluate(expression);
                if (truthy(v)) {
                    return v;
                }
                lastError = null;
            } catch (IOException e) {
                lastError = e.getMessage();   // e.g. the page is navigating: its context is gone for a moment
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the dashboard did not show " + what + " within " + timeout.toSeconds() + " s ("
                        + expression + (lastError == null ? "" : "; last error: " + lastError) + ")\n" + describe());
            }
            sleep(POLL);
        }
    }

    private static boolean truthy(JsonNode v) {
        return !(v == null || v.isMissingNode() || v.isNull() || (v.isBoolean() && !v.asBoolean())
                || (v.isNumber() && v.asDouble() == 0) || (v.isTextual() && v.asText().isEmpty()));
    }

    /** The page as text and the last console lines, for failure messages. */
    public String describe() {
        StringBuilder sb = new StringBuilder("--- page text ---\n");
        try {
            String text = evaluate("document.body ? document.body.innerText : ''").asText();
            sb.append(text, 0, Math.min(text.length(), 4000));
        } catch (IOException e) {
            sb.append("(unreadable: ").append(e.getMessage()).append(')');
        }
        List<String> lines = List.copyOf(console);
        sb.append("\n--- console (last 20 of ").append(lines.size()).append(") ---\n");
        lines.subList(Math.max(0, lines.size() - 20), lines.size()).forEach(l -> sb.append(l).append('\n'));
        return sb.toString();
    }

    /** The console messages and uncaught errors of the page so far. */
    public List<String> console() {
        return List.copyOf(console);
    }

    /** Writes a PNG of the page's viewport. */
    public void screenshot(Path png) throws IOException {
        String data = devtools.call(session, "Page.captureScreenshot", Map.of("format", "png"), CALL_TIMEOUT).path("data").asText();
        Files.createDirectories(png.toAbsolutePath().getParent());
        Files.write(png, Base64.getDecoder().decode(data));
    }

    /** This browser's directory (profile and HOME); gone after {@link #close}. */
    public Path directory() {
        return dir;
    }

    private String logTail() {
        try {
            List<String> lines = Files.readAllLines(dir.resolve("chromium.log"), StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /** Kills the browser's processes (SIGKILL: nothing of its profile is worth keeping) and deletes its directory. */
    @Override
    public void close() {
        if (devtools != null) {
            devtools.close();
        }
        // Children first, while they are still the browser's (killed, they would be adopted by init);
        // then the crash handlers, which detach at start: found by the directory their command line names.
        List<ProcessHandle> all = new ArrayList<>(process.descendants().toList());
        all.add(process.toHandle());
        all.addAll(HostProcesses.mentioning(dir.toString()));
        all.forEach(ProcessHandle::destroyForcibly);
        for (ProcessHandle h : all) {
            try {
                h.onExit().get(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                log.warn("event=chromium-process-lingers pid={} cause=\"{}\"", h.pid(), e.toString());
            }
        }
        HostProcesses.mentioning(dir.toString()).forEach(ProcessHandle::destroyForcibly);
        for (int attempt = 1; ; attempt++) {
            try {
                FileTrees.deleteRecursively(dir);
                return;
            } catch (RuntimeException e) {
                if (attempt == 5) {
                    log.warn("event=chromium-dir-not-deleted dir={} cause=\"{}\"", dir, e.toString());
                    return;
                }
                sleep(Duration.ofMillis(200));
            }
        }
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}

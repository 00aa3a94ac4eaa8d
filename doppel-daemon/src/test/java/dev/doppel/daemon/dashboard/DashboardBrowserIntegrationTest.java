package dev.doppel.daemon.dashboard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.daemon.Daemon;
import dev.doppel.daemon.DaemonConfig;
import dev.doppel.tls.Pki;
import dev.doppel.vm.PatchedQemuPrefix;
import dev.doppel.vm.VmRunDir;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The dashboard follows a real protected VM, in a real browser: a daemon in this JVM (its API on HTTPS
 * with a token, as an operator's browser reaches it), real COLO-patched QEMU, headless Chromium reading
 * the page's DOM over DevTools. The daemon is both primary and backup (both "hosts" share this
 * machine's run directory, so the restored VM is {@code NAME-bk}):
 * <ol>
 *   <li>the VM's row says running and PROTECTED, its chart gains checkpoint pauses (> 0 ms) and lag samples;</li>
 *   <li>kill -9 of the VM's QEMU: the page lists the failover, the VM's row turns dead and the restored
 *       VM's row appears, running; the chart marks the failover.</li>
 * </ol>
 * Screenshots of both moments go to {@code target/dashboard/}.
 */
@Tag("integration")
@Timeout(480)
class DashboardBrowserIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(DashboardBrowserIntegrationTest.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Path SCREENSHOTS = Path.of("target", "dashboard");

    @TempDir Path tmp;

    @Test
    void theDashboardFollowsAProtectedVmThroughAFailover() throws Exception {
        String vm = TestVms.uniqueName("dash");
        Path store = Path.of("/dev/shm", vm + "-store");   // the backup's checkpoints (tmpfs), this test's own
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "dashboard-test");
        Path tls = Pki.issue(pki, "127.0.0.1");
        byte[] secret = new byte[24];
        new SecureRandom().nextBytes(secret);
        String token = HexFormat.of().formatHex(secret);
        Path tokenFile = Files.writeString(tmp.resolve("token"), token + "\n");
        Path socket = tmp.resolve("run").resolve("doppeld.sock");
        Daemon daemon = Daemon.start(new DaemonConfig(tmp.resolve("state"), socket, new InetSocketAddress("127.0.0.1", 0), tls, tokenFile,
                patchedQemuPrefix(), System.getenv("DOPPEL_ACCEL")));
        Api api = new Api("https://127.0.0.1:" + daemon.tcpPort(), tls.resolve("ca-cert.pem"), token);
        List<String> problems = new ArrayList<>();
        Path browserDir = null;
        long started = System.nanoTime();
        try {
            browserDir = scenario(api, vm, store, tls, token);
        } finally {
            cleanUp(api, daemon, vm, problems);
            log.info("event=dashboard-test-done seconds={}", (System.nanoTime() - started) / 1_000_000_000);
        }

        // Nothing left: no QEMU or guard of either VM, no browser process or file, no run directory, no store.
        assertTrue(problems.isEmpty(), "clean-up: " + problems);
        for (String name : List.of(vm, vm + "-bk")) {
            List<String> left = HostProcesses.awaitNoneMentioning(name, Duration.ofSeconds(15));
            assertTrue(left.isEmpty(), "processes of " + name + " left: " + left);
            assertFalse(Files.exists(VmRunDir.of(name).path()), "run directory of " + name + " left");
        }
        assertFalse(Files.exists(store), "backup store " + store + " left");
        assertTrue(HostProcesses.mentioning(browserDir.toString()).isEmpty(), "chromium processes left");
        assertFalse(Files.exists(browserDir), "chromium directory " + browserDir + " left");
        assertFalse(Files.exists(socket), "the daemon's socket is left");
    }

    /** Returns the browser's directory (deleted by then) for the leak checks. */
    private Path scenario(Api api, String vm, Path store, Path tls, String token) throws Exception {
        JsonNode backup = api.call("POST", "/api/v1/backup",
                Map.of("listen", "127.0.0.1:0", "detectionMs", 1000, "store", store.toString()), 201);
        int backupPort = backup.path("port").asInt();
        assertTrue(backupPort > 0, "backup port: " + backup);
        api.call("POST", "/api/v1/vms", Map.of("name", vm, "memMiB", 256, "colo", true, "userNet", true, "run", "ticker"), 201);
        awaitGuestReady(api, vm);
        JsonNode prot = api.call("POST", "/api/v1/vms/" + vm + "/protection",
                Map.of("backup", "127.0.0.1:" + backupPort, "intervalMs", 100, "timeoutMs", 2000), 200);
        log.info("vm={} event=protected status={}", vm, prot);

        try (HeadlessChromium browser = HeadlessChromium.start(List.of("--ignore-certificate-errors-spki-list=" + spkiSha256(tls)))) {
            String row = "tr[data-vm=\"" + vm + "\"]";
            String chart = "[data-chart-vm=\"" + vm + "\"]";
            // 0. The page loads without the token (its files hold no data) and asks for it; a #token=... in the URL answers.
            browser.navigate(api.base + "/dashboard/");
            browser.waitFor("the token prompt", "!document.querySelector('#login').hidden"
                    + " && document.querySelector('#api').dataset.api === 'unauthorized'", Duration.ofSeconds(15));
            browser.navigate(api.base + "/dashboard/#token=" + token);
            browser.waitFor("the prompt gone and the API answering", "document.querySelector('#login').hidden"
                    + " && document.querySelector('#api').dataset.api === 'ok'", Duration.ofSeconds(15));
            assertEquals("", browser.evaluate("location.hash").asText(), "the token leaves the address bar once read");

            // 1. The protected VM: its row, the live event stream, its chart growing.
            browser.waitFor("the VM running and protected", "!!document.querySelector('" + row
                    + "[data-state=\"running\"][data-protection=\"PROTECTED\"]')", Duration.ofSeconds(30));
            browser.waitFor("the event stream live", "document.querySelector('#stream').dataset.stream === 'live'", Duration.ofSeconds(15));
            int before = browser.waitFor("the first checkpoint pauses charted", "+(document.querySelector('" + chart
                    + "')?.dataset.points || 0)", Duration.ofSeconds(30)).asInt();
            int after = browser.waitFor("more checkpoint pauses charted", "(n => n >= " + (before + 10) + " && n)(+document.querySelector('"
                    + chart + "').dataset.points)", Duration.ofSeconds(30)).asInt();
            double lastPause = browser.evaluate("+document.querySelector('" + chart + "').dataset.lastPauseMs").asDouble();
            assertTrue(lastPause > 0, "last checkpoint pause on the chart: " + lastPause + " ms");
            browser.waitFor("backup lag sampled", "+(document.querySelector('" + chart + "').dataset.lagPoints || 0) >= 2",
                    Duration.ofSeconds(10));
            log.info("vm={} event=chart-grows points_before={} points_after={} last_pause_ms={}", vm, before, after, lastPause);
            browser.screenshot(SCREENSHOTS.resolve("1-protected.png"));

            // 2. The primary dies: the backup (this same daemon) fails over to NAME-bk.
            long qemuPid = api.call("GET", "/api/v1/vms/" + vm, null, 200).path("pid").asLong();
            ProcessHandle qemu = ProcessHandle.of(qemuPid).orElseThrow(() -> new AssertionError("no QEMU with pid " + qemuPid));
            assertTrue(qemu.destroyForcibly(), "kill -9 of QEMU " + qemuPid);
            qemu.onExit().get(10, java.util.concurrent.TimeUnit.SECONDS);
            String restored = browser.waitFor("the failover of " + vm + " in the events", "document.querySelector('li[data-type=\"failover\"][data-vm=\""
                    + vm + "\"]')?.dataset.restoredAs", Duration.ofSeconds(90)).asText();
            assertEquals(vm + "-bk", restored, "the restored VM's name");
            browser.waitFor("the primary's row dead (or gone)", "(r => !r || r.dataset.state === 'dead')(document.querySelector('" + row + "'))",
                    Duration.ofSeconds(15));
            browser.waitFor("the restored VM running", "!!document.querySelector('tr[data-vm=\"" + restored
                    + "\"][data-state=\"running\"][data-origin=\"restored\"]')", Duration.ofSeconds(15));
            browser.waitFor("the failover marked on the chart", "!!document.querySelector('" + chart + " [data-mark=\"failover\"]')",
                    Duration.ofSeconds(5));
            browser.screenshot(SCREENSHOTS.resolve("2-failed-over.png"));
            assertEquals("running", api.call("GET", "/api/v1/vms/" + restored, null, 200).path("state").asText(),
                    "the API agrees: the restored VM runs");
            List<String> errors = browser.console().stream().filter(l -> l.startsWith("uncaught")).toList();
            assertTrue(errors.isEmpty(), "the page threw: " + errors);
            return browser.directory();
        }
    }

    /** Doppel's guest prints DOPPEL-READY once its workload runs: protect a booted guest, as an operator would. */
    private static void awaitGuestReady(Api api, String vm) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        while (System.nanoTime() < deadline) {
            JsonNode lines = api.call("GET", "/api/v1/vms/" + vm + "/console?lines=200", null, 200).path("lines");
            for (JsonNode l : lines) {
                if (l.asText().contains("DOPPEL-READY")) {
                    return;
                }
            }
            Thread.sleep(500);
        }
        throw new AssertionError("guest " + vm + " not ready within 180 s");
    }

    /** Stops what the test started, through the API, then the daemon; every failure is kept, none stops the rest. */
    private static void cleanUp(Api api, Daemon daemon, String vm, List<String> problems) {
        for (String name : List.of(vm + "-bk", vm)) {
            try {
                api.call("DELETE", "/api/v1/vms/" + name + "?graceMs=3000", null, 200, 404);
            } catch (Exception | AssertionError e) {
                problems.add("stopping " + name + ": " + e.getMessage());
            }
        }
        try {
            api.call("DELETE", "/api/v1/backup", null, 200, 404);
        } catch (Exception | AssertionError e) {
            problems.add("stopping the backup service: " + e.getMessage());
        }
        daemon.close();
    }

    /** The base64 SHA-256 of the server certificate's public key: what Chromium is told to accept from this test's CA. */
    private static String spkiSha256(Path tls) throws Exception {
        try (InputStream in = Files.newInputStream(tls.resolve("server-cert.pem"))) {
            X509Certificate cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
            return Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-256").digest(cert.getPublicKey().getEncoded()));
        }
    }

    private static Path patchedQemuPrefix() throws Exception {
        if (System.getProperty("doppel.root") == null) {
            Path root = Path.of("").toAbsolutePath();
            while (root != null && !Files.exists(root.resolve("scripts/build-qemu-colo"))) {
                root = root.getParent();
            }
            if (root == null) {
                throw new IllegalStateException("scripts/build-qemu-colo not found above " + Path.of("").toAbsolutePath());
            }
            System.setProperty("doppel.root", root.toString());
        }
        return PatchedQemuPrefix.find();
    }

    /** The daemon's API as a remote client sees it: HTTPS (this test's CA) and the bearer token. */
    private static final class Api {
        final String base;
        private final String token;
        private final HttpClient http;

        Api(String base, Path caCert, String token) throws Exception {
            this.base = base;
            this.token = token;
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            try (InputStream in = Files.newInputStream(caCert)) {
                trust.setCertificateEntry("doppel-ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext ssl = SSLContext.getInstance("TLS");
            ssl.init(null, tmf.getTrustManagers(), null);
            this.http = HttpClient.newBuilder().sslContext(ssl).connectTimeout(Duration.ofSeconds(10)).build();
        }

        /** One call; the answer's status must be one of {@code expected}. */
        JsonNode call(String method, String path, Object body, int... expected) throws IOException, InterruptedException {
            HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofMinutes(5))
                    .header("Authorization", "Bearer " + token)
                    .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                            : HttpRequest.BodyPublishers.ofString(MAPPER.writeValueAsString(body)));
            if (body != null) {
                req.header("content-type", "application/json");
            }
            HttpResponse<String> res = http.send(req.build(), HttpResponse.BodyHandlers.ofString());
            for (int s : expected) {
                if (res.statusCode() == s) {
                    return res.body().isBlank() ? MAPPER.nullNode() : MAPPER.readTree(res.body());
                }
            }
            throw new AssertionError(method + " " + path + ": HTTP " + res.statusCode() + " " + res.body());
        }
    }
}

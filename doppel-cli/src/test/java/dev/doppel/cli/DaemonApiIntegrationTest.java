package dev.doppel.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static dev.doppel.cli.ApiCurl.assertError;
import static dev.doppel.cli.ApiCurl.curl;
import static dev.doppel.cli.ApiCurl.local;
import static dev.doppel.cli.FamilyTrees.awaitForkReady;
import static dev.doppel.cli.FamilyTrees.familyPids;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.cli.ApiCurl.Curl;
import dev.doppel.cli.bench.CliChild;
import dev.doppel.daemon.testbed.DaemonProcess;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.tls.Pki;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's API as a stock client sees it: {@code curl} over the unix socket and over HTTPS with
 * the bearer token, the event stream read by curl, bad requests answered with a clear error that
 * changes nothing, a VM and a fork family driven end to end, and nothing left after the stops.
 */
@Tag("integration")
@Timeout(600)
class DaemonApiIntegrationTest {
    @TempDir Path tmp;

    @Test
    void aStockClientDrivesVmsAndForksThroughTheApi() throws Exception {
        String vm = TestVms.uniqueName("api");
        String family = TestVms.uniqueName("fam");
        Path home = Path.of("/dev/shm", "doppel-test-" + vm);
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "daemon api test CA");
        Path hostDir = Pki.issue(pki, "127.0.0.1");
        Path token = tmp.resolve("token");
        Files.writeString(token, "t0ken-" + Long.toHexString(System.nanoTime()) + "-abcdefgh\n");
        int port = freePort();
        // TCP needs TLS and a token: without them the daemon refuses to start, and says why.
        CliChild refused = CliChild.startWithEnvironment(java.util.Map.of("DOPPEL_RUN_DIR", tmp.resolve("r0").toString()),
                "daemon", "run", "--socket", tmp.resolve("s0/d.sock").toString(), "--state-dir", tmp.resolve("st0").toString(),
                "--listen", "127.0.0.1:" + port);
        assertTrue(refused.process().waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "a daemon without TLS on TCP must not run");
        refused.close();
        assertNotEquals(0, refused.process().exitValue());
        assertTrue(String.join("\n", refused.output()).contains("needs TLS and a token"), refused.tail());

        List<Process> sse = new ArrayList<>();
        long qemuPid;
        try (DaemonProcess d = DaemonProcess.start("api", home, Path.of("target/cli-logs"), "--listen", "127.0.0.1:" + port,
                "--tls", hostDir.toString(), "--token-file", token.toString())) {
            String sock = d.socket().toString();   // the same path after a restart
            assertEquals("rwxr-x---", PosixFilePermissions.toString(Files.getPosixFilePermissions(d.socket().getParent())));
            assertEquals("rw-rw----", PosixFilePermissions.toString(Files.getPosixFilePermissions(d.socket())));
            assertEquals(d.pid(), local(sock, "GET", "/api/v1/host", null).json().path("daemonPid").asLong());
            Path events = tmp.resolve("events.txt");
            sse.add(new ProcessBuilder("curl", "-sN", "--unix-socket", sock, "http://doppel/api/v1/events")
                    .redirectOutput(events.toFile()).redirectError(ProcessBuilder.Redirect.DISCARD).start());

            // Bad input: a clear error, nothing changed.
            assertError(local(sock, "POST", "/api/v1/vms", "{\"name\": \"x\", "), 400, "bad request body");
            assertError(local(sock, "POST", "/api/v1/vms", "{\"name\":\"" + vm + "\",\"colour\":\"red\"}"), 400, "colour");
            assertError(local(sock, "POST", "/api/v1/vms", "{\"name\":\"../etc\"}"), 400, "bad VM name");
            assertError(local(sock, "GET", "/api/v1/vms/nosuchvm", null), 404, "no VM 'nosuchvm'");
            assertError(local(sock, "DELETE", "/api/v1/vms/nosuchvm", null), 404, "no VM 'nosuchvm'");
            assertError(local(sock, "POST", "/api/v1/vms/nosuchvm/protection", "{\"backup\":\"127.0.0.1:1\"}"), 404, "nosuchvm");
            assertError(local(sock, "GET", "/api/v1/nothing", null), 404, "no such endpoint");
            assertEquals(0, local(sock, "GET", "/api/v1/vms", null).json().size());

            // A VM, start to stop.
            Curl started = local(sock, "POST", "/api/v1/vms", "{\"name\":\"" + vm + "\",\"memMiB\":128,\"run\":\"ticker\"}");
            assertEquals(201, started.status(), started.body());
            qemuPid = started.json().path("pid").asLong();
            assertTrue(ProcessHandle.of(qemuPid).isPresent(), "the VM's QEMU runs");
            assertError(local(sock, "POST", "/api/v1/vms", "{\"name\":\"" + vm + "\"}"), 409, "already running");
            awaitConsole(sock, vm, "DOPPEL-READY");
            JsonNode list = local(sock, "GET", "/api/v1/vms", null).json();
            assertEquals(1, list.size());
            assertEquals("running", list.get(0).path("state").asText());

            // The CLI's own words, answered by the daemon.
            java.util.Map<String, String> viaDaemon = java.util.Map.of("DOPPEL_DAEMON_SOCKET", sock, "DOPPEL_RUN_DIR", d.runDir().toString());
            String listed = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(60), "vm", "list"));
            assertTrue(listed.contains(vm) && listed.contains("running"), listed);
            String status = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(60), "status"));
            assertTrue(status.contains(vm) && status.contains("unprotected"), status);
            String second = vm + "-cli";
            String startedByCli = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(120), "vm", "start", second,
                    "--run", "none", "--mem", "128", "--wait-ready"));
            assertTrue(startedByCli.contains("owned by doppeld") && startedByCli.contains("guest ready"), startedByCli);
            assertEquals(2, local(sock, "GET", "/api/v1/vms", null).json().size());
            String stoppedByCli = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(60), "vm", "stop", second));
            assertTrue(stoppedByCli.contains("stopped VM " + second), stoppedByCli);
            assertEquals(1, local(sock, "GET", "/api/v1/vms", null).json().size());

            // TCP: HTTPS with the CA and the token (curl is the judge of the certificate).
            String url = "https://127.0.0.1:" + port + "/api/v1/vms";
            Curl noToken = curl("--cacert", pki.resolve("ca/ca-cert.pem").toString(), url);
            assertError(noToken, 401, "bearer token");
            Curl withToken = curl("--cacert", pki.resolve("ca/ca-cert.pem").toString(), "-H",
                    "Authorization: Bearer " + Files.readString(token).strip(), url);
            assertEquals(200, withToken.status(), withToken.body());
            assertEquals(vm, withToken.json().get(0).path("name").asText());
            assertTrue(HostCommand.tryRun(List.of("curl", "-s", "-o", "/dev/null", "http://127.0.0.1:" + port + "/api/v1/vms"))
                    .exitCode() != 0 || curl("http://127.0.0.1:" + port + "/api/v1/vms").status() != 200, "plain HTTP on the TLS port");

            // Metrics and the API's own description.
            String metrics = local(sock, "GET", "/metrics", null).body();
            assertTrue(metrics.contains("doppel_vms_running 1.0"), "metrics: " + metrics.lines().filter(l -> l.startsWith("doppel")).toList());
            assertTrue(local(sock, "GET", "/openapi.yaml", null).body().startsWith("openapi: 3"), "OpenAPI document");

            // A fork family: parent, two clones, kill one, wait on the other, end the family.
            Curl parent = local(sock, "POST", "/api/v1/families", "{\"name\":\"" + family + "\",\"memMiB\":256}");
            assertEquals(201, parent.status(), parent.body());
            awaitConsole(sock, family, "DOPPEL-READY");
            Curl forked = local(sock, "POST", "/api/v1/families/" + family + "/fork", "{\"clones\":2}");
            assertEquals(201, forked.status(), forked.body());
            assertEquals(2, forked.json().size());
            String clone1 = forked.json().get(0).path("name").asText();
            String clone2 = forked.json().get(1).path("name").asText();
            JsonNode tree = local(sock, "GET", "/api/v1/families", null).json();
            assertEquals(2, tree.get(0).path("children").size(), tree.toString());
            assertEquals(200, local(sock, "DELETE", "/api/v1/families/" + clone1, null).status());
            assertError(local(sock, "POST", "/api/v1/families/" + clone2 + "/wait?timeoutMs=300", null), 408, "still runs");
            assertEquals(-1, local(sock, "POST", "/api/v1/families/" + clone1 + "/wait?timeoutMs=5000", null).json().path("exitCode").asInt());
            assertEquals(200, local(sock, "DELETE", "/api/v1/families/" + family, null).status());

            // Families whose daemon is killed run on. The next daemon adopts the one that is whole (same
            // QEMUs), forks it again, notices a clone killed from outside, and ends it; the one whose clone
            // network was taken away meanwhile cannot be adopted: it is removed, processes and files, and reported.
            String kept = TestVms.uniqueName("keep");
            String broken = TestVms.uniqueName("brk");
            // The kept family through the CLI's words (fork start|clone|list), the daemon's clients.
            String familyStarted = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(120), "fork", "start", kept, "--mem", "128"));
            assertTrue(familyStarted.contains("family " + kept + " started"), familyStarted);
            assertEquals(201, local(sock, "POST", "/api/v1/families", "{\"name\":\"" + broken + "\",\"memMiB\":128}").status());
            awaitConsole(sock, kept, "DOPPEL-READY");
            String cloned = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(120), "fork", "clone", kept, "-n", "1"));
            assertTrue(cloned.contains("forked " + kept + " into 1 clones") && cloned.contains(kept + "-f1c1"), cloned);
            awaitConsole(sock, broken, "DOPPEL-READY");
            assertEquals(201, local(sock, "POST", "/api/v1/families/" + broken + "/fork", "{\"clones\":1}").status());
            awaitForkReady(sock, kept);   // the parent moved back onto a shared memory file: its process is settled
            Map<String, Long> pidsBefore = familyPids(local(sock, "GET", "/api/v1/families", null).json(), kept);
            String listedFamilies = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(60), "fork", "list"));
            for (Map.Entry<String, Long> m : pidsBefore.entrySet()) {
                assertTrue(listedFamilies.lines().anyMatch(l -> l.contains(m.getKey()) && l.contains(" " + m.getValue() + " ")
                        && l.endsWith("running")), "fork list should show " + m + ":\n" + listedFamilies);
            }
            assertEquals(2, pidsBefore.size(), "the kept family's parent and clone: " + pidsBefore);
            d.kill9();
            for (long pid : pidsBefore.values()) {
                assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "a family's QEMU died with its daemon");
            }
            HostCommand.run("ip", "netns", "del", "dpf-" + broken);
            d.startAgain();
            sock = d.socket().toString();
            String found = HostCommand.tryRun(List.of("curl", "-sN", "--max-time", "2", "-H", "Last-Event-ID: 0", "--unix-socket", sock,
                    "http://doppel/api/v1/events?types=family-lost,family-adopted,daemon-started")).stdout();
            sse.add(new ProcessBuilder("curl", "-sN", "--unix-socket", sock, "http://doppel/api/v1/events")
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(events.toFile())).redirectError(ProcessBuilder.Redirect.DISCARD).start());
            assertTrue(found.contains("event: family-adopted") && found.contains("\"vm\":\"" + kept + "\""), found);
            assertTrue(found.contains("event: family-lost") && found.contains("\"vm\":\"" + broken + "\""), found);
            assertEquals("", HostCommand.tryRun(List.of("pgrep", "-af", broken)).stdout().strip(), "the lost family's QEMUs");
            assertEquals(pidsBefore, familyPids(local(sock, "GET", "/api/v1/families", null).json(), kept),
                    "the adopted family runs in the same QEMUs");
            Curl again = local(sock, "POST", "/api/v1/families/" + kept + "/fork", "{\"clones\":1}");
            assertEquals(201, again.status(), "a fork of an adopted family: " + again.body());
            // A graceful stop lets the family go (it runs on), and the next daemon adopts it again.
            awaitForkReady(sock, kept);
            Map<String, Long> pidsAfterFork = familyPids(local(sock, "GET", "/api/v1/families", null).json(), kept);
            assertEquals(3, pidsAfterFork.size(), "parent and two clones: " + pidsAfterFork);
            d.stopGracefully();
            d.startAgain();
            sock = d.socket().toString();
            sse.add(new ProcessBuilder("curl", "-sN", "--unix-socket", sock, "http://doppel/api/v1/events")
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(events.toFile())).redirectError(ProcessBuilder.Redirect.DISCARD).start());
            assertEquals(pidsAfterFork, familyPids(local(sock, "GET", "/api/v1/families", null).json(), kept),
                    "after 'daemon stop' and a new daemon, the family runs in the same QEMUs");
            String firstClone = pidsBefore.keySet().stream().filter(n -> !n.equals(kept)).findFirst().orElseThrow();
            HostCommand.run("kill", "-9", Long.toString(pidsBefore.get(firstClone)));
            assertEquals(-1, local(sock, "POST", "/api/v1/families/" + firstClone + "/wait?timeoutMs=10000", null).json()
                    .path("exitCode").asInt(), "a clone killed from outside has ended");
            String killed = String.join("\n", CliChild.runWithEnvironment(viaDaemon, Duration.ofSeconds(60), "fork", "kill", kept));
            assertTrue(killed.contains(kept + " killed"), killed);
            Thread.sleep(1000);   // the family closes in the background once its last member is gone
            assertTrue(!dev.doppel.hostnet.NetNamespace.exists("dpf-" + kept), "the ended family's network must be removed");
            assertEquals("", HostCommand.tryRun(List.of("pgrep", "-af", kept)).stdout().strip(), "the ended family's QEMUs");
            JsonNode afterRestart = local(sock, "GET", "/api/v1/vms", null).json();
            assertEquals(1, afterRestart.size(), "only the VM outlives the daemon: " + afterRestart);
            assertEquals(qemuPid, afterRestart.get(0).path("pid").asLong());

            assertEquals(200, local(sock, "DELETE", "/api/v1/vms/" + vm, null).status());
            assertError(local(sock, "GET", "/api/v1/vms/" + vm, null), 404, "no VM");
            Thread.sleep(500);
            String stream = Files.readString(events);
            for (String expected : List.of("event: vm-started", "event: fork", "event: clone-exited", "event: vm-stopped")) {
                assertTrue(stream.contains(expected), expected + " missing from the event stream:\n" + stream);
            }
            assertTrue(stream.contains("\"vm\":\"" + clone1 + "\""), "the clone's exit names it");
        } finally {
            sse.forEach(Process::destroy);
        }
        assertTrue(ProcessHandle.of(qemuPid).isEmpty(), "the VM's QEMU must be gone");
        assertTrue(!Files.exists(home), "the daemon's directories must be gone");
        assertEquals("", HostCommand.tryRun(List.of("pgrep", "-af", vm + "|" + family)).stdout().strip(), "processes left");
    }

    private static void awaitConsole(String sock, String vm, String text) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        while (System.nanoTime() < deadline) {
            Curl c = local(sock, "GET", "/api/v1/vms/" + vm + "/console?lines=300", null);
            if (c.status() == 200 && c.body().contains(text)) {
                return;
            }
            Thread.sleep(500);
        }
        throw new AssertionError("VM " + vm + ": no '" + text + "' on its console");
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}

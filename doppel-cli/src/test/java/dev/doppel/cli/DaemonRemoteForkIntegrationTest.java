package dev.doppel.cli;

import static dev.doppel.cli.ApiCurl.assertError;
import static dev.doppel.cli.ApiCurl.local;
import static dev.doppel.cli.FamilyTrees.awaitForkReady;
import static dev.doppel.cli.FamilyTrees.familyPids;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.cli.ApiCurl.Curl;
import dev.doppel.daemon.testbed.DaemonProcess;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.testing.TestVms;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A remote fork owned by the daemon: through the API, a family's root is forked into clones on two
 * other hosts (namespaces with links of their own, made by the daemon); they fetch memory from the
 * daemon's page server by multicast, their guests run on with memory intact, the page-server and
 * multicast counters are scraped from {@code /metrics}, and the clones outlive a kill -9 of the
 * daemon (the next one adopts them with their hosts). Ending the family removes the hosts.
 */
@Tag("integration")
@Timeout(600)
class DaemonRemoteForkIntegrationTest {
    /** Doppel's dirtier workload: its writes, and the pages whose pattern it found broken. */
    private static final Pattern DIRTIER = Pattern.compile("dirtier t=\\d+ writes=(\\d+) .* corrupt=(\\d+)");

    @TempDir Path tmp;

    @Test
    void theDaemonForksOntoOtherHostsAndItsClonesOutliveIt() throws Exception {
        String family = TestVms.uniqueName("rfam");
        Path home = Path.of("/dev/shm", "doppel-test-" + family);
        Process sse = null;
        try (DaemonProcess d = DaemonProcess.start("rfork", home, Path.of("target/cli-logs"))) {
            String sock = d.socket().toString();
            Path events = tmp.resolve("events.txt");
            sse = new ProcessBuilder("curl", "-sN", "--unix-socket", sock, "http://doppel/api/v1/events")
                    .redirectOutput(events.toFile()).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            assertEquals(201, local(sock, "POST", "/api/v1/families", "{\"name\":\"" + family + "\",\"memMiB\":256}").status());
            awaitDirtier(sock, family, 1);

            // Bad input changes nothing: no host is made, no clone.
            assertError(local(sock, "POST", "/api/v1/families/" + family + "/fork", "{\"clones\":1,\"hosts\":[\"../b\"]}"), 400,
                    "bad host name");
            assertError(local(sock, "POST", "/api/v1/families/" + family + "/fork", "{\"clones\":1,\"hosts\":\"b\"}"), 400, "hosts");
            assertEquals(0, local(sock, "GET", "/api/v1/hosts", null).json().size());

            Curl forked = local(sock, "POST", "/api/v1/families/" + family + "/fork", "{\"clones\":2,\"hosts\":[\"b\",\"c\"]}");
            assertEquals(201, forked.status(), forked.body());
            Map<String, String> hostOf = new java.util.TreeMap<>();
            for (JsonNode c : forked.json()) {
                assertTrue(c.path("running").asBoolean(), c.toString());
                hostOf.put(c.path("name").asText(), c.path("host").asText());
            }
            assertEquals(List.of("b", "c"), List.copyOf(hostOf.values()), "one clone on each host: " + hostOf);
            JsonNode hosts = local(sock, "GET", "/api/v1/hosts", null).json();
            assertTrue(hosts.path("b").asBoolean() && hosts.path("c").asBoolean(), hosts.toString());
            // The kernel's word on where each clone's QEMU runs: in its host's network namespace.
            awaitForkReady(sock, family);   // the parent moved back onto a shared memory file: its process is settled
            Map<String, Long> pids = familyPids(local(sock, "GET", "/api/v1/families", null).json(), family);
            for (Map.Entry<String, String> c : hostOf.entrySet()) {
                String ns = HostCommand.run("ip", "netns", "identify", Long.toString(pids.get(c.getKey()))).strip();
                assertTrue(ns.startsWith("dph") && ns.endsWith("-" + c.getValue()), c + " runs in namespace '" + ns + "'");
            }

            // Each clone is made independent (every page pushed): then it no longer needs this daemon.
            for (String clone : hostOf.keySet()) {
                awaitEvent(events, "clone-independent", clone);
            }
            // The guests run on with intact memory: the dirtier checks the pattern of every page it rewrites.
            for (String clone : hostOf.keySet()) {
                awaitDirtier(sock, clone, 2);
            }
            Map<String, Double> m = metrics(sock);
            double requests = m.get("doppel_pageserver_requests_total");
            double streams = m.get("doppel_pageserver_clone_streams_bytes_total");
            double network = m.get("doppel_pageserver_network_sent_bytes_total");
            double saved = m.get("doppel_multicast_saved_bytes_total");
            assertTrue(requests > 0, "the clones fetched pages on first touch: " + m);
            assertTrue(m.get("doppel_pageserver_pages_sent_total") > 0, m.toString());
            // Two hosts got every page of one snapshot: multicast sent each page once for both.
            assertTrue(network < streams * 0.75, "multicast must carry less than the two streams: " + m);
            assertEquals(streams - network, saved, 1.0, "saved = streams - network: " + m);
            assertEquals(2.0, m.get("doppel_fork_clones_alive"), m.toString());

            // kill -9 of the daemon: the clones run on, and the next daemon adopts them on their hosts.
            d.kill9();
            for (long pid : pids.values()) {
                assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "a QEMU of the family died with its daemon");
            }
            d.startAgain();
            sock = d.socket().toString();
            assertEquals(pids, familyPids(local(sock, "GET", "/api/v1/families", null).json(), family),
                    "the adopted family runs in the same QEMUs");
            for (JsonNode c : FamilyTrees.members(local(sock, "GET", "/api/v1/families", null).json(), family)) {
                if (hostOf.containsKey(c.path("name").asText())) {
                    assertEquals(hostOf.get(c.path("name").asText()), c.path("host").asText(), c.toString());
                }
            }
            long writesBefore = dirtierWrites(sock, hostOf.keySet().iterator().next());
            awaitDirtierBeyond(sock, hostOf.keySet().iterator().next(), writesBefore);

            // A clone still fetching pages when the daemon dies cannot be adopted (its page server died): the
            // next daemon reports it lost and kills it, and adopts the rest.
            awaitForkReady(sock, family);
            Curl second = local(sock, "POST", "/api/v1/families/" + family + "/fork", "{\"clones\":1,\"hosts\":[\"b\"]}");
            assertEquals(201, second.status(), second.body());
            String fetching = second.json().get(0).path("name").asText();
            long fetchingPid = second.json().get(0).path("pid").asLong();
            d.kill9();
            d.startAgain();
            sock = d.socket().toString();
            String found = HostCommand.tryRun(List.of("curl", "-sN", "--max-time", "2", "-H", "Last-Event-ID: 0", "--unix-socket", sock,
                    "http://doppel/api/v1/events?types=family-adopted")).stdout();
            assertTrue(found.contains(fetching + ": lost, killed"), found);
            assertTrue(ProcessHandle.of(fetchingPid).map(p -> !p.isAlive()).orElse(true), "the clone that was still fetching must be gone");
            Map<String, Long> adopted = familyPids(local(sock, "GET", "/api/v1/families", null).json(), family);
            assertTrue(adopted.keySet().containsAll(hostOf.keySet()) && !adopted.containsKey(fetching), adopted.toString());

            // The family ends: its clones and the hosts it made go.
            assertEquals(200, local(sock, "DELETE", "/api/v1/families/" + family, null).status());
            awaitNoHosts(sock);
        } finally {
            if (sse != null) {
                sse.destroy();
            }
        }
        assertEquals("", HostCommand.tryRun(List.of("pgrep", "-af", family)).stdout().strip(), "processes left");
        assertTrue(HostCommand.run("ip", "netns", "list").lines().noneMatch(l -> l.startsWith("dph")),
                "the daemon's other hosts must be gone: " + HostCommand.run("ip", "netns", "list"));
        assertTrue(!Files.exists(home), "the daemon's directories must be gone");
    }

    /** Waits until the VM's dirtier has reported {@code n} status lines with no corrupt page. */
    private static void awaitDirtier(String sock, String vm, int n) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        while (System.nanoTime() < deadline) {
            List<Matcher> lines = dirtierLines(sock, vm);
            lines.forEach(l -> assertEquals("0", l.group(2), vm + ": corrupt pages: " + l.group()));
            if (lines.size() >= n) {
                return;
            }
            Thread.sleep(500);
        }
        throw new AssertionError(vm + ": fewer than " + n + " dirtier lines on its console");
    }

    private static void awaitDirtierBeyond(String sock, String vm, long writes) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline) {
            if (dirtierWrites(sock, vm) > writes) {
                return;
            }
            Thread.sleep(500);
        }
        throw new AssertionError(vm + ": its guest does not run on after the daemon's restart (writes stay " + writes + ")");
    }

    private static long dirtierWrites(String sock, String vm) throws Exception {
        List<Matcher> lines = dirtierLines(sock, vm);
        lines.forEach(l -> assertEquals("0", l.group(2), vm + ": corrupt pages: " + l.group()));
        return lines.isEmpty() ? 0 : Long.parseLong(lines.get(lines.size() - 1).group(1));
    }

    private static List<Matcher> dirtierLines(String sock, String vm) throws Exception {
        Curl c = local(sock, "GET", "/api/v1/vms/" + vm + "/console?lines=400", null);
        assertEquals(200, c.status(), c.body());
        List<Matcher> out = new java.util.ArrayList<>();
        for (JsonNode l : c.json().path("lines")) {
            Matcher m = DIRTIER.matcher(l.asText());
            if (m.find()) {
                out.add(m);
            }
        }
        return out;
    }

    private static void awaitEvent(Path events, String type, String vm) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        while (System.nanoTime() < deadline) {
            String stream = Files.readString(events);
            if (stream.lines().anyMatch(l -> l.startsWith("data:") && l.contains("\"type\":\"" + type + "\"")
                    && l.contains("\"vm\":\"" + vm + "\""))) {
                return;
            }
            if (stream.contains("\"type\":\"clone-not-independent\"") && stream.contains("\"vm\":\"" + vm + "\"")) {
                throw new AssertionError(vm + " did not become independent:\n" + stream);
            }
            Thread.sleep(300);
        }
        throw new AssertionError("no " + type + " event for " + vm + ":\n" + Files.readString(events));
    }

    private static void awaitNoHosts(String sock) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
            if (local(sock, "GET", "/api/v1/hosts", null).json().size() == 0) {
                return;
            }
            Thread.sleep(300);
        }
        throw new AssertionError("hosts still there: " + local(sock, "GET", "/api/v1/hosts", null).body());
    }

    /** The unlabelled doppel_ series of a scrape (Prometheus text), by name. */
    private static Map<String, Double> metrics(String sock) {
        Map<String, Double> m = new java.util.TreeMap<>();
        for (String line : local(sock, "GET", "/metrics", null).body().lines().toList()) {
            String[] f = line.split(" ");
            if (line.startsWith("doppel_") && f.length == 2 && !f[0].contains("{")) {
                m.put(f[0], Double.parseDouble(f[1]));
            }
        }
        return m;
    }
}

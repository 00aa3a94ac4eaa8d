package dev.doppel.cli.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.daemon.client.DaemonClient;
import dev.doppel.daemon.testbed.DaemonProcess;
import dev.doppel.daemon.testbed.DaemonRestartRound;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bench daemon}: the daemon as an operator's software sees it. Two daemons (hosts A and B,
 * their own run directories) with a protected KV guest on A; both killed with SIGKILL and restarted
 * ({@link DaemonRestartRound}); then, on the running pair: the API's latency for the VM list with
 * {@code --vms} VMs on A, the lag from a checkpoint's commit to its event at a stock SSE client
 * ({@code curl -N}), and the Prometheus series one protected VM exposes and how long a scrape takes.
 */
@Command(name = "daemon", description = "The daemon: API latency, event lag, metrics, and kill -9 restarts of both hosts' daemons.")
public final class DaemonBench implements Callable<Integer> {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Option(names = "--vms", defaultValue = "10", description = "VMs on host A while the list is timed (default ${DEFAULT-VALUE})") int vmCount;
    @Option(names = "--requests", defaultValue = "200", description = "timed GETs of the VM list (default ${DEFAULT-VALUE})") int requests;

    @Override
    public Integer call() throws Exception {
        String vm = "dbench" + ProcessHandle.current().pid();
        Path work = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-bench-daemon-");
        Path logs = Path.of(System.getProperty("java.io.tmpdir"), "doppel-bench-daemon-logs");
        DaemonRestartRound round = new DaemonRestartRound(work, logs, line -> System.err.println("daemon bench: " + line));
        Thread cleanup = new Thread(() -> closeQuietly(round), "bench-daemon-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);   // Ctrl-C: no daemon, VM or file left
        try {
            DaemonRestartRound.Outcome o = round.run(vm);
            DaemonProcess a = round.primary();
            System.err.println("daemon bench: starting " + (vmCount - 1) + " more VMs on host A");
            for (int i = 1; i < vmCount; i++) {
                a.call("POST", "/api/v1/vms", "{\"name\":\"" + vm + "-x" + i + "\",\"memMiB\":64,\"run\":\"none\"}");
            }
            Thread.sleep(15_000);   // the VMs boot (TCG on few cores): time the API at rest, not beside 9 boots
            Percentiles api = new Percentiles(timeList(a), requests);
            long[] lagMs = eventLag(a, vm, 100);
            Percentiles lag = new Percentiles(lagMs, lagMs.length);
            int seriesA = series(a, vm);
            int seriesB = series(round.backup(), vm);
            Percentiles scrape = new Percentiles(timeScrapes(a, 20), 20);

            BenchReport r = new BenchReport("doppeld: API, events, metrics, and kill -9 restarts (TCG, two daemons on one machine)");
            r.figure("api_p50_ms", "GET /api/v1/vms with " + vmCount + " VMs, p50 (ms)", api.at(50) / 1000.0);
            r.note("  p99 (ms)", String.format("%.2f", api.at(99) / 1000.0));
            r.figure("event_lag_ms_p50", "checkpoint committed → event at an SSE client (curl), p50 (ms)", (double) lag.at(50));
            r.note("  p99 (ms)", lag.at(99));
            r.figure("restart_survived", "kill -9 + restart of both daemons: same QEMU, no failover, no acked PUT lost (1 = yes)",
                    o.survived() ? 1 : 0);
            r.figure("restart_reprotect_ms", "daemon A restarted → VM protected again (ms)", o.primaryReprotectMs());
            r.figure("backup_restart_reprotect_ms", "daemon B restarted → VM protected again (ms)", o.backupReprotectMs());
            r.note("PUTs acknowledged / lost", o.acked() + " / " + (o.verification().missing().size() + o.verification().wrong().size()));
            r.note("failover events (both streams)", o.failovers());
            r.figure("metrics_series", "Prometheus series naming the protected VM (primary + backup host)", seriesA + seriesB);
            r.note("  on the primary / on the backup", seriesA + " / " + seriesB);
            r.figure("metrics_scrape_ms", "GET /metrics, p50 (ms)", scrape.at(50) / 1000.0);
            r.print(System.out);
            return o.survived() ? 0 : 1;
        } finally {
            closeQuietly(round);
            Runtime.getRuntime().removeShutdownHook(cleanup);
        }
    }

    private static void closeQuietly(DaemonRestartRound round) {
        try {
            round.close();
        } catch (Exception e) {
            System.err.println("daemon bench: cleanup: " + e.getMessage());
        }
    }

    private long[] timeList(DaemonProcess a) throws Exception {
        try (DaemonClient c = new DaemonClient(a.socket())) {
            for (int i = 0; i < 20; i++) {
                c.call("GET", "/api/v1/vms", null, 10);   // warm up the connection and the JIT
            }
            long[] micros = new long[requests];
            for (int i = 0; i < requests; i++) {
                long t0 = System.nanoTime();
                DaemonClient.Answer ans = c.call("GET", "/api/v1/vms", null, 10);
                micros[i] = (System.nanoTime() - t0) / 1000;
                if (MAPPER.readTree(ans.body()).size() != vmCount) {
                    throw new IllegalStateException("the list has " + MAPPER.readTree(ans.body()).size() + " VMs, expected " + vmCount);
                }
            }
            return micros;
        }
    }

    /** curl reads the stream; each checkpoint event's lag is its arrival minus its timeMillis (one clock). */
    private static long[] eventLag(DaemonProcess a, String vm, int n) throws Exception {
        Process curl = new ProcessBuilder("curl", "-sN", "--unix-socket", a.socket().toString(),
                "http://doppel/api/v1/events?types=checkpoint").redirectError(ProcessBuilder.Redirect.DISCARD).start();
        List<Long> lags = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(curl.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while (lags.size() < n && (line = in.readLine()) != null) {
                if (line.startsWith("data: ")) {
                    long nowMs = System.currentTimeMillis();   // the event's time has ms resolution too
                    JsonNode e = MAPPER.readTree(line.substring(6));
                    if (e.path("vm").asText().equals(vm)) {
                        lags.add(nowMs - e.path("timeMillis").asLong());
                    }
                }
            }
        } finally {
            curl.destroy();
            curl.waitFor();
        }
        return lags.stream().mapToLong(Long::longValue).toArray();
    }

    private static int series(DaemonProcess d, String vm) throws Exception {
        try (DaemonClient c = new DaemonClient(d.socket())) {
            String text = c.call("GET", "/metrics", null, 30).body();
            return (int) text.lines().filter(l -> !l.startsWith("#") && l.contains("vm=\"" + vm + "\"")).count();
        }
    }

    private static long[] timeScrapes(DaemonProcess d, int n) throws Exception {
        try (DaemonClient c = new DaemonClient(d.socket())) {
            c.call("GET", "/metrics", null, 30);
            long[] micros = new long[n];
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                c.call("GET", "/metrics", null, 30);
                micros[i] = (System.nanoTime() - t0) / 1000;
            }
            return micros;
        }
    }
}

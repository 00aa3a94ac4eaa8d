package dev.doppel.cli.bench;

import dev.doppel.cli.AccelOption;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.qmp.transport.UnixSocketTransport;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code doppel bench qmp}: sequential {@code query-status} round trips against a booted guest. */
@Command(name = "qmp", description = "QMP round-trip latency and throughput (query-status) on a booted guest.")
public final class QmpBench implements Callable<Integer> {
    @Option(names = "--seconds", defaultValue = "10", description = "measurement time (default ${DEFAULT-VALUE})") int seconds;
    @Option(names = "--mem", defaultValue = "256", description = "guest RAM in MiB (default ${DEFAULT-VALUE})") long memMiB;
    @Option(names = "--workload", defaultValue = "ticker", description = "guest workload while measuring (default ${DEFAULT-VALUE})") String workload;
    @Mixin AccelOption accel;

    @Override
    public Integer call() throws Exception {
        VmLauncher launcher = VmLauncher.create(accel.forced());
        String name = "bench-qmp-" + ProcessHandle.current().pid();
        var spec = VmLauncher.guestSpec(name, GuestImage.locate(), workload, Map.of()).memoryMiB(memMiB).build();
        try (VmProcess vm = launcher.start(spec)) {
            System.err.println("booting guest …");
            vm.console().awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
            QmpClient qmp = vm.qmp();
            for (int i = 0; i < 500; i++) {   // warm-up: JIT and QEMU's monitor path
                qmp.execute("query-status");
            }
            long[] rtt = new long[4_000_000];
            int n = 0;
            long start = System.nanoTime();
            long end = start + Duration.ofSeconds(seconds).toNanos();
            while (System.nanoTime() < end && n < rtt.length) {
                long t0 = System.nanoTime();
                qmp.execute("query-status");
                rtt[n++] = System.nanoTime() - t0;
            }
            double elapsed = (System.nanoTime() - start) / 1e9;
            Percentiles p = new Percentiles(rtt, n);
            // Baseline on the same monitor, same QEMU, right after: bare request/reply on one thread,
            // no client library. (QEMU serves one client per socket, so the client disconnects first.)
            qmp.close();
            Percentiles raw = rawRoundTrips(vm.runDir().qmpSocket(), seconds);
            vm.kill();
            new BenchReport("QMP round trips (query-status, sequential, one connection)")
                    .note("accelerator", launcher.accelerator())
                    .note("qemu", launcher.qemu().version())
                    .figure("calls", "calls", n)
                    .figure("seconds", "seconds", Math.round(elapsed * 100) / 100.0)
                    .figure("ops_per_s", "ops/s", Math.round(n / elapsed))
                    .figure("rtt_p50_us", "rtt p50 (µs)", p.at(50) / 1000)
                    .figure("rtt_p99_us", "rtt p99 (µs)", p.at(99) / 1000)
                    .figure("rtt_max_us", "rtt max (µs)", p.at(100) / 1000)
                    .figure("raw_rtt_p50_us", "baseline: bare socket, one thread, rtt p50 (µs)", raw.at(50) / 1000)
                    .figure("raw_rtt_p99_us", "baseline: bare socket rtt p99 (µs)", raw.at(99) / 1000)
                    .figure("client_vs_raw_p50", "client p50 ÷ bare p50", Math.round(100.0 * p.at(50) / raw.at(50)) / 100.0)
                    .figure("accel", "accel", launcher.accelerator().accelerator().qemuName())
                    .print(System.out);
        }
        return 0;
    }

    /** query-status over a second monitor with no client library: write, read one line, repeat. */
    private static Percentiles rawRoundTrips(Path socket, int seconds) throws Exception {
        try (UnixSocketTransport t = UnixSocketTransport.connect(socket)) {
            byte[] buf = new byte[65536];
            readLine(t, buf);                                   // greeting
            t.send("{\"execute\":\"qmp_capabilities\"}\n".getBytes(StandardCharsets.US_ASCII), null);
            readLine(t, buf);
            byte[] msg = "{\"execute\":\"query-status\",\"id\":1}\n".getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < 500; i++) {
                t.send(msg, null);
                readLine(t, buf);
            }
            long[] rtt = new long[4_000_000];
            int n = 0;
            long end = System.nanoTime() + Duration.ofSeconds(seconds).toNanos();
            while (System.nanoTime() < end && n < rtt.length) {
                long t0 = System.nanoTime();
                t.send(msg, null);
                readLine(t, buf);
                rtt[n++] = System.nanoTime() - t0;
            }
            return new Percentiles(rtt, n);
        }
    }

    /** Reads until a newline (QMP replies end with CRLF); the stream carries only our replies. */
    private static void readLine(UnixSocketTransport t, byte[] buf) throws java.io.IOException {
        while (true) {
            int n = t.read(buf);
            if (n < 0) {
                throw new java.io.EOFException("QMP monitor closed");
            }
            if (n > 0 && buf[n - 1] == '\n') {
                return;
            }
        }
    }
}

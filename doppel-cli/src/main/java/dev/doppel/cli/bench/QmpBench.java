package dev.doppel.cli.bench;

import dev.doppel.cli.AccelOption;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
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
    @Mixin AccelOption accel;

    @Override
    public Integer call() throws Exception {
        VmLauncher launcher = VmLauncher.create(accel.forced());
        var spec = VmLauncher.guestSpec("bench-qmp-" + ProcessHandle.current().pid(), GuestImage.locate(), "ticker", Map.of())
                .memoryMiB(memMiB).build();
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
            new BenchReport("QMP round trips (query-status, sequential, one connection)")
                    .note("accelerator", launcher.accelerator())
                    .note("qemu", launcher.qemu().version())
                    .figure("calls", "calls", n)
                    .figure("seconds", "seconds", Math.round(elapsed * 100) / 100.0)
                    .figure("ops_per_s", "ops/s", Math.round(n / elapsed))
                    .figure("rtt_p50_us", "rtt p50 (µs)", p.at(50) / 1000)
                    .figure("rtt_p99_us", "rtt p99 (µs)", p.at(99) / 1000)
                    .figure("rtt_max_us", "rtt max (µs)", p.at(100) / 1000)
                    .figure("accel", "accel", launcher.accelerator().accelerator().qemuName())
                    .print(System.out);
        }
        return 0;
    }
}

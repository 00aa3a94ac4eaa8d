package dev.doppel.cli.bench;

import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.vm.ConsoleLog;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel bench remus}: the dirtier runs unprotected, then protected (COLO checkpoints into
 * the Java backup on this machine) in the same run; the throughput ratio compares the two.
 */
@Command(name = "remus", description = "Checkpoint pause, dirty pages per epoch and guest slowdown under Remus protection.")
public final class RemusBench implements Callable<Integer> {
    static final Pattern DIRTIER = Pattern.compile("dirtier t=\\d+ writes=(\\d+) passes=\\d+ rate=(\\d+) corrupt=(\\d+)");

    @Option(names = "--interval", defaultValue = "50", description = "checkpoint interval in ms (default ${DEFAULT-VALUE})") int intervalMs;
    @Option(names = "--seconds", defaultValue = "20", description = "seconds per phase (default ${DEFAULT-VALUE})") int seconds;
    @Option(names = "--dirty-rate", defaultValue = "20000", description = "dirtier pages/s (default ${DEFAULT-VALUE})") int rate;
    @Option(names = "--dirty-mb", defaultValue = "16", description = "dirtier working set (default ${DEFAULT-VALUE})") int dirtyMb;
    @Option(names = "--mem", defaultValue = "256", description = "guest RAM in MiB (default ${DEFAULT-VALUE})") long memMiB;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        VmLauncher stock = VmLauncher.create(accel.forced());
        VmSpec spec = VmLauncher.guestSpec("br" + ProcessHandle.current().pid(), GuestImage.locate(), "dirtier",
                Map.of("doppel.dirty_mb", Integer.toString(dirtyMb), "doppel.dirty_rate", Integer.toString(rate))).memoryMiB(memMiB).build();
        BenchReport report;
        double unprotected;
        double pauseP50;
        try (LocalRemusPair pair = new LocalRemusPair(stock, spec, Duration.ofMillis(500))) {
            ConsoleLog console = pair.primary.console();
            console.awaitLine(DIRTIER, Duration.ofSeconds(120));
            Thread.sleep(2000);
            System.err.println("[bench remus] unprotected for " + seconds + " s");
            unprotected = dirtierRate(console, seconds);
            PrimaryProtector protector = pair.protect(Duration.ofMillis(intervalMs));
            Thread.sleep(2000);   // past the first checkpoints
            long checkpointsBefore = protector.stats().checkpoints();
            int epochsBefore = pair.epochs.size();
            System.err.println("[bench remus] protected, " + intervalMs + " ms interval, for " + seconds + " s");
            double protectedRate = dirtierRate(console, seconds);
            long checkpoints = protector.stats().checkpoints() - checkpointsBefore;
            List<EpochMetrics> window = List.copyOf(pair.epochs.subList(epochsBefore, pair.epochs.size()));
            long[] pages = window.stream().mapToLong(EpochMetrics::dataPages).toArray();
            long[] commit = window.stream().mapToLong(EpochMetrics::commitNanos).toArray();
            long[] bytes = window.stream().mapToLong(EpochMetrics::wireBytes).toArray();
            Percentiles pageP = new Percentiles(pages, pages.length);
            Percentiles commitP = new Percentiles(commit, commit.length);
            Percentiles bytesP = new Percentiles(bytes, bytes.length);
            long corrupt = lastCorrupt(console);
            pauseP50 = protector.stats().pausePercentileMs(50);
            report = new BenchReport("Remus checkpoints: " + intervalMs + " ms interval, dirtier " + dirtyMb + " MiB at " + rate
                    + " pages/s, " + memMiB + " MiB guest")
                    .note("accelerator", stock.accelerator())
                    .figure("interval_ms", "interval (ms)", intervalMs)
                    .figure("seconds", "seconds per phase", seconds)
                    .figure("checkpoints", "checkpoints in the protected phase", checkpoints)
                    .figure("checkpoints_per_s", "checkpoints per second", round(checkpoints / (double) seconds))
                    .figure("pause_p50_ms", "guest pause per checkpoint p50 (ms)", round(pauseP50))
                    .figure("pause_p99_ms", "guest pause p99 (ms)", round(protector.stats().pausePercentileMs(99)))
                    .figure("pause_max_ms", "guest pause max (ms)", round(protector.stats().maxPauseMs()))
                    .figure("dirty_pages_p50", "dirty pages per checkpoint p50", pageP.at(50))
                    .figure("dirty_pages_p99", "dirty pages per checkpoint p99", pageP.at(99))
                    .figure("epoch_bytes_p50", "bytes per checkpoint on the wire p50", bytesP.at(50))
                    .figure("backup_commit_p50_ms", "backup commit per epoch p50 (ms)", round(commitP.at(50) / 1e6))
                    .figure("unprotected_pages_per_s", "dirtier pages/s unprotected", Math.round(unprotected))
                    .figure("protected_pages_per_s", "dirtier pages/s protected", Math.round(protectedRate))
                    .figure("throughput_ratio", "throughput ratio protected ÷ unprotected", round(protectedRate / unprotected))
                    .figure("corrupt", "CORRUPT reports", corrupt);
        }
        // The same protection with mutual TLS on the control channel and the replication stream (QEMU's
        // stream then goes through the relay, which is the TLS end): a second VM of the same spec, after
        // the first one is gone, so the two never share the CPU.
        System.err.println("[bench remus] protected over mutual TLS, " + intervalMs + " ms interval, for " + seconds + " s");
        TlsPhase tlsPhase = tlsPhase(stock, spec);
        report.figure("pause_p50_ms_tls", "guest pause p50 with mutual TLS (ms)", round(tlsPhase.pauseP50()))
                .figure("pause_p99_ms_tls", "guest pause p99 with mutual TLS (ms)", round(tlsPhase.pauseP99()))
                .figure("tls_pause_cost_ms", "mutual TLS cost on the pause p50 (ms)", round(tlsPhase.pauseP50() - pauseP50))
                .figure("throughput_ratio_tls", "throughput ratio with mutual TLS", round(tlsPhase.pagesPerSecond() / unprotected))
                .figure("accel", "accel", stock.accelerator().accelerator().qemuName())
                .print(System.out);
        return 0;
    }

    private record TlsPhase(double pauseP50, double pauseP99, double pagesPerSecond) {
    }

    private TlsPhase tlsPhase(VmLauncher stock, VmSpec spec) throws Exception {
        VmSpec second = spec.toBuilder().name(spec.name() + "t").build();
        try (LocalRemusPair pair = new LocalRemusPair(stock, second, Duration.ofMillis(500), true)) {
            ConsoleLog console = pair.primary.console();
            console.awaitLine(DIRTIER, Duration.ofSeconds(120));
            PrimaryProtector protector = pair.protect(Duration.ofMillis(intervalMs));
            Thread.sleep(2000);   // past the first checkpoints, as in the plain phase
            double rate = dirtierRate(console, seconds);
            return new TlsPhase(protector.stats().pausePercentileMs(50), protector.stats().pausePercentileMs(99), rate);
        }
    }

    /** Dirtier pages written per second over the next {@code seconds}, from its own counter. */
    static double dirtierRate(ConsoleLog console, int seconds) throws Exception {
        Matcher start = console.awaitMatch(DIRTIER, console.mark(), Duration.ofSeconds(30));
        long t0 = System.nanoTime();
        long w0 = Long.parseLong(start.group(1));
        Thread.sleep(seconds * 1000L);
        Matcher end = console.awaitMatch(DIRTIER, console.mark(), Duration.ofSeconds(30));
        double elapsed = (System.nanoTime() - t0) / 1e9;
        return (Long.parseLong(end.group(1)) - w0) / elapsed;
    }

    static long lastCorrupt(ConsoleLog console) {
        long c = 0;
        for (String l : console.lines()) {
            Matcher m = DIRTIER.matcher(l);
            if (m.find()) {
                c = Long.parseLong(m.group(3));
            }
            if (l.startsWith("CORRUPT")) {
                c = Math.max(c, 1);
            }
        }
        return c;
    }

    private static double round(double v) {
        return Math.round(v * 100) / 100.0;
    }
}

package dev.doppel.cli.bench;

import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel bench failover}: protect the dirtier guest, kill -9 the primary, time until the
 * backup's copy runs, then let it run and count CORRUPT reports. Repeats {@code --rounds} times.
 */
@Command(name = "failover", description = "Time from kill -9 of the primary to the backup's copy running; corruption check.")
public final class FailoverBench implements Callable<Integer> {
    @Option(names = "--interval", defaultValue = "50", description = "checkpoint interval in ms (default ${DEFAULT-VALUE})") int intervalMs;
    @Option(names = "--rounds", defaultValue = "3", description = "kills (default ${DEFAULT-VALUE})") int rounds;
    @Option(names = "--run-seconds", defaultValue = "10", description = "protected run before each kill (default ${DEFAULT-VALUE})") int runSeconds;
    @Option(names = "--check-seconds", defaultValue = "15", description = "how long the restored guest is watched (default ${DEFAULT-VALUE})") int checkSeconds;
    @Option(names = "--host-loss", description = "simulate the whole primary host vanishing: no 'primary down' message, "
            + "the backup must notice the silence (detection timeout 500 ms)") boolean hostLoss;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        VmLauncher stock = VmLauncher.create(accel.forced());
        List<Long> killToRunning = new ArrayList<>();
        List<Long> detectionToRunning = new ArrayList<>();
        long corrupt = 0;
        long lostSeconds = 0;
        for (int round = 0; round < rounds; round++) {
            VmSpec spec = VmLauncher.guestSpec("bf" + ProcessHandle.current().pid() + "r" + round, GuestImage.locate(), "dirtier",
                    Map.of("doppel.dirty_mb", "16", "doppel.dirty_rate", "20000")).build();
            try (LocalRemusPair pair = new LocalRemusPair(stock, spec, Duration.ofMillis(500))) {
                pair.primary.console().awaitLine(RemusBench.DIRTIER, Duration.ofSeconds(120));
                pair.protect(Duration.ofMillis(intervalMs));
                Thread.sleep(runSeconds * 1000L);
                long lastT = lastT(pair.primary);
                long t0 = System.nanoTime();
                if (hostLoss) {
                    pair.control.unregister(spec.name());   // from now on nothing from the primary host arrives
                }
                pair.primary.kill();
                BackupGuard.Failover f = pair.guard.failover().get(60, TimeUnit.SECONDS);
                long ms = (System.nanoTime() - t0) / 1_000_000;
                try (VmProcess restored = f.vm()) {
                    killToRunning.add(ms);
                    detectionToRunning.add(Math.round(f.failoverMs()));
                    Thread.sleep(checkSeconds * 1000L);
                    corrupt += RemusBench.lastCorrupt(restored.console());
                    long resumedT = firstT(restored);
                    lostSeconds = Math.max(lostSeconds, Math.max(0, lastT - resumedT));
                    System.err.printf("[bench failover] round %d: kill → running %d ms (detection → running %.0f ms), epoch %d%n",
                            round, ms, f.failoverMs(), f.epoch());
                }
            }
        }
        Percentiles k = new Percentiles(killToRunning.stream().mapToLong(Long::longValue).toArray(), killToRunning.size());
        Percentiles d = new Percentiles(detectionToRunning.stream().mapToLong(Long::longValue).toArray(), detectionToRunning.size());
        new BenchReport("Remus failover: " + (hostLoss ? "primary host vanishes (silence)" : "kill -9 of the primary QEMU")
                + ", " + rounds + " rounds, " + intervalMs + " ms interval")
                .figure("host_loss", "host loss (detection by silence)", hostLoss)
                .note("accelerator", stock.accelerator())
                .figure("rounds", "rounds", rounds)
                .figure("failover_ms", "kill → backup's copy running, p50 (ms)", k.at(50))
                .figure("failover_max_ms", "kill → running, max (ms)", k.at(100))
                .figure("detection_to_running_ms", "detection → running, p50 (ms)", d.at(50))
                .figure("corrupt", "CORRUPT reports after failover", corrupt)
                .figure("guest_seconds_lost_max", "dirtier seconds repeated after failover, max", lostSeconds)
                .figure("accel", "accel", stock.accelerator().accelerator().qemuName())
                .print(System.out);
        return 0;
    }

    private static long lastT(VmProcess vm) {
        long t = 0;
        for (String l : vm.console().tail(20)) {
            Matcher m = T.matcher(l);
            if (m.find()) {
                t = Long.parseLong(m.group(1));
            }
        }
        return t;
    }

    private static long firstT(VmProcess vm) {
        for (String l : vm.console().lines()) {
            Matcher m = T.matcher(l);
            if (m.find()) {
                return Long.parseLong(m.group(1));
            }
        }
        return 0;
    }

    private static final java.util.regex.Pattern T = java.util.regex.Pattern.compile("dirtier t=(\\d+) ");
}

package dev.doppel.cli.bench;

import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.testbed.KvClient;
import dev.doppel.remus.testbed.KvFailoverRound;
import dev.doppel.remus.testbed.ProtectedKvService;
import dev.doppel.remus.testbed.RemusTestbed;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel bench remus-kv}: the guest's key-value server (fsync per PUT, disk mirrored to the
 * backup, output held per epoch) measured unprotected and then protected in the same run, on three
 * hosts (network namespaces); then {@code --kills} rounds of kill -9 of the primary at a random
 * moment, each checking every acknowledged PUT after failover.
 */
@Command(name = "remus-kv", description = "Client-visible cost of Remus (output commit + disk replication) and acknowledged-write loss over kills.")
public final class RemusKvBench implements Callable<Integer> {
    @Option(names = "--interval", defaultValue = "50", description = "checkpoint interval in ms (default ${DEFAULT-VALUE})") int intervalMs;
    @Option(names = "--seconds", defaultValue = "20", description = "seconds per measured phase (default ${DEFAULT-VALUE})") int seconds;
    @Option(names = "--kills", defaultValue = "10", description = "kill -9 rounds (default ${DEFAULT-VALUE})") int kills;
    @Option(names = "--window", defaultValue = "32", description = "PUTs in flight per client (default ${DEFAULT-VALUE})") int window;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        VmLauncher stock = VmLauncher.create(accel.forced());
        VmLauncher patched = stock.onPatchedQemu();
        GuestImage image = GuestImage.locate();
        ProtectionOptions options = new ProtectionOptions(Duration.ofMillis(intervalMs), Duration.ofSeconds(1),
                Duration.ofSeconds(120), Duration.ofSeconds(2));
        Path work = Files.createTempDirectory("doppel-bench-remus-kv");
        String id = "b" + ProcessHandle.current().pid() % 100000;
        Phase unprotected;
        Phase protectedPhase;
        double pauseP50;
        double releaseMs;
        try (RemusTestbed bed = RemusTestbed.create(id, 140);
             ProtectedKvService kv = ProtectedKvService.boot(bed, "bkv" + ProcessHandle.current().pid(), work.resolve("m"), patched, image)) {
            System.err.println("[bench remus-kv] unprotected for " + seconds + " s");
            unprotected = measure(kv, "u");
            kv.startBackup(stock, Duration.ofMillis(500));
            kv.protect(options);
            System.err.println("[bench remus-kv] protected, " + intervalMs + " ms interval, for " + seconds + " s");
            protectedPhase = measure(kv, "p");
            pauseP50 = kv.protector().stats().pausePercentileMs(50);
            releaseMs = kv.protector().meanOutputReleaseMs();
        }
        Random random = new Random();
        int lost = 0;
        int ahead = 0;
        int notOnDisk = 0;
        int survived = 0;
        long ackedBeforeKills = 0;
        double failoverMsSum = 0;
        for (int k = 0; k < kills; k++) {
            System.err.println("[bench remus-kv] kill round " + (k + 1) + " of " + kills);
            KvFailoverRound.Outcome o = KvFailoverRound.run(id + "k" + (k % 10), 141 + k, "bkvk" + k, work.resolve("k" + k),
                    patched, stock, image, options, 1000 + random.nextInt(4000));
            lost += o.lost().size();
            ahead += o.repliesAhead().size();
            notOnDisk += o.notOnDisk().size();
            survived += o.connectionSurvived() ? 1 : 0;
            ackedBeforeKills += o.ackedBeforeKill();
            failoverMsSum += o.failoverMs();
        }
        new BenchReport("Remus KV service: " + intervalMs + " ms interval, fsync per PUT, window " + window
                + ", disk mirrored, output held; " + kills + " kill -9 rounds")
                .note("accelerator", stock.accelerator())
                .figure("interval_ms", "interval (ms)", intervalMs)
                .figure("seconds", "seconds per phase", seconds)
                .figure("ops_per_s_unprotected", "PUTs/s unprotected", round(unprotected.opsPerSecond()))
                .figure("ops_per_s_protected", "PUTs/s protected", round(protectedPhase.opsPerSecond()))
                .figure("ops_per_s_ratio", "throughput ratio protected ÷ unprotected",
                        round(protectedPhase.opsPerSecond() / unprotected.opsPerSecond()))
                .figure("reply_latency_p50_ms_unprotected", "reply latency p50 unprotected (ms)", round(unprotected.p50Ms()))
                .figure("reply_latency_p50_ms", "reply latency p50 protected (ms)", round(protectedPhase.p50Ms()))
                .figure("reply_latency_p99_ms", "reply latency p99 protected (ms)", round(protectedPhase.p99Ms()))
                .figure("pause_p50_ms", "guest pause per checkpoint p50 (ms)", round(pauseP50))
                .figure("output_release_ms", "output release per checkpoint, mean (ms)", round(releaseMs))
                .figure("kills", "kill -9 rounds", kills)
                .figure("acked_before_kills", "PUTs acknowledged before the kills", ackedBeforeKills)
                .figure("acked_lost", "acknowledged PUTs lost", lost)
                .figure("replies_ahead", "replies before the backup's commit", ahead)
                .figure("acked_not_on_disk", "acknowledged records missing on the backup disk", notOnDisk)
                .figure("connections_survived", "client TCP connections that survived failover", survived)
                .figure("failover_ms_mean", "failover mean (ms)", round(failoverMsSum / Math.max(1, kills)))
                .figure("accel", "accel", stock.accelerator().accelerator().qemuName())
                .print(System.out);
        return 0;
    }

    /** PUTs/s and reply latency over {@code seconds} with one pipelined client. */
    private record Phase(double opsPerSecond, double p50Ms, double p99Ms) {
    }

    private Phase measure(ProtectedKvService kv, String prefix) throws Exception {
        try (KvClient c = kv.client(prefix, window)) {
            c.connect(Duration.ofSeconds(30));
            c.startPuts();
            Thread.sleep(2000);   // warm-up
            int n0 = c.acks().size();
            long t0 = System.nanoTime();
            Thread.sleep(seconds * 1000L);
            List<KvClient.Ack> acks = c.acks();
            double elapsed = (System.nanoTime() - t0) / 1e9;
            List<KvClient.Ack> window = acks.subList(n0, acks.size());
            long[] lat = window.stream().mapToLong(a -> a.ackedNanos() - a.sentNanos()).toArray();
            Percentiles p = new Percentiles(lat, lat.length);
            c.stopPuts();
            if (c.connectionFailure() != null) {
                throw new IllegalStateException("the KV client failed during the " + (prefix.equals("u") ? "unprotected" : "protected")
                        + " phase: " + c.connectionFailure().getMessage());
            }
            return new Phase(window.size() / elapsed, p.at(50) / 1e6, p.at(99) / 1e6);
        }
    }

    private static double round(double v) {
        return Math.round(v * 100) / 100.0;
    }
}

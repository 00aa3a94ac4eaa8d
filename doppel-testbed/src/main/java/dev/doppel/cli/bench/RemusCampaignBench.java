package dev.doppel.cli.bench;

import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.testbed.KvFailoverRound;
import dev.doppel.remus.testbed.KvFailoverRound.Kill;
import dev.doppel.remus.testbed.KvFailoverRound.KillMode;
import dev.doppel.vm.FileTrees;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code doppel bench remus-campaign}: many kill -9 rounds of the protected KV service, each on a fresh
 * three-host testbed with its own ZooKeeper, the kills spread over the moments that broke failover
 * before (see {@link KillMode}: plain, random point in the epoch, right after a checkpoint's last byte
 * with its commit held, between commit and release, during the initial synchronisation), and with
 * {@code --contention} every second kill beside a CPU hog on every core. Each round checks every
 * acknowledged PUT, output commit (by time and by the server's sequence numbers) and the backup's disk.
 * A round that throws (restore failed, guest unreadable, a failover where none was allowed) counts as
 * a failed restore, with its cause printed.
 */
@Command(name = "remus-campaign", description = "Kill -9 campaign over forced kill moments (and CPU contention): acknowledged writes lost, replies ahead, failed restores.")
public final class RemusCampaignBench implements Callable<Integer> {
    @Option(names = "--kills", defaultValue = "100", description = "kill rounds (default ${DEFAULT-VALUE})") int kills;
    @Option(names = "--contention", description = "every second round beside a CPU hog on every core") boolean contention;
    @Option(names = "--interval", defaultValue = "50", description = "checkpoint interval in ms (default ${DEFAULT-VALUE})") int intervalMs;
    @Option(names = "--modes", split = ",", description = "kill modes to cycle through (default: all of ${COMPLETION-CANDIDATES})")
    List<KillMode> modes = List.of(KillMode.values());
    @Option(names = "--seed", description = "random seed (default: time)") Long seed;
    @Mixin BenchAccelOption accel;

    /** The figures of one kill mode. */
    private static final class Tally {
        int kills;
        int ackedLost;
        int repliesAhead;
        int notOnDisk;
        int failedRestores;
        int noFailover;
        long lateCommitsRefused;
        final List<Long> failoverMs = new ArrayList<>();

        void add(KvFailoverRound.Outcome o) {
            kills++;
            ackedLost += o.lost().size();
            repliesAhead += o.repliesAhead().size();
            notOnDisk += o.notOnDisk().size();
            lateCommitsRefused += o.lateCommitsRefused();
            if (o.failoverEpoch() < 0) {
                noFailover++;
            } else {
                failoverMs.add(Math.round(o.failoverMs()));
            }
        }

        void addFrom(Tally t) {
            kills += t.kills;
            ackedLost += t.ackedLost;
            repliesAhead += t.repliesAhead;
            notOnDisk += t.notOnDisk;
            failedRestores += t.failedRestores;
            noFailover += t.noFailover;
            lateCommitsRefused += t.lateCommitsRefused;
            failoverMs.addAll(t.failoverMs);
        }

        long failoverPercentile(double p) {
            if (failoverMs.isEmpty()) {
                return -1;
            }
            return new Percentiles(failoverMs.stream().mapToLong(Long::longValue).toArray(), failoverMs.size()).at(p);
        }
    }

    @Override
    public Integer call() throws Exception {
        VmLauncher stock = VmLauncher.create(accel.forced());
        VmLauncher patched = stock.onPatchedQemu();
        GuestImage image = GuestImage.locate();
        ProtectionOptions options = new ProtectionOptions(Duration.ofMillis(intervalMs), Duration.ofSeconds(1),
                Duration.ofSeconds(120), Duration.ofSeconds(2));
        long s = seed != null ? seed : System.nanoTime();
        Random random = new Random(s);
        Path work = Files.createTempDirectory("doppel-bench-campaign");
        String id = "c" + ProcessHandle.current().pid() % 10000;
        Map<KillMode, Tally> byMode = new EnumMap<>(KillMode.class);
        Map<Boolean, Tally> byContention = new java.util.HashMap<>(Map.of(false, new Tally(), true, new Tally()));
        System.err.println("[bench remus-campaign] " + kills + " kills, modes " + modes + ", contention " + contention + ", seed " + s);
        try {
            for (int k = 0; k < kills; k++) {
                KillMode mode = modes.get(k % modes.size());
                boolean hog = contention && (k / modes.size()) % 2 == 1;   // every mode gets both halves
                Kill kill = new Kill(mode, mode == KillMode.INITIAL_SYNC ? 400 : 500 + random.nextInt(3000), hog);
                Tally t = byMode.computeIfAbsent(mode, m -> new Tally());
                Tally c = byContention.get(hog);
                long t0 = System.nanoTime();
                try {
                    KvFailoverRound.Outcome o = KvFailoverRound.run(id + (k % 10), 150 + (k % 50), "camp" + k, work.resolve("k" + k),
                            patched, stock, image, options, kill, KvFailoverRound.Loss.KILL);
                    t.add(o);
                    c.add(o);
                    System.err.printf("[bench remus-campaign] kill %d/%d %s%s: acks %d, lost %d, ahead %d, not on disk %d, %s, %.0f s%n",
                            k + 1, kills, mode, hog ? " +hog" : "", o.acks(), o.lost().size(), o.repliesAhead().size(),
                            o.notOnDisk().size(), o.failoverEpoch() < 0 ? "no failover (nothing committed)"
                                    : String.format("failover from epoch %d in %.0f ms", o.failoverEpoch(), o.failoverMs()),
                            (System.nanoTime() - t0) / 1e9);
                } catch (Exception e) {
                    t.kills++;
                    t.failedRestores++;
                    c.kills++;
                    c.failedRestores++;
                    System.err.printf("[bench remus-campaign] kill %d/%d %s%s: FAILED: %s%n", k + 1, kills, mode, hog ? " +hog" : "", e);
                }
                FileTrees.deleteRecursively(work.resolve("k" + k));
            }
        } finally {
            FileTrees.deleteRecursively(work);
        }
        Tally all = new Tally();
        byMode.values().forEach(all::addFrom);
        BenchReport r = new BenchReport("Remus kill campaign: " + kills + " kill -9 rounds of the KV service, " + intervalMs
                + " ms interval" + (contention ? ", half beside a CPU hog" : "") + " (seed " + s + ")");
        r.note("accelerator", stock.accelerator());
        r.note("per mode", "kills / acked lost / replies ahead / not on disk / failed restores / no failover / late commits refused / failover p50 ms");
        for (Map.Entry<KillMode, Tally> e : byMode.entrySet()) {
            r.note("  " + e.getKey(), row(e.getValue()));
        }
        if (contention) {
            r.note("  quiet", row(byContention.get(false)));
            r.note("  beside a CPU hog", row(byContention.get(true)));
        }
        r.figure("kills", "kill rounds", all.kills)
                .figure("acked_lost", "acknowledged PUTs lost", all.ackedLost)
                .figure("replies_ahead", "replies before the backup's commit", all.repliesAhead)
                .figure("acked_not_on_disk", "acknowledged records missing on the backup disk", all.notOnDisk)
                .figure("failed_restores", "rounds whose failover failed (or restored without a commit)", all.failedRestores)
                .figure("no_failover_nothing_committed", "initial-sync kills with nothing committed (no failover, correct)", all.noFailover)
                .figure("failover_ms_p50", "failover p50 (ms)", all.failoverPercentile(50))
                .figure("failover_ms_p99", "failover p99 (ms)", all.failoverPercentile(99))
                .figure("late_commits_refused", "late checkpoints refused after the seal", all.lateCommitsRefused)
                .figure("contention", "rounds beside a CPU hog", byContention.get(true).kills)
                .figure("accel", "accel", stock.accelerator().accelerator().qemuName())
                .print(System.out);
        return all.ackedLost == 0 && all.repliesAhead == 0 && all.notOnDisk == 0 && all.failedRestores == 0 ? 0 : 1;
    }

    private static String row(Tally t) {
        return t.kills + " / " + t.ackedLost + " / " + t.repliesAhead + " / " + t.notOnDisk + " / " + t.failedRestores + " / "
                + t.noFailover + " / " + t.lateCommitsRefused + " / " + t.failoverPercentile(50);
    }
}

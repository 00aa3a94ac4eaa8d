package dev.doppel.cli.bench;

import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.testbed.KvFailoverRound;
import dev.doppel.remus.testbed.KvFailoverRound.Kill;
import dev.doppel.remus.testbed.KvFailoverRound.KillMode;
import dev.doppel.remus.testbed.KvFailoverRound.Loss;
import dev.doppel.vm.FileTrees;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/**
 * {@code doppel bench ha-faults}: the fencing issue's fault matrix once, each scenario a KV round on a
 * fresh testbed (primary, backup, client, coordination hosts as network namespaces; mutual TLS; a
 * three-member ZooKeeper ensemble for the coordination faults) with PUT load, judged by the KV oracles
 * (acknowledged PUTs, output commit by time and by sequence numbers, the backup's disk), the
 * two-live-copies sampler and, for hostile peers, whether any got an answer.
 */
@Command(name = "ha-faults", description = "Fault matrix: kills, partitions, coordination faults, hostile peers; two live copies, lost writes.")
public final class HaFaultsBench implements Callable<Integer> {
    @Mixin BenchAccelOption accel;

    private record Scenario(String name, Loss loss, boolean contention) {
    }

    private static final List<Scenario> MATRIX = List.of(
            new Scenario("primary QEMU killed", Loss.KILL, false),
            new Scenario("primary QEMU killed, CPU saturated", Loss.KILL, true),
            new Scenario("primary host isolated", Loss.HOST_ISOLATED, false),
            new Scenario("primary cut off the ensemble", Loss.COORDINATION_CUT, false),
            new Scenario("primary cut off the ensemble, CPU saturated", Loss.COORDINATION_CUT, true),
            new Scenario("backup cut off the ensemble", Loss.BACKUP_COORDINATION_CUT, false),
            new Scenario("primary and backup partitioned", Loss.PARTITION, false),
            new Scenario("primary and backup partitioned, CPU saturated", Loss.PARTITION, true),
            new Scenario("one ensemble member lost", Loss.COORDINATOR_MEMBER_LOST, false),
            new Scenario("backup killed and restarted", Loss.BACKUP_RESTARTED, false),
            new Scenario("hostile peers (plain, other CA; trusted peer replaying control)", Loss.ROGUE_PEERS, false));

    @Override
    public Integer call() throws Exception {
        VmLauncher stock = VmLauncher.create(accel.forced());
        VmLauncher patched = stock.onPatchedQemu();
        GuestImage image = GuestImage.locate();
        ProtectionOptions options = new ProtectionOptions(Duration.ofMillis(50), Duration.ofSeconds(1),
                Duration.ofSeconds(120), Duration.ofSeconds(2));
        Path work = Files.createTempDirectory("doppel-bench-ha-faults");
        String id = "h" + ProcessHandle.current().pid() % 10000;
        BenchReport r = new BenchReport("HA fault matrix: " + MATRIX.size() + " scenarios, KV service under PUT load, 50 ms interval");
        r.note("accelerator", stock.accelerator());
        r.note("per scenario", "PUTs acked / lost / replies ahead / two live copies / rogue accepted / failover ms / lease ms");
        long twoLive = 0;
        int lost = 0;
        int ahead = 0;
        int rogue = 0;
        int failed = 0;
        List<Long> failover = new ArrayList<>();
        List<Long> lease = new ArrayList<>();
        try {
            int k = 0;
            for (Scenario s : MATRIX) {
                System.err.println("[bench ha-faults] " + (k + 1) + "/" + MATRIX.size() + ": " + s.name());
                try {
                    KvFailoverRound.Outcome o = KvFailoverRound.run(id + k, 200 + k, "haf" + k, work.resolve("s" + k), patched, stock,
                            image, options, new Kill(KillMode.PLAIN, 1500, s.contention()), s.loss());
                    lost += o.lost().size();
                    ahead += o.repliesAhead().size();
                    twoLive += o.twoLiveSamples();
                    rogue += o.rogueAccepted().size();
                    if (o.failoverEpoch() >= 0) {
                        failover.add(Math.round(o.failoverMs()));
                        lease.add(Math.round(o.leaseMs()));
                    }
                    r.note("  " + s.name(), o.acks() + " / " + o.lost().size() + " / " + o.repliesAhead().size() + " / "
                            + o.twoLiveSamples() + " / " + o.rogueAccepted().size() + " / "
                            + (o.failoverEpoch() >= 0 ? Math.round(o.failoverMs()) + " / " + Math.round(o.leaseMs()) : "no failover (correct)"));
                } catch (Exception e) {
                    failed++;
                    r.note("  " + s.name(), "FAILED: " + e.getMessage());
                    System.err.println("[bench ha-faults] " + s.name() + " FAILED: " + e);
                }
                FileTrees.deleteRecursively(work.resolve("s" + k));
                k++;
            }
        } finally {
            FileTrees.deleteRecursively(work);
        }
        r.figure("scenarios", "scenarios", MATRIX.size())
                .figure("failed_scenarios", "scenarios that failed (an exception: wrong outcome or broken round)", failed)
                .figure("two_live_copies", "moments with two live copies", twoLive)
                .figure("acked_lost", "acknowledged PUTs lost", lost)
                .figure("replies_ahead", "replies before the backup's commit", ahead)
                .figure("rogue_accepted", "hostile attempts that got an answer", rogue)
                .figure("failover_ms_p50", "failover p50 (ms), lease step included", p50(failover))
                .figure("lease_ms_p50", "lease acquisition at failover p50 (ms)", p50(lease))
                .figure("accel", "accel", stock.accelerator().accelerator().qemuName())
                .print(System.out);
        return failed == 0 && twoLive == 0 && lost == 0 && ahead == 0 && rogue == 0 ? 0 : 1;
    }

    private static long p50(List<Long> v) {
        if (v.isEmpty()) {
            return -1;
        }
        return new Percentiles(v.stream().mapToLong(Long::longValue).toArray(), v.size()).at(50);
    }
}

package dev.doppel.remus.testbed;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One round of Remus's client-visible promise: a protected KV guest on a fresh {@link RemusTestbed},
 * a client PUTting through a window, kill -9 of the primary QEMU after a given time, failover, then
 * every check a client and an operator can make. Shared by the end-to-end test (which asserts on the
 * outcome) and {@code doppel bench remus-kv} (which counts).
 */
public final class KvFailoverRound {
    private static final Logger log = LoggerFactory.getLogger(KvFailoverRound.class);

    /**
     * What a round found.
     *
     * @param acks             PUTs acknowledged (before and after the failover)
     * @param ackedBeforeKill  of those, acknowledged before the kill
     * @param lost             acknowledged keys missing or with another value after failover
     * @param repliesAhead     replies that reached the client before the backup committed any epoch
     *                         after their request (output running ahead of the backup), before the kill
     * @param notOnDisk        PUTs acknowledged before the kill whose record is not on the backup's disk
     * @param connectionSurvived the client's TCP connection carried replies again after failover
     * @param switchLearnedBackup the L2 switch learned the guest's MAC on the backup host's port
     */
    public record Outcome(int acks, int ackedBeforeKill, List<String> lost, List<String> repliesAhead, List<String> notOnDisk,
                          boolean connectionSurvived, boolean switchLearnedBackup, long failoverEpoch, double failoverMs) {
    }

    /** How the primary is lost. */
    public enum Loss {
        /** kill -9 of the primary QEMU (its controller notices and tells the backup at once). */
        KILL,
        /** the primary host's link goes down: QEMU and its controller live on, silent (detection timeout). */
        HOST_ISOLATED
    }

    private KvFailoverRound() {
    }

    public static Outcome run(String testbedId, int net, String vmName, Path work, VmLauncher primaryLauncher,
                              VmLauncher backupLauncher, GuestImage image, ProtectionOptions options, long killAfterMs)
            throws Exception {
        return run(testbedId, net, vmName, work, primaryLauncher, backupLauncher, image, options, killAfterMs, Loss.KILL);
    }

    public static Outcome run(String testbedId, int net, String vmName, Path work, VmLauncher primaryLauncher,
                              VmLauncher backupLauncher, GuestImage image, ProtectionOptions options, long killAfterMs,
                              Loss loss) throws Exception {
        try (RemusTestbed bed = RemusTestbed.create(testbedId, net);
             ProtectedKvService kv = ProtectedKvService.boot(bed, vmName, work, primaryLauncher, image)) {
            kv.startBackup(backupLauncher, Duration.ofMillis(500));
            kv.protect(options);
            try (KvClient client = kv.client(vmName, 32)) {
                client.connect(Duration.ofSeconds(30));
                client.startPuts();
                if (client.awaitAcks(20, Duration.ofSeconds(30)) < 20) {
                    throw new IllegalStateException("the protected KV server acknowledged no PUTs: " + client.connectionFailure());
                }
                Thread.sleep(killAfterMs);
                long killedAt = System.nanoTime();
                if (loss == Loss.KILL) {
                    kv.primary().kill();
                } else {
                    bed.isolate(bed.primary());
                }
                BackupGuard.Failover f = kv.guard().failover().get(60, TimeUnit.SECONDS);
                kv.own(f.vm());
                // QEMU's self-announce after the incoming migration moves the MAC to the backup's port.
                boolean moved = awaitSwitchPort(bed, bed.backup().uplink());
                boolean survived = client.connectionSurvives(Duration.ofSeconds(20));
                client.stopPuts();
                if (survived) {
                    Thread.sleep(1000);   // replies still in flight
                }
                List<KvClient.Ack> acks = client.acks();
                KvClient.Verification v;
                try {
                    v = KvClient.verify(bed.client().sockets(),
                            new InetSocketAddress(bed.guestIp(), ProtectedKvService.KV_PORT), acks, Duration.ofSeconds(30));
                } catch (java.io.IOException e) {
                    List<String> console = f.vm().console().lines();
                    throw new java.io.IOException("VM '" + vmName + "' restored from epoch " + f.epoch() + ": reading the "
                            + "acknowledged keys back failed (" + e.getMessage() + "); PUT stream: "
                            + (survived ? "survived" : String.valueOf(client.connectionFailure())) + "; restored console tail: "
                            + console.subList(Math.max(0, console.size() - 8), console.size()), e);
                }
                List<String> lost = new ArrayList<>(v.missing());
                lost.addAll(v.wrong());
                if (!lost.isEmpty()) {
                    log.error("vm={} lost keys after failover from epoch {}: {}", vmName, f.epoch(), lossDiagnosis(acks, lost, killedAt));
                }
                Outcome o = new Outcome(acks.size(), (int) acks.stream().filter(a -> a.ackedNanos() < killedAt).count(), lost,
                        outputAhead(acks, kv.commitTimes(), killedAt),
                        notOnDisk(acks, killedAt, kv.endpoint().disks().images().get(ProtectedKvService.DISK), image),
                        survived, moved, f.epoch(), f.failoverMs());
                log.info("vm={} round: {} PUTs acknowledged, failover from epoch {} in {} ms, lost {}, replies ahead {}, "
                                + "not on disk {}, connection survived {}, MAC moved {}", vmName, o.acks(), o.failoverEpoch(),
                        String.format("%.0f", o.failoverMs()), lost.size(), o.repliesAhead().size(), o.notOnDisk().size(),
                        survived, moved);
                return o;
            }
        }
    }

    /**
     * Where the lost keys sit in the server's PUT sequence, against the last sequence acknowledged before
     * the kill and the first ones the restored server answered. A restored sequence that goes on past the
     * lost ones means the restored state counted those PUTs but lacks their entries (memory inconsistent
     * within one checkpoint); one that restarts below them means the whole state is older than the
     * replies the client saw (output released ahead of the backup, or an older epoch restored).
     */
    static String lossDiagnosis(List<KvClient.Ack> acks, List<String> lost, long killedAt) {
        java.util.Set<String> lostKeys = new java.util.HashSet<>();
        lost.forEach(l -> lostKeys.add(l.split(" ", 2)[0]));
        List<Long> lostSeqs = acks.stream().filter(a -> lostKeys.contains(a.key())).map(KvClient.Ack::seq).sorted().toList();
        long lastBefore = acks.stream().filter(a -> a.ackedNanos() < killedAt).mapToLong(KvClient.Ack::seq).max().orElse(-1);
        List<Long> firstAfter = acks.stream().filter(a -> a.ackedNanos() >= killedAt).map(KvClient.Ack::seq).limit(5).toList();
        long contiguous = lostSeqs.isEmpty() ? 0 : lostSeqs.get(lostSeqs.size() - 1) - lostSeqs.get(0) + 1;
        return "lost seqs " + (lostSeqs.isEmpty() ? "[]" : lostSeqs.get(0) + ".." + lostSeqs.get(lostSeqs.size() - 1))
                + " (" + lostSeqs.size() + " keys over a span of " + contiguous + "), last seq acknowledged before the kill "
                + lastBefore + ", first seqs answered by the restored server " + firstAfter;
    }

    /** Replies that ran ahead of the backup, by either check below. */
    static List<String> outputAhead(List<KvClient.Ack> acks, long[] commits, long killedAt) {
        List<String> ahead = new ArrayList<>(repliesBeforeCommit(acks, commits, killedAt));
        ahead.addAll(sequenceReissued(acks, killedAt));
        return ahead;
    }

    /**
     * Output commit, by the server's PUT sequence numbers: every reply the client saw before the kill
     * comes from a committed epoch, so the restored server, which resumes from the last committed
     * epoch, hands out only higher numbers. A number seen before the kill and handed out again by
     * the restored server was a reply from an epoch the backup never committed. (The check by time,
     * {@link #repliesBeforeCommit}, cannot see that case: a request sent during epoch N, processed in
     * N+1 and its reply let out during N+1 arrives after N's commit.)
     */
    static List<String> sequenceReissued(List<KvClient.Ack> acks, long killedAt) {
        long firstRestored = acks.stream().filter(a -> a.ackedNanos() >= killedAt && a.seq() >= 0)
                .mapToLong(KvClient.Ack::seq).min().orElse(Long.MAX_VALUE);
        return acks.stream().filter(a -> a.ackedNanos() < killedAt && a.seq() >= firstRestored)
                .map(a -> a.key() + " (seq " + a.seq() + " seen before the kill; the restored server handed out "
                        + firstRestored + " and on again)")
                .toList();
    }

    /**
     * Output commit, from the client's side: a reply is produced after its request arrived, so in an
     * epoch that ends after the request was sent; it may reach the client only after some commit that
     * follows the request. Replies sent by the restored (new, unprotected) primary after the kill are
     * exempt. This is a lower bound only (see {@link #sequenceReissued}).
     */
    public static List<String> repliesBeforeCommit(List<KvClient.Ack> acks, long[] commits, long killedAt) {
        List<String> ahead = new ArrayList<>();
        for (KvClient.Ack a : acks) {
            if (a.ackedNanos() >= killedAt) {
                continue;
            }
            int i = Arrays.binarySearch(commits, a.sentNanos() + 1);
            int firstAfter = i >= 0 ? i : -i - 1;
            if (firstAfter >= commits.length || commits[firstAfter] > a.ackedNanos()) {
                ahead.add(a.key() + " (reply " + (a.ackedNanos() - a.sentNanos()) / 1000 + " µs after the request)");
            }
        }
        return ahead;
    }

    /**
     * PUTs acknowledged before the kill that are not on the backup's disk (kvserver fsyncs a record
     * before replying), read with the host build of kvdump while the restored guest runs (it only
     * appends).
     */
    public static List<String> notOnDisk(List<KvClient.Ack> acks, long killedAt, Path backupImage, GuestImage image) {
        HostCommand.Result r = HostCommand.tryRun(List.of(image.hostTool("kvdump").toString(), backupImage.toString()));
        Map<String, String> onDisk = new HashMap<>();
        r.stdout().lines().map(l -> l.split(" ")).filter(w -> w.length == 3 && w[0].matches("\\d+"))
                .forEach(w -> onDisk.put(w[1], w[2]));
        List<String> missing = new ArrayList<>();
        for (KvClient.Ack a : acks) {
            if (a.ackedNanos() < killedAt && !a.value().equals(onDisk.get(a.key()))) {
                missing.add(a.key());
            }
        }
        return missing;
    }

    static boolean awaitSwitchPort(RemusTestbed bed, String expected) throws InterruptedException {
        for (int i = 0; i < 150; i++) {
            if (expected.equals(bed.switchPortOf(RemusTestbed.GUEST_MAC))) {
                return true;
            }
            Thread.sleep(20);
        }
        return false;
    }
}

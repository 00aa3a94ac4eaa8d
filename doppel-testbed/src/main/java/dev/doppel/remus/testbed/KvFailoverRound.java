package dev.doppel.remus.testbed;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.qmp.EventSubscription;
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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
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
     * @param failoverEpoch    the epoch restored (-1: no failover, as when nothing was committed yet)
     * @param lateCommitsRefused checkpoints the backup refused to commit because the failover had sealed its store
     * @param twoLiveSamples   moments (sampled every 20 ms from the fault on) at which both copies were running
     *                         and able to let output out (see {@link LiveCopies})
     * @param leaseMs          of the failover time, the wait for the VM's lease
     * @param rogueAccepted    hostile peers' attempts that the backup answered with protocol bytes
     */
    public record Outcome(int acks, int ackedBeforeKill, List<String> lost, List<String> repliesAhead, List<String> notOnDisk,
                          boolean connectionSurvived, boolean switchLearnedBackup, long failoverEpoch, double failoverMs,
                          long lateCommitsRefused, long twoLiveSamples, double leaseMs, List<String> rogueAccepted) {
    }

    /** How the primary is lost. */
    public enum Loss {
        /** kill -9 of the primary QEMU (its controller notices and tells the backup at once). */
        KILL,
        /** the primary host's link goes down: QEMU and its controller live on, silent (detection timeout). */
        HOST_ISOLATED,
        /**
         * the primary host loses the coordination hosts only (clients and the backup still reach it): its
         * lease expires, it must fence itself, and the backup takes over
         */
        COORDINATION_CUT,
        /**
         * the backup host loses the coordination hosts only: its session expires, but it holds no lease and
         * needs none while the primary lives: protection goes on, no failover
         */
        BACKUP_COORDINATION_CUT,
        /**
         * primary and backup lose each other, both still reach the coordination service and the clients:
         * the primary goes on unprotected, the backup's store is stale, no failover
         */
        PARTITION,
        /** one member of the coordination ensemble dies: nothing happens, protection goes on */
        COORDINATOR_MEMBER_LOST,
        /**
         * hostile peers (no certificate, another CA's certificate) try the backup's control port, the
         * replication port and the NBD export: nothing may change, protection goes on
         */
        ROGUE_PEERS,
        /**
         * the backup's services die (connections reset) and come back 3 s later with a new store: the
         * primary goes on unprotected meanwhile, then protects itself again; no failover
         */
        BACKUP_RESTARTED;

        /** Whether the backup must take the VM over after this loss (the others must leave the VM where it runs). */
        public boolean failsOver() {
            return this == KILL || this == HOST_ISOLATED || this == COORDINATION_CUT;
        }
    }

    /** When, within the checkpoint cycle, the primary is killed. */
    public enum KillMode {
        /** after the given time, wherever the cycle is */
        PLAIN,
        /** after the given time, at a random point of the next epoch (a random delay after a checkpoint's stop) */
        JITTER,
        /**
         * as soon as a checkpoint's last byte is at the backup, before it commits; the commit is then held
         * until the failover has sealed the store (the dying primary's checkpoint arrives during the restore)
         */
        AFTER_LAST_BYTE,
        /** after a checkpoint is committed, before the primary may release its output; the release is held until the seal */
        HELD_COMMIT,
        /** during the initial synchronisation: nothing is committed yet, so no failover may happen */
        INITIAL_SYNC
    }

    /** One kill: its mode, when (ms after the client's first 20 acknowledgements), and whether a CPU hog runs beside it. */
    public record Kill(KillMode mode, long afterMs, boolean contention) {
        public static Kill plain(long afterMs) {
            return new Kill(KillMode.PLAIN, afterMs, false);
        }
    }

    /** The longest the held modes keep the backup's session waiting for the seal after the kill. */
    private static final long HOLD_MS = 5000;

    private KvFailoverRound() {
    }

    public static Outcome run(String testbedId, int net, String vmName, Path work, VmLauncher primaryLauncher,
                              VmLauncher backupLauncher, GuestImage image, ProtectionOptions options, long killAfterMs)
            throws Exception {
        return run(testbedId, net, vmName, work, primaryLauncher, backupLauncher, image, options, Kill.plain(killAfterMs), Loss.KILL);
    }

    public static Outcome run(String testbedId, int net, String vmName, Path work, VmLauncher primaryLauncher,
                              VmLauncher backupLauncher, GuestImage image, ProtectionOptions options, long killAfterMs,
                              Loss loss) throws Exception {
        return run(testbedId, net, vmName, work, primaryLauncher, backupLauncher, image, options, Kill.plain(killAfterMs), loss);
    }

    public static Outcome run(String testbedId, int net, String vmName, Path work, VmLauncher primaryLauncher,
                              VmLauncher backupLauncher, GuestImage image, ProtectionOptions options, Kill kill, Loss loss)
            throws Exception {
        // The coordination faults run against a real three-member ensemble, one member per host.
        int coordinators = loss == Loss.KILL || loss == Loss.HOST_ISOLATED || loss == Loss.ROGUE_PEERS
                || loss == Loss.BACKUP_RESTARTED ? 1 : 3;
        try (RemusTestbed bed = RemusTestbed.create(testbedId, net, coordinators);
             ProtectedKvService kv = ProtectedKvService.boot(bed, vmName, work, primaryLauncher, image);
             CpuHog hog = kill.contention() ? CpuHog.allCores() : null) {
            kv.startBackup(backupLauncher, Duration.ofMillis(500));
            if (kill.mode() == KillMode.INITIAL_SYNC) {
                return killDuringInitialSync(kv, options, kill);
            }
            kv.protect(options);
            try (KvClient client = kv.client(vmName, 32)) {
                client.connect(Duration.ofSeconds(30));
                client.startPuts();
                if (client.awaitAcks(20, Duration.ofSeconds(30)) < 20) {
                    throw new IllegalStateException("the protected KV server acknowledged no PUTs: " + client.connectionFailure());
                }
                Thread.sleep(kill.afterMs());
                requireUntouchedUntilTheFault(kv, vmName);
                try (LiveCopies live = new LiveCopies(kv)) {
                    List<String> rogue = new ArrayList<>();
                    long faultAt = loss == Loss.ROGUE_PEERS ? System.nanoTime() : inject(loss, bed, kv, kill, options);
                    if (loss == Loss.ROGUE_PEERS) {
                        rogue.addAll(kv.roguePeersAttack());
                    }
                    if (!loss.failsOver()) {
                        return checkNoFailover(bed, kv, client, loss, faultAt, image, vmName, live, rogue);
                    }
                    BackupGuard.Failover f = kv.guard().failover().get(60, TimeUnit.SECONDS);
                    kv.own(f.vm());
                    return check(bed, kv, client, f, faultAt, image, vmName, live);
                }
            }
        }
    }

    /**
     * The round's oracles judge the copy that runs after the fault it injects. A primary lost before that
     * (self-fenced when the machine starved its guard past the session timeout, or killed by someone else)
     * has already been failed over; judging that as this round's failover would be wrong either way, so
     * the round ends here and says what happened.
     */
    private static void requireUntouchedUntilTheFault(ProtectedKvService kv, String vmName) {
        if (kv.primary().isAlive() && !kv.guard().failover().isDone()) {
            return;
        }
        throw new IllegalStateException("VM '" + vmName + "': the primary was lost before the planned fault (primary alive: "
                + kv.primary().isAlive() + ", backup failed over: " + kv.guard().failover().isDone() + ", protection "
                + kv.protector().state() + ", last problem: " + kv.protector().status().lastProblem() + "); the guard's log is "
                + kv.guardLog());
    }

    /** Injects the loss; returns when (nanoTime). */
    private static long inject(Loss loss, RemusTestbed bed, ProtectedKvService kv, Kill kill, ProtectionOptions options)
            throws Exception {
        long t = System.nanoTime();
        switch (loss) {
            case KILL -> {
                return killPrimary(kv, kill, options);
            }
            case HOST_ISOLATED -> bed.isolate(bed.primary());
            case COORDINATION_CUT -> bed.coordinators().forEach(c -> bed.partition(bed.primary(), c));
            case BACKUP_COORDINATION_CUT -> bed.coordinators().forEach(c -> bed.partition(bed.backup(), c));
            case PARTITION -> bed.partition(bed.primary(), bed.backup());
            case BACKUP_RESTARTED -> {
                kv.killBackup();
                Thread.sleep(3000);
                kv.restartBackup();
            }
            case COORDINATOR_MEMBER_LOST -> {
                if (kv.ensemble().isEmpty()) {
                    throw new IllegalStateException("COORDINATOR_MEMBER_LOST needs a testbed with an ensemble");
                }
                kv.ensemble().get(0).close();
            }
            default -> throw new IllegalArgumentException(loss.toString());
        }
        log.info("vm={} fault={} injected", kv.spec().name(), loss);
        return t;
    }

    /**
     * A loss after which the VM must go on where it is: the primary keeps serving (unprotected after a
     * partition from its backup, still protected when a coordinator member died), the backup never
     * restores, and every acknowledged PUT is there, read from the one running copy.
     */
    private static Outcome checkNoFailover(RemusTestbed bed, ProtectedKvService kv, KvClient client, Loss loss, long faultAt,
                                           GuestImage image, String vmName, LiveCopies live, List<String> rogue) throws Exception {
        dev.doppel.remus.primary.ProtectionState expected = loss == Loss.PARTITION
                ? dev.doppel.remus.primary.ProtectionState.UNPROTECTED : dev.doppel.remus.primary.ProtectionState.PROTECTED;
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline && kv.protector().state() != expected) {
            Thread.sleep(50);
        }
        Thread.sleep(2000);   // PUTs go on after the fault
        if (kv.guard().failover().isDone() && !kv.guard().failover().isCompletedExceptionally()) {
            throw new IllegalStateException("VM '" + vmName + "': the backup restored after " + loss + ", where it must not");
        }
        if (!kv.primary().isAlive()) {
            throw new IllegalStateException("VM '" + vmName + "': the primary died after " + loss);
        }
        // After a partition the primary keeps trying to protect itself again (every 2 s, each attempt
        // refused at once: its backup's store is stale), so SYNCING shows for a moment between them.
        dev.doppel.remus.primary.ProtectionState now = kv.protector().state();
        boolean asExpected = now == expected
                || (loss == Loss.PARTITION && now == dev.doppel.remus.primary.ProtectionState.SYNCING
                    && kv.guard().state() == BackupGuard.State.STALE);
        if (!asExpected) {
            throw new IllegalStateException("VM '" + vmName + "': after " + loss + " the primary is " + now + ", expected " + expected);
        }
        boolean survived = client.connectionSurvives(Duration.ofSeconds(10));
        client.stopPuts();
        Thread.sleep(500);
        List<KvClient.Ack> acks = client.acks();
        KvClient.Verification v = KvClient.verify(bed.client().sockets(),
                new InetSocketAddress(bed.guestIp(), ProtectedKvService.KV_PORT), acks, Duration.ofSeconds(30));
        List<String> lost = new ArrayList<>(v.missing());
        lost.addAll(v.wrong());
        Outcome o = new Outcome(acks.size(), acks.size(), lost, List.of(), List.of(), survived, false, -1, Double.NaN,
                kv.endpoint().lateCommitsRefused(), live.twoLive(), Double.NaN, rogue);
        log.info("vm={} round ({}): {} PUTs acknowledged, no failover (correct), primary {}, lost {}, two live copies seen {}",
                vmName, loss, o.acks(), kv.protector().state(), lost.size(), o.twoLiveSamples());
        return o;
    }

    /** Kills the primary QEMU at the moment the mode names; returns when (nanoTime). */
    private static long killPrimary(ProtectedKvService kv, Kill kill, ProtectionOptions options) throws Exception {
        switch (kill.mode()) {
            case PLAIN -> {
                long t = System.nanoTime();
                kv.primary().kill();
                return t;
            }
            case JITTER -> {
                try (EventSubscription stop = kv.primary().qmp().subscribe("STOP")) {
                    stop.await("STOP", Duration.ofSeconds(10));
                    Thread.sleep(ThreadLocalRandom.current().nextLong(options.interval().toMillis() + 1));
                    long t = System.nanoTime();
                    kv.primary().kill();
                    return t;
                }
            }
            case AFTER_LAST_BYTE, HELD_COMMIT -> {
                CompletableFuture<Long> killed = new CompletableFuture<>();
                Consumer<Long> hook = epoch -> {
                    if (killed.isDone()) {
                        return;
                    }
                    long t = System.nanoTime();
                    kv.primary().kill();
                    killed.complete(t);
                    log.info("vm={} epoch={} kill mode={} primary killed on the backup's session thread; holding it until the seal",
                            kv.spec().name(), epoch, kill.mode());
                    long until = System.nanoTime() + HOLD_MS * 1_000_000;
                    while (!kv.endpoint().sealed() && System.nanoTime() < until) {
                        sleepQuietly(1);
                    }
                };
                if (kill.mode() == KillMode.AFTER_LAST_BYTE) {
                    kv.onCheckpointReceived(hook);
                } else {
                    kv.onCommit(hook);
                }
                return killed.get(30, TimeUnit.SECONDS);
            }
            default -> throw new IllegalArgumentException("not a kill during protection: " + kill.mode());
        }
    }

    /**
     * Kills the primary while the initial synchronisation runs. With nothing committed the backup must
     * not restore anything (a partial store is no VM); if the kill came after the initial commit after
     * all, it must fail over normally. The outcome's failover epoch is -1 when it (rightly) did not.
     */
    private static Outcome killDuringInitialSync(ProtectedKvService kv, ProtectionOptions options, Kill kill) throws Exception {
        CompletableFuture<Long> killed = CompletableFuture.supplyAsync(() -> {
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!kv.endpoint().sessionActive() && System.nanoTime() < deadline) {
                sleepQuietly(5);
            }
            sleepQuietly(ThreadLocalRandom.current().nextLong(Math.max(1, kill.afterMs())));
            long t = System.nanoTime();
            kv.primary().kill();
            return t;
        });
        try {
            kv.protect(options);
        } catch (RuntimeException e) {
            log.info("vm={} kill mode=INITIAL_SYNC protection ended as expected: {}", kv.spec().name(), e.getMessage());
        }
        killed.get(90, TimeUnit.SECONDS);
        Thread.sleep(3000);   // longer than detection + the lease wait of a dead primary
        long committed = kv.endpoint().store().committedEpoch();
        CompletableFuture<BackupGuard.Failover> f = kv.guard().failover();
        if (committed < 0) {
            if (f.isDone()) {
                throw new IllegalStateException("VM '" + kv.spec().name() + "': the backup restored although nothing was committed: "
                        + (f.isCompletedExceptionally() ? "failed attempt" : "VM started from epoch " + f.join().epoch()));
            }
            log.info("vm={} kill mode=INITIAL_SYNC: nothing committed, no failover (correct)", kv.spec().name());
            return new Outcome(0, 0, List.of(), List.of(), List.of(), false, false, -1, Double.NaN, kv.endpoint().lateCommitsRefused(), 0,
                    Double.NaN, List.of());
        }
        BackupGuard.Failover done = f.get(60, TimeUnit.SECONDS);
        kv.own(done.vm());
        log.info("vm={} kill mode=INITIAL_SYNC came after the initial commit: failed over from epoch {}", kv.spec().name(), done.epoch());
        return new Outcome(0, 0, List.of(), List.of(), List.of(), false, false, done.epoch(), done.failoverMs(),
                kv.endpoint().lateCommitsRefused(), 0, done.leaseMs(), List.of());
    }

    /** Every check a client and an operator can make after the failover. */
    private static Outcome check(RemusTestbed bed, ProtectedKvService kv, KvClient client, BackupGuard.Failover f, long killedAt,
                                 GuestImage image, String vmName, LiveCopies live) throws Exception {
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
                survived, moved, f.epoch(), f.failoverMs(), kv.endpoint().lateCommitsRefused(), live.twoLive(), f.leaseMs(), List.of());
        log.info("vm={} round: {} PUTs acknowledged, failover from epoch {} in {} ms, lost {}, replies ahead {}, "
                        + "not on disk {}, connection survived {}, MAC moved {}, late commits refused {}", vmName, o.acks(),
                o.failoverEpoch(), String.format("%.0f", o.failoverMs()), lost.size(), o.repliesAhead().size(),
                o.notOnDisk().size(), survived, moved, o.lateCommitsRefused());
        return o;
    }

    private static void sleepQuietly(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
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

package dev.doppel.remus.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.testbed.KvFailoverRound;
import dev.doppel.remus.testing.PatchedQemu;
import dev.doppel.vm.testing.TestVms;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Remus's promise to a client, end to end on three hosts (network namespaces on one L2 segment): a
 * client on the client host PUTs into the guest's key-value server (each PUT fsync'd to a disk that
 * is mirrored to the backup) while the primary checkpoints every 50 ms; the primary QEMU is killed
 * at a random moment; after failover on the backup host every acknowledged key is there with its
 * value and its record is on the backup's disk, no reply ever reached the client before the backup
 * had committed an epoch that followed the request, and the switch learned the guest on the backup.
 */
@Tag("integration")
@Timeout(1200)
class RemusKvIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(RemusKvIntegrationTest.class);
    private static final Duration INTERVAL = Duration.ofMillis(50);
    /**
     * A checkpoint's VM stop drains the guest's in-flight disk writes (local and to the backup):
     * under TCG with an fsync per PUT one in a few hundred took just over 300 ms, so the backup is
     * declared lost only after 1 s here.
     */
    static final ProtectionOptions OPTIONS = new ProtectionOptions(INTERVAL, Duration.ofSeconds(1), Duration.ofSeconds(120),
            Duration.ofSeconds(2));
    static final int ROUNDS = Integer.getInteger("doppel.kv.rounds", 5);

    @TempDir Path tmp;

    @Test
    void everyAcknowledgedPutSurvivesKill9OfThePrimary() throws Exception {
        long seed = System.nanoTime();
        Random random = new Random(seed);
        log.info("kill schedule seed={}", seed);
        int survived = 0;
        long totalAcked = 0;
        for (int round = 0; round < ROUNDS; round++) {
            KvFailoverRound.Outcome o = KvFailoverRound.run("k" + (ProcessHandle.current().pid() % 1000) + round, 100 + round,
                    TestVms.uniqueName("kv"), tmp.resolve("r" + round), PatchedQemu.launcher(), TestVms.launcher(), TestVms.guest(),
                    OPTIONS, 1000 + random.nextInt(5000));
            assertEquals(List.of(), head(o.lost()), "round " + round + ": acknowledged PUTs lost after failover");
            assertTrue(o.ackedBeforeKill() > 0, "round " + round + ": nothing acknowledged before the kill");
            assertEquals(List.of(), head(o.repliesAhead()), "round " + round + ": output ran ahead of the backup");
            assertEquals(List.of(), head(o.notOnDisk()), "round " + round + ": acknowledged records missing on the backup's disk");
            assertTrue(o.switchLearnedBackup(), "round " + round + ": the switch did not learn the guest's MAC on the backup's port");
            survived += o.connectionSurvived() ? 1 : 0;
            totalAcked += o.acks();
        }
        log.info("{} rounds: {} acknowledged PUTs, all present after failover; TCP connection survived {} of {} failovers",
                ROUNDS, totalAcked, survived, ROUNDS);
    }

    /**
     * The primary host drops off the network (its QEMU and controller keep running, silent): the
     * backup notices the silence after its detection timeout and fails over; the client's
     * acknowledged PUTs are all there, from a guest now on the backup host.
     */
    @Test
    void everyAcknowledgedPutSurvivesLossOfThePrimaryHost() throws Exception {
        KvFailoverRound.Outcome o = KvFailoverRound.run("h" + (ProcessHandle.current().pid() % 10000), 110,
                TestVms.uniqueName("kvh"), tmp.resolve("host"), PatchedQemu.launcher(), TestVms.launcher(), TestVms.guest(),
                OPTIONS, 2000, KvFailoverRound.Loss.HOST_ISOLATED);
        assertEquals(List.of(), head(o.lost()), "acknowledged PUTs lost after the primary host vanished");
        assertTrue(o.ackedBeforeKill() > 0, "nothing acknowledged before the host vanished");
        assertEquals(List.of(), head(o.repliesAhead()), "output ran ahead of the backup");
        assertEquals(List.of(), head(o.notOnDisk()), "acknowledged records missing on the backup's disk");
        assertTrue(o.switchLearnedBackup(), "the switch did not learn the guest's MAC on the backup's port");
        log.info("primary host lost: failover from epoch {} in {} ms after the silence was detected, connection survived: {}",
                o.failoverEpoch(), String.format("%.0f", o.failoverMs()), o.connectionSurvived());
    }

    /**
     * The failover races of the failover-loss issue, forced on real QEMU: the primary is killed (1) the
     * moment a checkpoint's last byte is at the backup, whose commit is then held until the failover
     * seals the store first, so that checkpoint's commit must be refused and the epoch before it
     * restored; (2) after a commit, with the primary's release held — that epoch is restored; (3)
     * during the initial synchronisation — with nothing committed no VM may be restored. No
     * acknowledged PUT may be lost and no reply may run ahead in any of them.
     */
    @Test
    void killsAtForcedMomentsOfTheCheckpointLoseNothing() throws Exception {
        int net = 111;
        for (KvFailoverRound.KillMode mode : List.of(KvFailoverRound.KillMode.AFTER_LAST_BYTE, KvFailoverRound.KillMode.HELD_COMMIT,
                KvFailoverRound.KillMode.INITIAL_SYNC)) {
            KvFailoverRound.Outcome o = KvFailoverRound.run("f" + (ProcessHandle.current().pid() % 1000) + (net - 111), net++,
                    TestVms.uniqueName("kvf"), tmp.resolve(mode.name()), PatchedQemu.launcher(), TestVms.launcher(), TestVms.guest(),
                    OPTIONS, new KvFailoverRound.Kill(mode, mode == KvFailoverRound.KillMode.INITIAL_SYNC ? 300 : 1500, false),
                    KvFailoverRound.Loss.KILL);
            assertEquals(List.of(), head(o.lost()), mode + ": acknowledged PUTs lost after failover");
            assertEquals(List.of(), head(o.repliesAhead()), mode + ": output ran ahead of the backup");
            assertEquals(List.of(), head(o.notOnDisk()), mode + ": acknowledged records missing on the backup's disk");
            switch (mode) {
                case AFTER_LAST_BYTE -> {
                    assertEquals(1, o.lateCommitsRefused(), "the checkpoint that arrived as the primary died was not refused");
                    assertTrue(o.ackedBeforeKill() > 0, "nothing acknowledged before the kill");
                }
                case HELD_COMMIT -> {
                    assertEquals(0, o.lateCommitsRefused(), "a commit was refused although none came after the seal");
                    assertTrue(o.ackedBeforeKill() > 0, "nothing acknowledged before the kill");
                }
                default -> log.info("initial-sync kill: {}", o.failoverEpoch() < 0 ? "no failover, nothing was committed"
                        : "came after the initial commit, failed over from epoch " + o.failoverEpoch());
            }
        }
    }

    private static List<String> head(List<String> l) {
        return l.subList(0, Math.min(5, l.size()));
    }
}

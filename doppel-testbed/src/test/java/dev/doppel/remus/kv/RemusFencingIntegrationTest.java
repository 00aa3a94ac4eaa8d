package dev.doppel.remus.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.testbed.KvFailoverRound;
import dev.doppel.remus.testbed.KvFailoverRound.Kill;
import dev.doppel.remus.testbed.KvFailoverRound.Loss;
import dev.doppel.remus.testing.PatchedQemu;
import dev.doppel.vm.testing.TestVms;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Faults against the coordination that decides who runs the VM, on the KV testbed with a real
 * three-member ZooKeeper ensemble (one member per network namespace), PUT load throughout, and the
 * KV oracles plus the two-live-copies sampler:
 * <ul>
 *   <li>the primary host loses the ensemble only (clients and backup still reach it): its lease
 *       expires, it kills its own QEMU, the backup takes over;</li>
 *   <li>the backup host loses the ensemble only: nothing happens (it needs no lease while the primary
 *       lives), protection goes on;</li>
 *   <li>primary and backup lose each other while both reach the ensemble and the clients: the primary
 *       records that it runs unprotected and serves on; the backup's store is stale; no failover;</li>
 *   <li>one ensemble member dies: nothing happens, protection goes on;</li>
 *   <li>hostile peers on the client host (plain TCP, another CA's certificate) try the backup's control
 *       port, the replication port and the NBD export: every attempt is refused, protection goes on;</li>
 *   <li>the backup's services die and come back: the primary goes on unprotected, then is protected
 *       again with a new store; no failover.</li>
 * </ul>
 * The primary's lease is held by the VM's guard process, as in production. In each: no acknowledged PUT lost, no reply ahead of a commit, never two live copies.
 */
@Tag("integration")
@Timeout(900)
class RemusFencingIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(RemusFencingIntegrationTest.class);

    @TempDir Path tmp;

    @Test
    void coordinationFaultsLeaveExactlyOneLiveCopyAndLoseNothing() throws Exception {
        int net = 120;
        for (Loss loss : List.of(Loss.COORDINATION_CUT, Loss.BACKUP_COORDINATION_CUT, Loss.PARTITION, Loss.COORDINATOR_MEMBER_LOST, Loss.ROGUE_PEERS,
                Loss.BACKUP_RESTARTED)) {
            KvFailoverRound.Outcome o = KvFailoverRound.run("z" + (ProcessHandle.current().pid() % 1000) + (net - 120), net++,
                    TestVms.uniqueName("kvz"), tmp.resolve(loss.name()), PatchedQemu.launcher(), TestVms.launcher(), TestVms.guest(),
                    RemusKvIntegrationTest.OPTIONS, Kill.plain(1500), loss);
            assertEquals(List.of(), head(o.lost()), loss + ": acknowledged PUTs lost");
            assertEquals(List.of(), head(o.repliesAhead()), loss + ": output ran ahead of the backup");
            assertEquals(List.of(), head(o.notOnDisk()), loss + ": acknowledged records missing on the backup's disk");
            assertEquals(0, o.twoLiveSamples(), loss + ": two live copies of the VM at once");
            assertEquals(List.of(), o.rogueAccepted(), loss + ": a hostile peer got through");
            assertTrue(o.acks() > 0, loss + ": nothing acknowledged");
            assertEquals(loss.failsOver(), o.failoverEpoch() >= 0, loss + ": failover " + (loss.failsOver() ? "expected" : "must not happen"));
            log.info("{}: {} PUTs acknowledged, {}", loss, o.acks(),
                    o.failoverEpoch() >= 0 ? String.format("failover from epoch %d in %.0f ms", o.failoverEpoch(), o.failoverMs())
                            : "no failover");
        }
    }

    private static List<String> head(List<String> l) {
        return l.subList(0, Math.min(5, l.size()));
    }
}

package dev.doppel.clone;

import static dev.doppel.clone.ForkFixture.assertCleanFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import dev.doppel.clone.pageserver.multicast.MulticastDistribution;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Multicast distribution (SnowFlock's mcdist) on real QEMU: 8 clones of a running dirtier on 2
 * other hosts, each host serving its clones from a page cache that the origin fills by multicast.
 * Every clone stays correct, and the origin sends less than twice what a single clone fetched
 * (unicast would send about eight times).
 */
@Tag("integration")
@Timeout(300)
class RemoteForkMulticastIntegrationTest {
    @TempDir Path tmp;
    private ForkFixture fx;
    private RemoteHosts hosts;

    @AfterEach
    void cleanUp() throws Exception {
        try {
            if (fx != null) {
                fx.close();
            }
        } finally {
            if (hosts != null) {
                hosts.close();
            }
        }
    }

    @Test
    void eightClonesOnTwoHostsCostTheOriginLessThanTwoWorkingSets() throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withPageServer(PageServerOptions.defaults().withMulticast(true)));
        hosts = new RemoteHosts(2);
        ForkableVm parent = fx.startDirtier("rc-mc", 16, 1000, fx.dataDisk("rc-mc"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 8, hosts.hosts);
        assertEquals(8, r.clones().size());
        MulticastDistribution mc = r.remote().multicast();
        assertTrue(mc != null, "multicast distribution was not set up");

        List<ForkableVm> all = new ArrayList<>(r.clones());
        all.add(parent);
        List<CompletableFuture<Long>> watches = new ArrayList<>();
        for (ForkableVm vm : all) {
            watches.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return assertCleanFor(vm, 8);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        watches.forEach(CompletableFuture::join);

        long largestClone = 0;
        long allClones = 0;
        for (ForkableVm c : r.clones()) {
            SessionStats s = r.remote().stats(c.name());
            assertEquals(RemoteFork.CloneStatus.RUNNING, r.remote().status(c.name()));
            largestClone = Math.max(largestClone, s.bytesOnWire());
            allClones += s.bytesOnWire();
            System.out.printf("%s: %s%n", c.name(), s);
        }
        long origin = mc.bytesOnWire();
        System.out.printf("multicast: origin sent %d bytes (%d datagrams); one clone fetched up to %d bytes; unicast would send %d"
                + " (saving %.2f)%n", origin, mc.datagramsSent(), largestClone, allClones, allClones / (double) origin);
        assertTrue(largestClone > 1_000_000, "the clones fetched almost nothing: " + largestClone);
        assertTrue(origin < 2 * largestClone, "the origin sent " + origin + " bytes, not less than twice one clone's "
                + largestClone);
    }
}

package dev.doppel.clone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import dev.doppel.clone.pageserver.multicast.MulticastDistribution;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Multicast distribution (SnowFlock's mcdist) on real QEMU: 8 clones of a running dirtier on 2
 * other hosts, each host serving its clones from a page cache that the origin fills by multicast.
 * Every clone stays correct, and the origin sends less than twice what a single clone fetched
 * (unicast would send about eight times). The hosts' page servers reach their clones over mutual TLS.
 */
@Tag("integration")
@Timeout(300)
class RemoteForkMulticastIntegrationTest extends RemoteForkTestBase {
    @Test
    void eightClonesOnTwoHostsCostTheOriginLessThanTwoWorkingSets() throws Exception {
        // Each host's page server dials its clones over mutual TLS too.
        Pki.init(tmp.resolve("pki"), "test CA");
        PeerTls tls = PeerTls.load(Pki.issue(tmp.resolve("pki"), "clone-host"));
        fx = new ForkFixture(tmp, ForkFixture.options(tmp).withPageServer(PageServerOptions.defaults().withMulticast(true).withTls(tls)));
        hosts = new RemoteHosts(2);
        ForkableVm parent = fx.startDirtier("rc-mc", 16, 1000, fx.dataDisk("rc-mc"));
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 8, hosts.hosts);
        assertEquals(8, r.clones().size());
        MulticastDistribution mc = r.remote().multicast();
        assertTrue(mc != null, "multicast distribution was not set up");

        List<ForkableVm> all = new ArrayList<>(r.clones());
        all.add(parent);
        ForkFixture.allCleanFor(all, 8);

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

    /**
     * Avoidance of free pages: the parent fills most of its memory with random data and frees it.
     * With free page reporting (a virtio-balloon) the guest tells QEMU, which discards those pages,
     * so they are zero in the fork's snapshot and a clone that allocates memory gets them as ZERO
     * records (a few bytes) instead of 4 KiB each; without it the same refill transfers the stale
     * random pages. Both runs in this test, the second as the baseline.
     */
    @Test
    void freePagesReportedByTheGuestTravelAsZeroRecords() throws Exception {
        long[] with = refillZeroShare(true);
        long[] without = refillZeroShare(false);
        System.out.printf("refill of 64 MiB in a remote clone: with free page reporting %d of %d pages sent were ZERO records;"
                + " without %d of %d%n", with[0], with[1], without[0], without[1]);
        assertTrue(with[0] >= 8_000, "with free page reporting only " + with[0] + " zero pages were served");
        assertTrue(with[0] > 4 * Math.max(1, without[0]), "reporting did not change what was served: " + with[0] + " vs "
                + without[0] + " zero pages");
    }

    /** Zero pages served and pages sent to one remote clone during a 64 MiB refill; [zero, sent]. */
    private long[] refillZeroShare(boolean reporting) throws Exception {
        cleanUp();
        Path dir = java.nio.file.Files.createDirectories(tmp.resolve(reporting ? "on" : "off"));
        fx = new ForkFixture(dir, ForkFixture.options(dir));
        hosts = new RemoteHosts(1);
        ForkableVm parent = fx.startIdle("rc-fp", fx.dataDisk("rc-fp"), reporting);
        ForkFixture.sh(parent, "dd if=/dev/urandom of=/tmp/fill bs=1048576 count=96 && rm /tmp/fill");
        Thread.sleep(6000);   // the guest reports free pages after a 2 s delay, in 2 MiB blocks
        RemoteForkService.RemoteForkResult r = fx.controller.forkRemote(parent, 1, hosts.hosts);
        ForkableVm clone = r.clones().get(0);
        SessionStats before = r.remote().stats(clone.name());
        ForkFixture.sh(clone, "dd if=/dev/urandom of=/tmp/refill bs=1048576 count=64");
        SessionStats after = r.remote().stats(clone.name());
        long[] result = {after.zeroPagesSent() - before.zeroPagesSent(), after.pagesSent() - before.pagesSent()};
        cleanUp();
        return result;
    }
}

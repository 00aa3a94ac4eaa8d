package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import dev.doppel.remus.testbed.KvClient;
import org.junit.jupiter.api.Test;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;
import org.libvirt.LibvirtException;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import static dev.doppel.cli.LibvirtHaHosts.VM;
import static dev.doppel.cli.LibvirtHaHosts.virsh;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #15, stories 1 and 2 as an operator runs them: {@code doppel backup serve --libvirt} on the backup host,
 * {@code doppel protect --libvirt web1} on the primary host, each host with its own libvirtd, a KV client on a third
 * host. virsh is the judge of what libvirt says.
 */
class LibvirtProtectIntegrationTest {

    /**
     * kill -9 of the domain's QEMU: the backup host's libvirt runs web1 (same UUID), virsh works on it, the client's
     * TCP connection goes on, and every PUT the client saw acknowledged is there.
     */
    @Test
    void aKilledDomainRunsOnInTheBackupHostsLibvirtAndItsClientsNoticeNothing() throws Exception {
        try (LibvirtHaHosts hosts = LibvirtHaHosts.start("lk", 160)) {
            hosts.bootKvDomain();
            String uuid = virsh(hosts.primaryHost, "domuuid", VM);
            CliChild backup = hosts.backupServe();
            backup.awaitLine("backup service listening", Duration.ofSeconds(60));
            CliChild protect = hosts.protect();
            protect.awaitLine(LibvirtHaHosts.CHECKPOINTING, Duration.ofSeconds(120));
            // Story 1: the domain's own device model, read from libvirt: output held on its netdev, its disk mirrored.
            assertTrue(protect.printed(Pattern.compile("output held on \\[hostnet0\\], disks \\[libvirt-\\d+-format\\]")), protect.tail());
            assertTrue(protect.printed(Pattern.compile("disk exports \\{libvirt-\\d+-format=")), "disk replicated: " + protect.tail());
            // What libvirt makes of the mirror job it did not start (for docs/libvirt.md; not a judgement).
            System.out.println("observe: virsh blockjob web1 vda --info while protected: "
                    + LibvirtHaHosts.virshObserved(hosts.primaryHost, "blockjob", VM, "vda", "--info"));
            System.out.println("observe: virsh domstate web1 --reason while protected: "
                    + LibvirtHaHosts.virshObserved(hosts.primaryHost, "domstate", VM, "--reason"));

            InetSocketAddress kv = new InetSocketAddress(hosts.bed.guestIp(), LibvirtHaHosts.KV_PORT);
            try (KvClient client = new KvClient(hosts.bed.client().sockets(), kv, "lv", 4)) {
                client.connect(Duration.ofSeconds(30));
                client.startPuts();
                int before = client.awaitAcks(100, Duration.ofSeconds(60));
                assertTrue(before >= 100, "PUTs acknowledged while protected: " + before + " (" + client.connectionFailure() + ")");

                long qemuPid = hosts.primaryHost.qemuPid(VM);
                long killed = System.nanoTime();
                new ProcessBuilder("kill", "-KILL", Long.toString(qemuPid)).start().waitFor();
                long runningMs = awaitRunning(hosts, killed, Duration.ofSeconds(60));

                // The same connection carries replies again: the guest's address moved with its MAC.
                assertTrue(client.connectionSurvives(Duration.ofSeconds(30)), "client connection after failover: "
                        + client.connectionFailure());
                int atFailover = client.acks().size();
                // Not one lucky reply: the restored guest serves the old connection on (its output held and released
                // by nobody now: it runs unprotected, so every reply goes out at once).
                assertTrue(client.awaitAcks(atFailover + 100, Duration.ofSeconds(60)) >= atFailover + 100,
                        "PUTs acknowledged on the same connection after the failover: " + (client.acks().size() - atFailover)
                                + " (" + client.connectionFailure() + ")");
                client.stopPuts();
                List<KvClient.Ack> acked = client.acks();
                KvClient.Verification v = KvClient.verify(hosts.bed.client().sockets(), kv, acked, Duration.ofSeconds(60));
                System.out.printf("measure: libvirt failover: kill -9 of the primary domain's QEMU -> the backup host's libvirt "
                        + "reports web1 running after %d ms; %d PUTs acknowledged (%d before the kill), %d checked, %d missing, "
                        + "%d wrong%n", runningMs, acked.size(), before, v.checked(), v.missing().size(), v.wrong().size());
                assertTrue(v.ok(), "acknowledged writes lost: missing " + v.missing() + ", wrong " + v.wrong());
                assertNull(client.connectionFailure());
            }

            // What a libvirt user sees on the backup host.
            assertEquals("running (unpaused)", virsh(hosts.backupHost, "domstate", VM, "--reason"));
            assertTrue(virsh(hosts.backupHost, "list", "--name").lines().anyMatch(VM::equals));
            assertEquals(uuid, virsh(hosts.backupHost, "domuuid", VM), "same UUID on the backup host");
            // libvirt knows where the disk now is: the backup's replica, which had every acknowledged write.
            String disks = virsh(hosts.backupHost, "domblklist", VM);
            assertTrue(disks.matches("(?s)vda\\s+" + Pattern.quote(hosts.work.resolve("store").toString()) + "/web1/\\d+-disks/\\S+\\.raw.*"),
                    disks);
            String status = virsh(hosts.backupHost, "qemu-monitor-command", VM, "{\"execute\":\"query-status\"}");
            assertTrue(status.contains("\"status\":\"running\""), status);
            // ... and on the primary host: the domain is gone there (libvirt saw its QEMU fail).
            assertEquals("", virsh(hosts.primaryHost, "list", "--all", "--name"));

            backup.awaitLine(Pattern.compile("VM web1 FAILED OVER from epoch \\d+ .* running as libvirt domain web1"), Duration.ofSeconds(10));
            protect.awaitLine("the backup was told to take over", Duration.ofSeconds(30));
            assertTrue(protect.process().waitFor(30, TimeUnit.SECONDS), "protect ends with its VM");
            assertEquals(0, protect.process().exitValue(), protect.tail());
        }
    }

    /**
     * {@code virsh destroy} by the domain's owner is a stop, not a failure: protect ends, the backup stands down
     * (its store is stale) and the backup host's libvirt never runs the VM.
     */
    @Test
    void destroyByItsOwnerStandsTheBackupDown() throws Exception {
        try (LibvirtHaHosts hosts = LibvirtHaHosts.start("ld", 161)) {
            hosts.bootKvDomain();
            CliChild backup = hosts.backupServe();
            backup.awaitLine("backup service listening", Duration.ofSeconds(60));
            CliChild protect = hosts.protect();
            protect.awaitLine(LibvirtHaHosts.CHECKPOINTING, Duration.ofSeconds(120));

            virsh(hosts.primaryHost, "destroy", VM);
            protect.awaitLine("was stopped by its owner (stopped/destroyed)", Duration.ofSeconds(30));
            // The guard recorded the stop before it gave the lease back; the backup believed the stand-down only
            // because the record agrees. STALE is final for that store's guard: from here it can never fail over.
            backup.awaitLine("not failing over: this store is stale", Duration.ofSeconds(30));
            assertTrue(protect.process().waitFor(30, TimeUnit.SECONDS), "protect ends when its VM is stopped");
            assertEquals(0, protect.process().exitValue(), protect.tail());
            assertTrue(protect.printed(Pattern.compile("libvirt domain web1 was stopped by its owner: stopped/destroyed; the backup stood down")),
                    protect.tail());
            assertFalse(backup.printed(Pattern.compile("FAILED OVER")), backup.tail());
            assertEquals("", virsh(hosts.backupHost, "list", "--all", "--name"), "the backup host's libvirt runs nothing");
            assertEquals("", virsh(hosts.primaryHost, "list", "--all", "--name"));
            String guardLog = Files.readString(hosts.guardLog());
            assertTrue(guardLog.contains("event=stopped-by-owner"), guardLog);
        }
    }

    /** Polls the backup host's libvirt (not virsh: a process start per poll would blur the figure) until web1 runs. */
    private static long awaitRunning(LibvirtHaHosts hosts, long killedNanos, Duration timeout) throws InterruptedException {
        long deadline = killedNanos + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                Domain d = hosts.backup.libvirt().domainLookupByName(VM);
                if (d.getInfo().state == DomainInfo.DomainState.VIR_DOMAIN_RUNNING) {
                    return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedNanos);
                }
            } catch (LibvirtException e) {
                // not defined there yet
            }
            Thread.sleep(10);
        }
        throw new AssertionError("the backup host's libvirt did not report " + VM + " running within " + timeout.toSeconds() + " s");
    }
}

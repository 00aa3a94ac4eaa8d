package dev.doppel.clone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.identity.IdentityProbe;
import dev.doppel.clone.net.CloneNetwork;
import dev.doppel.hostnet.NetNamespace;
import dev.doppel.vm.Accelerator;
import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.qga.QgaClient;
import dev.doppel.vm.qga.RealGuestImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Forks the real guest disk (Debian 12 + PostgreSQL 15 + qemu-guest-agent + openssh-server,
 * scripts/build-real-guest) under TCG into 4 clones, and checks with stock clients that each clone
 * is its own machine: qemu-ga's {@code guest-get-host-name} and {@code guest-network-get-interfaces},
 * {@code ssh-keyscan} and {@code psql} from a host-side address on the family's clone network (inside its
 * namespace), and the first bytes of each clone's {@code /dev/urandom}. The parent must go on: its agent
 * and its PostgreSQL answer after the fork.
 */
@Tag("integration")
@Timeout(1200)
class RealGuestForkIntegrationTest {
    private static final int CLONES = 4;
    /** The host's own address on the clone network (br0 in the family's namespace). */
    private static final String HOST_CIDR = "10.77.255.254/16";

    @TempDir Path tmp;

    @Test
    void clonesOfARealGuestEachHaveTheirOwnIdentityAndServePostgres() throws Exception {
        Path image = RealGuestImage.locate();
        FileTime imageMtime = Files.getLastModifiedTime(image);
        String name = "rgf" + ProcessHandle.current().pid() % 100000;
        VmSpec spec = DiskImageVm.spec(name, image, DiskImageVm.format(image)).memoryMiB(1024).vcpus(1).build();
        try (CloneController controller = new CloneController(VmLauncher.create(Accelerator.TCG), ForkFixture.options(tmp))) {
            long t0 = System.nanoTime();
            ForkableVm parent = controller.start(spec, image, DiskImageVm.format(image));
            // completes once the booted guest's qemu-ga answered and gave the NIC the family's root address
            parent.identity().get(600, TimeUnit.SECONDS);
            double agentS = (System.nanoTime() - t0) / 1e9;
            NetNamespace ns = parent.family().network().netns();
            ns.address(CloneNetwork.BRIDGE, HOST_CIDR);
            IdentityProbe.awaitPsql(ns, parent.address().ip(), Duration.ofSeconds(300));
            double pgS = (System.nanoTime() - t0) / 1e9;
            System.out.printf("REAL-GUEST-FORK parent booted: agent+address %.1f s, PostgreSQL on the clone network %.1f s%n", agentS, pgS);

            Map<String, String> hostNames = new LinkedHashMap<>();
            Map<String, String> sshKeys = new LinkedHashMap<>();
            Map<String, String> randoms = new LinkedHashMap<>();
            try (QgaClient qga = QgaClient.connect(parent.name(), parent.qgaSocket())) {
                hostNames.put(parent.name(), qga.hostName());
                randoms.put(parent.name(), IdentityProbe.urandom32(qga));
            }
            sshKeys.put(parent.name(), IdentityProbe.sshKey(ns, parent.address().ip()));

            // the fork; each clone's identity is applied in the background, timed from the fork's return
            ForkResult r = controller.fork(parent, CLONES);
            long tForked = System.nanoTime();
            Map<String, Double> identityMs = new ConcurrentHashMap<>();
            List<CompletableFuture<Void>> identities = new ArrayList<>();
            for (ForkableVm c : r.clones()) {
                identities.add(c.identity().whenComplete((ok, err) -> identityMs.put(c.name(), (System.nanoTime() - tForked) / 1e6)));
            }
            CompletableFuture.allOf(identities.toArray(CompletableFuture[]::new)).get(600, TimeUnit.SECONDS);
            double allIdentitiesMs = (System.nanoTime() - tForked) / 1e6;

            for (ForkableVm c : r.clones()) {
                try (QgaClient qga = QgaClient.connect(c.name(), c.qgaSocket())) {
                    randoms.put(c.name(), IdentityProbe.urandom32(qga));   // the clone's first read after its identity
                    hostNames.put(c.name(), qga.hostName());
                    QgaClient.NetworkInterface nic = qga.networkInterfaces().stream()
                            .filter(n -> c.address().mac().equalsIgnoreCase(n.mac())).findFirst()
                            .orElseThrow(() -> new AssertionError(c.name() + ": no NIC with its MAC " + c.address().mac()));
                    assertTrue(nic.addresses().stream().anyMatch(a -> a.address().equals(c.address().ip())), c.name() + ": " + nic);
                    assertFalse(nic.addresses().stream().anyMatch(a -> a.address().equals(parent.address().ip())),
                            c.name() + " still has the parent's address: " + nic);
                }
                assertEquals(c.name(), hostNames.get(c.name()), "guest-get-host-name of " + c.name());
                // the stock client on the clone's own address; the server says which address it answered on
                assertEquals(c.address().ip(), IdentityProbe.psql(ns, c.address().ip(), "select host(inet_server_addr())").strip());
                sshKeys.put(c.name(), IdentityProbe.sshKey(ns, c.address().ip()));
            }
            assertDistinct("host names", hostNames);
            assertDistinct("SSH host keys (ssh-keyscan)", sshKeys);
            assertDistinct("first 32 bytes of /dev/urandom", randoms);

            // the parent goes on: once back on a shared memory file, its agent and its PostgreSQL answer
            parent.reshareInFlight().get(300, TimeUnit.SECONDS);
            try (QgaClient qga = QgaClient.connect(parent.name(), parent.qgaSocket())) {
                qga.ping(Duration.ofSeconds(30));
                assertEquals(hostNames.get(parent.name()), qga.hostName());
            }
            assertEquals("1", IdentityProbe.psql(ns, parent.address().ip(), "select 1").strip());
            assertEquals(sshKeys.get(parent.name()), IdentityProbe.sshKey(ns, parent.address().ip()), "the parent keeps its host key");

            System.out.printf("REAL-GUEST-FORK clones=%d fork_ms=%.1f parent_pause_ms=%.1f identity_ms_all=%.0f identity_ms=%s"
                            + " boot_agent_s=%.1f boot_pg_s=%.1f%n", CLONES, r.forkMs(), r.parentPauseMs(), allIdentitiesMs,
                    identityMs, agentS, pgS);
        }
        assertEquals(imageMtime, Files.getLastModifiedTime(image), "the image itself must not be written");
    }

    private static void assertDistinct(String what, Map<String, String> byVm) {
        Set<String> seen = new HashSet<>(byVm.values());
        assertEquals(byVm.size(), seen.size(), what + " must differ between all VMs: " + byVm);
        assertFalse(byVm.values().stream().anyMatch(String::isBlank), what + ": " + byVm);
    }
}

package dev.doppel.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.daemon.testbed.DaemonProcess;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.OwnershipRecord;
import dev.doppel.remus.fencing.VmLease;
import dev.doppel.tls.PeerTls;
import dev.doppel.vm.VmRunDir;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HA cycle an operator runs: a VM protected from host A to host B under the daemons, with a
 * coordination service that outlives both (a ZooKeeper server of the test's own); kill -9 of A's QEMU;
 * B runs the VM and hands its lease to a guard of the VM's own, so the VM stays fenced when B's daemon
 * dies (a stranger cannot take the lease while B's daemon is down); then the VM is protected back
 * from B to A — which needs the lease and the ownership record B's takeover left.
 */
@Tag("integration")
@Timeout(900)
class FailoverAndBackIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(FailoverAndBackIntegrationTest.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    @TempDir Path tmp;

    @Test
    void aFailedOverVmKeepsItsLeaseWithoutItsDaemonAndIsProtectedBack() throws Exception {
        String vm = TestVms.uniqueName("fb");
        Path work = Path.of("/dev/shm", "doppel-test-" + vm);
        int toB = freePort();
        int toA = freePort();
        try (EmbeddedCoordinator zk = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), tmp.resolve("zk"),
                HostSockets.LOCAL, PeerTls.INSECURE);
             DaemonProcess a = DaemonProcess.start("a", work.resolve("host-a"), Path.of("target/cli-logs"));
             DaemonProcess b = DaemonProcess.start("b", work.resolve("host-b"), Path.of("target/cli-logs"))) {
            String cs = zk.connectString();
            b.call("POST", "/api/v1/backup", "{\"listen\":\"127.0.0.1:" + toB + "\",\"detectionMs\":500,\"coordinator\":\"" + cs
                    + "\",\"holder\":\"host-b\",\"store\":\"" + work.resolve("host-b/stores") + "\"}");
            long primaryPid = a.call("POST", "/api/v1/vms", "{\"name\":\"" + vm + "\",\"memMiB\":192,\"colo\":true,\"userNet\":true}")
                    .path("pid").asLong();
            awaitConsole(a, vm, "DOPPEL-READY");
            a.call("POST", "/api/v1/vms/" + vm + "/protection", "{\"backup\":\"127.0.0.1:" + toB + "\",\"intervalMs\":100,"
                    + "\"coordinator\":\"" + cs + "\",\"holder\":\"host-a\"}");
            awaitProtected(a, vm);
            log.info("{} protected from A to B; killing its QEMU on A (pid {})", vm, primaryPid);

            ProcessHandle.of(primaryPid).orElseThrow().destroyForcibly();
            JsonNode restored = awaitRunning(b, vm);
            long restoredPid = restored.path("pid").asLong();
            Path runDir = Path.of(restored.path("runDir").asText());
            awaitFile(runDir.resolve("guard.sock"));

            // B's daemon dies; the VM's own guard keeps the lease: a stranger cannot take it.
            b.kill9();
            Thread.sleep(Coordinator.DEFAULT_SESSION.toMillis() * 3);   // B's daemon's session has expired by now
            try (Coordinator stranger = Coordinator.connect(cs, Coordinator.DEFAULT_SESSION, HostSockets.LOCAL, Duration.ofSeconds(10),
                    PeerTls.INSECURE)) {
                FencingException refused = assertThrows(FencingException.class,
                        () -> VmLease.acquire(stranger, vm, "stranger", Duration.ofMillis(500), null).close());
                log.info("a stranger's claim while B's daemon is down: {}", refused.getMessage());
                OwnershipRecord record = VmLease.recordOf(stranger, vm);
                assertEquals("host-b", record.owner(), "after the takeover the record names B: " + record);
            }
            assertTrue(ProcessHandle.of(restoredPid).map(ProcessHandle::isAlive).orElse(false), "the restored VM outlives B's daemon");

            // B's daemon is back; A serves as the backup now, and the VM is protected back from B to A.
            b.startAgain();
            a.call("POST", "/api/v1/backup", "{\"listen\":\"127.0.0.1:" + toA + "\",\"detectionMs\":500,\"coordinator\":\"" + cs
                    + "\",\"holder\":\"host-a\",\"store\":\"" + work.resolve("host-a/stores") + "\"}");
            b.call("POST", "/api/v1/vms/" + vm + "/protection", "{\"backup\":\"127.0.0.1:" + toA + "\",\"intervalMs\":100,"
                    + "\"coordinator\":\"" + cs + "\",\"holder\":\"host-b\"}");
            JsonNode back = awaitProtected(b, vm);
            log.info("{} protected back from B to A: {}", vm, back);
            assertEquals(restoredPid, b.call("GET", "/api/v1/vms/" + vm, null).path("pid").asLong(), "the same QEMU is protected back");

            b.call("DELETE", "/api/v1/vms/" + vm, null);
            a.answer("DELETE", "/api/v1/backup", null);
            b.answer("DELETE", "/api/v1/backup", null);
        } finally {
            dev.doppel.vm.FileTrees.deleteRecursively(work);
        }
        assertTrue(!Files.exists(VmRunDir.root().resolve("vms").resolve(vm)), "no run directory of the VM left");
    }

    private static JsonNode awaitProtected(DaemonProcess d, String vm) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            var ans = d.answer("GET", "/api/v1/vms/" + vm + "/protection", null);
            last = ans.body();
            if (ans.ok()) {
                JsonNode s = MAPPER.readTree(ans.body());
                if (s.path("state").asText().equals("PROTECTED") && s.path("checkpoints").asLong() > 0) {
                    return s;
                }
            }
            Thread.sleep(200);
        }
        throw new AssertionError("VM " + vm + " not protected within 180 s; last status: " + last);
    }

    private static JsonNode awaitRunning(DaemonProcess d, String vm) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline) {
            var ans = d.answer("GET", "/api/v1/vms/" + vm, null);
            if (ans.ok()) {
                JsonNode v = MAPPER.readTree(ans.body());
                if (v.path("state").asText().equals("running")) {
                    return v;
                }
            }
            Thread.sleep(100);
        }
        throw new AssertionError("VM " + vm + " not running on the backup host within 60 s");
    }

    private static void awaitConsole(DaemonProcess d, String vm, String text) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        while (System.nanoTime() < deadline) {
            if (d.call("GET", "/api/v1/vms/" + vm + "/console?lines=300", null).path("lines").toString().contains(text)) {
                return;
            }
            Thread.sleep(500);
        }
        throw new AssertionError("VM " + vm + ": no '" + text + "' on its console");
    }

    private static void awaitFile(Path f) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!Files.exists(f)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no " + f + " within 60 s: the restored VM got no guard of its own");
            }
            Thread.sleep(100);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}

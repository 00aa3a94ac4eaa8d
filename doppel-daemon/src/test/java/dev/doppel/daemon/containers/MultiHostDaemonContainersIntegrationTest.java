package dev.doppel.daemon.containers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.daemon.containers.DaemonHttp.Event;
import dev.doppel.daemon.containers.DaemonHttp.EventStream;
import dev.doppel.daemon.containers.DaemonHttp.Response;
import dev.doppel.tls.Pki;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.Network;
import org.testcontainers.lifecycle.Startables;

/**
 * Issue #14, end to end across two hosts: each host's Doppel daemon runs in its own container
 * ({@link DoppelHostContainer}, the image scripts/build-host-image makes from Debian packages). Through
 * the daemons' APIs only (HTTPS with the installation's CA and a bearer token) a VM on host A is
 * protected by a backup service on host B; then A's QEMU is killed with {@code kill -9} inside A's
 * container, and B's event stream must report the failover and B's API must list the VM running.
 * Nothing but HTTP is used against the daemons (no daemon class), and nothing but the kill is done
 * inside a container.
 */
@Tag("integration")
@Timeout(900)
class MultiHostDaemonContainersIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(MultiHostDaemonContainersIntegrationTest.class);
    private static final String VM = "web1";
    private static final int BACKUP_PORT = 7700;

    @TempDir Path tmp;

    @Test
    void vmProtectedOnHostAFailsOverToHostBWhenItsQemuIsKilled() throws Exception {
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "Doppel e2e CA");
        Path dirA = Pki.issue(pki, "hosta");
        Path dirB = Pki.issue(pki, "hostb");
        Path client = Pki.issue(pki, "e2e-client");
        String tokenA = token(dirA);
        String tokenB = token(dirB);
        Path ca = pki.resolve("ca/ca-cert.pem");

        try (Network network = Network.newNetwork();
                DoppelHostContainer a = new DoppelHostContainer("hosta", network).withPki(dirA).withDaemon();
                DoppelHostContainer b = new DoppelHostContainer("hostb", network).withPki(dirB).withDaemon()) {
            long t0 = System.nanoTime();
            Startables.deepStart(a, b).join();
            log.info("event=containers-started ms={}", ms(t0));
            DaemonHttp apiA = new DaemonHttp("hosta", apiUri(a), ca, client, tokenA);
            DaemonHttp apiB = new DaemonHttp("hostb", apiUri(b), ca, client, tokenB);
            awaitApi(a, apiA);
            awaitApi(b, apiB);
            log.info("event=apis-answer ms={}", ms(t0));

            try (EventStream eventsA = apiA.events(); EventStream eventsB = apiB.events()) {
                if (!eventsA.awaitConnected(Duration.ofSeconds(10)) || !eventsB.awaitConnected(Duration.ofSeconds(10))) {
                    log.warn("event=sse-headers-pending (a daemon holds its stream's headers back until the first event)");
                }

                // B: the backup service.
                // The API contract of issue #14: no "tls" in the bodies, so the links between the hosts are plain
                // TCP. (With "tls": "/pki" on both, B refuses the protection once its HTTPS API has served a
                // request: the daemon JVM's Netty then checks host names in ZooKeeper's TLS client.)
                Response backup = apiB.post("/api/v1/backup", Map.of("listen", "0.0.0.0:" + BACKUP_PORT, "detectionMs", 500, "tls", "/pki"));
                assertTrue(backup.ok(), "hostb: POST /api/v1/backup: " + backup + "\n" + b.logTail(40));
                Response backupStatus = apiB.get("/api/v1/backup");
                assertTrue(backupStatus.ok(), "hostb: GET /api/v1/backup: " + backupStatus);
                assertEquals(BACKUP_PORT, backupStatus.json().path("port").asInt(), "hostb's backup port: " + backupStatus);

                // A: the VM, on the COLO-capable QEMU, then its protection by B.
                long t1 = System.nanoTime();
                Response created = apiA.post("/api/v1/vms",
                        Map.of("name", VM, "memMiB", 256, "colo", true, "userNet", true, "run", "ticker"));
                assertEquals(201, created.status(), "hosta: POST /api/v1/vms: " + created + "\n" + a.logTail(40));
                assertEquals("running", created.json().path("state").asText(), "hosta: the new VM: " + created);
                log.info("event=vm-created host=hosta vm={} ms={} body={}", VM, ms(t1), created.body());

                long t2 = System.nanoTime();
                Response protect = apiA.post("/api/v1/vms/" + VM + "/protection",
                        Map.of("backup", "hostb:" + BACKUP_PORT, "intervalMs", 100, "tls", "/pki"));
                assertTrue(protect.ok(), "hosta: POST /api/v1/vms/" + VM + "/protection: " + protect + "\n" + a.logTail(60)
                        + "\n" + b.logTail(40));
                AtomicReference<Response> status = new AtomicReference<>();
                boolean checkpointing = DoppelHostContainer.await(Duration.ofSeconds(240), () -> {
                    Response s = getQuietly(apiA, "/api/v1/vms/" + VM + "/protection");
                    status.set(s);
                    return s != null && s.ok() && "PROTECTED".equals(s.json().path("state").asText())
                            && s.json().path("checkpoints").asLong() >= 5;
                });
                assertTrue(checkpointing, "hosta: the VM is PROTECTED with 5 checkpoints within 240 s; last status: " + status.get()
                        + "\n" + a.logTail(60) + "\n" + b.logTail(60));
                log.info("event=protected host=hosta vm={} ms={} status={}", VM, ms(t2), status.get().body());
                eventsA.await("protected (" + VM + ")", Duration.ofSeconds(30), e -> "protected".equals(e.type()) && VM.equals(e.vm()));
                eventsA.await("checkpoint (" + VM + ")", Duration.ofSeconds(30), e -> "checkpoint".equals(e.type()) && VM.equals(e.vm()));

                Response stored = apiB.get("/api/v1/backup");
                boolean listed = false;
                for (JsonNode v : stored.json().path("vms")) {
                    listed |= VM.equals(v.path("vm").asText());
                }
                assertTrue(listed, "hostb's backup service holds " + VM + ": " + stored);

                // The failure: A's QEMU dies. Everything after this is seen through B's API only.
                ExecResult qemus = a.execInContainer("pgrep", "-a", "-f", "qemu-system");
                log.info("event=killing host=hosta processes=\"{}\"", qemus.getStdout().strip().replace('\n', ';'));
                ExecResult kill = a.execInContainer("pkill", "-9", "-f", "qemu-system");
                long killed = System.nanoTime();
                assertEquals(0, kill.getExitCode(), "kill -9 of hosta's QEMU: " + kill.getStdout() + kill.getStderr());
                log.info("event=primary-killed host=hosta");

                Event failover = eventsB.await("failover (" + VM + ")", Duration.ofSeconds(120),
                        e -> "failover".equals(e.type()) && (VM.equals(e.vm()) || VM.equals(restoredAs(e))));
                String restored = restoredAs(failover);
                if (restored.isEmpty()) {
                    restored = failover.vm();
                }
                log.info("event=failover-seen host=hostb vm={} restored_as={} ms_after_kill={} data={}", VM, restored,
                        (failover.receivedNanos() - killed) / 1_000_000, failover.data());

                String name = restored;
                AtomicReference<Response> vms = new AtomicReference<>();
                boolean running = DoppelHostContainer.await(Duration.ofSeconds(60), () -> {
                    Response r = getQuietly(apiB, "/api/v1/vms");
                    vms.set(r);
                    if (r == null || !r.ok()) {
                        return false;
                    }
                    for (JsonNode v : r.json()) {
                        if (name.equals(v.path("name").asText()) && "running".equals(v.path("state").asText())) {
                            return true;
                        }
                    }
                    return false;
                });
                assertTrue(running, "hostb lists " + name + " running after the failover: " + vms.get() + "\nhostb events:\n  "
                        + eventsB.describe() + "\n" + b.logTail(60));
                log.info("event=running-on-backup host=hostb vm={} ms_after_kill={} total_ms={}", name, ms(killed), ms(t0));

                Response deleted = apiB.delete("/api/v1/vms/" + name);
                if (!deleted.ok()) {
                    log.warn("event=cleanup-failed host=hostb vm={} answer={}", name, deleted);
                }
            }
        }
    }

    /** A random API token in the host's PKI directory (mounted at /pki, read by --token-file /pki/token). */
    private static String token(Path hostDir) throws Exception {
        byte[] b = new byte[32];
        new SecureRandom().nextBytes(b);
        String t = HexFormat.of().formatHex(b);
        Path f = hostDir.resolve("token");
        Files.writeString(f, t + "\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-------"));
        return t;
    }

    private static URI apiUri(DoppelHostContainer c) {
        return URI.create("https://" + c.getHost() + ":" + c.getMappedPort(DoppelHostContainer.API_PORT));
    }

    /** The daemon is up once GET /api/v1/vms answers 200 (its JVM needs a few seconds). */
    private static void awaitApi(DoppelHostContainer c, DaemonHttp api) throws InterruptedException {
        AtomicReference<String> last = new AtomicReference<>("no answer");
        boolean up = DoppelHostContainer.await(Duration.ofSeconds(90), () -> {
            if (!c.isRunning()) {
                last.set("the container stopped");
                return true;
            }
            try {
                Response r = api.get("/api/v1/vms");
                last.set(r.toString());
                return r.status() == 200;
            } catch (Exception e) {
                last.set(e.toString());
                return false;
            }
        });
        if (!up || !c.isRunning()) {
            fail(c.alias() + ": the daemon's API does not answer GET /api/v1/vms with 200 within 90 s (" + last.get() + ")\n"
                    + c.logTail(60));
        }
    }

    /** The restored VM's name on the backup: {@code restoredAs} in the event's data (or at its top level). */
    private static String restoredAs(Event e) {
        String nested = e.data().path("data").path("restoredAs").asText("");
        return nested.isEmpty() ? e.data().path("restoredAs").asText("") : nested;
    }

    private static Response getQuietly(DaemonHttp api, String path) {
        try {
            return api.get(path);
        } catch (Exception e) {
            return null;
        }
    }

    private static long ms(long since) {
        return (System.nanoTime() - since) / 1_000_000;
    }
}

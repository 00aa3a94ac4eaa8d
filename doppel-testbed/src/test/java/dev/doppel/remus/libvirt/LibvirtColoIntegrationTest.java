package dev.doppel.remus.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.libvirt.DomainDeviceModel;
import dev.doppel.libvirt.DomainLifecycle;
import dev.doppel.libvirt.DomainLifecycleEvent;
import dev.doppel.libvirt.DomainXml;
import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.libvirt.LibvirtQmp;
import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import dev.doppel.qmp.QmpClient;
import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import org.junit.jupiter.api.Test;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #15, the ground under story 1: QEMU's COLO checkpointing of a libvirt domain, driven only through
 * libvirt's monitor passthrough (x-colo, migrate), into Doppel's Java backup; and what libvirt makes of a
 * domain whose QEMU stops and resumes itself for every checkpoint.
 */
class LibvirtColoIntegrationTest {

    @Test
    void aLibvirtDomainCheckpointsIntoTheBackupThroughLibvirtsMonitor() throws Exception {
        Path storeRoot = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-libvirt-colo-");
        try (PrivateLibvirtd daemon = PrivateLibvirtd.start();
             LibvirtConnection connection = LibvirtConnection.open(daemon.uri());
             DomainLifecycle lifecycle = DomainLifecycle.watch(connection);
             BackupServer server = new BackupServer(storeRoot)) {
            run(daemon, connection, lifecycle, server);
        } finally {
            BackupStore.deleteAll(storeRoot);
        }
    }

    private void run(PrivateLibvirtd daemon, LibvirtConnection connection, DomainLifecycle lifecycle, BackupServer server)
            throws Exception {
        List<DomainLifecycleEvent> events = new CopyOnWriteArrayList<>();
        lifecycle.addListener(e -> {
            if (e.domain().equals("colo1")) {
                events.add(e);
            }
        });
        GuestDomains domains = new GuestDomains(daemon);
        Domain domain = domains.start(connection, "colo1", 1,
                Map.of("doppel.run", "dirtier", "doppel.dirty_mb", "16", "doppel.dirty_rate", "2000"), 128);
        domains.awaitConsole("colo1", "dirtier t=", Duration.ofSeconds(120));
        DomainDeviceModel model = DomainXml.read(connection, "colo1");

        List<EpochMetrics> metrics = new CopyOnWriteArrayList<>();
        EpochListener listener = new EpochListener() {
            @Override
            public void epochCommitted(EpochMetrics m) {
                metrics.add(m);
            }
        };
        // The backup needs the primary's machine type and RAM size: both come from libvirt's XML.
        ProtectedVm pvm = ProtectedVm.named("colo1").withMachine(model.machine(), model.memoryKiB() * 1024);
        BackupServer.Endpoint ep = server.listen(pvm, new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), listener);

        try (QmpClient qmp = LibvirtQmp.connect(connection, "colo1")) {
            qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "x-colo", "state", true), Map.of("capability", "events", "state", true))));
            qmp.execute("migrate-set-parameters", Map.of("x-checkpoint-delay", 100));
            long t0 = System.nanoTime();
            qmp.execute("migrate", Map.of("uri", "tcp:127.0.0.1:" + ep.port()));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (metrics.isEmpty()) {
                assertTrue(System.nanoTime() < deadline, "no initial synchronisation within 90 s: " + ep.lastFailure());
                Thread.sleep(20);
            }
            long initialMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            JsonNode colo = qmp.execute("query-colo-status");
            assertEquals("primary", colo.path("mode").asText(), colo.toString());

            // While COLO runs, sample libvirt's idea of the domain's state.
            int samples = 0;
            int running = 0;
            int paused = 0;
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (System.nanoTime() < until) {
                DomainInfo.DomainState s = domain.getInfo().state;
                samples++;
                if (s == DomainInfo.DomainState.VIR_DOMAIN_RUNNING) {
                    running++;
                } else if (s == DomainInfo.DomainState.VIR_DOMAIN_PAUSED) {
                    paused++;
                }
                Thread.sleep(50);
            }
            int epochs = metrics.size() - 1;
            long suspended = events.stream().filter(e -> e.kind() == DomainLifecycleEvent.Kind.SUSPENDED).count();
            long resumed = events.stream().filter(e -> e.kind() == DomainLifecycleEvent.Kind.RESUMED).count();
            List<Long> pauses = new ArrayList<>(metrics.subList(1, metrics.size()).stream().map(EpochMetrics::pauseNanos).toList());
            Collections.sort(pauses);
            System.out.printf("measure: COLO through libvirt: initial sync %d ms; %d checkpoints; pause p50 %.2f ms;"
                            + " libvirt state samples: %d running, %d paused of %d; lifecycle events: %d suspended, %d resumed%n",
                    initialMs, epochs, pauses.isEmpty() ? 0 : pauses.get(pauses.size() / 2) / 1e6, running, paused, samples,
                    suspended, resumed);
            events.stream().map(DomainLifecycleEvent::cause).distinct()
                    .forEach(c -> System.out.println("measure: lifecycle cause seen during COLO: " + c));
            assertTrue(epochs >= 30, "checkpoints through libvirt's monitor in ~10 s: " + epochs);
            assertEquals("primary", qmp.execute("query-colo-status").path("mode").asText());

            // Ending COLO on the primary (what the controller does when the backup is lost): the guest runs on,
            // and libvirt must say so too.
            try (var exit = qmp.subscribe("COLO_EXIT")) {
                qmp.execute("x-colo-lost-heartbeat");
                JsonNode data = exit.await("COLO_EXIT", Duration.ofSeconds(10)).data();
                System.out.println("measure: COLO_EXIT through libvirt: " + data);
            }
            assertEquals("running", qmp.execute("query-status").path("status").asText());
            DomainInfo.DomainState after = domain.getInfo().state;
            for (int i = 0; i < 100 && after != DomainInfo.DomainState.VIR_DOMAIN_RUNNING; i++) {
                Thread.sleep(20);
                after = domain.getInfo().state;
            }
            assertEquals(DomainInfo.DomainState.VIR_DOMAIN_RUNNING, after, "libvirt's state after COLO ended");
        }
    }
}

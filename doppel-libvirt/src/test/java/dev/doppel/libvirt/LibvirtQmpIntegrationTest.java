package dev.doppel.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpCommandException;
import dev.doppel.qmp.QmpDisconnectedException;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.qmp.QmpException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;

import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A QmpClient through a real libvirtd behaves like one on QEMU's socket: replies, errors, events, the end. */
class LibvirtQmpIntegrationTest {
    private static PrivateLibvirtd daemon;
    private static LibvirtConnection connection;
    private static GuestDomains domains;

    @BeforeAll
    static void startDaemonAndDomain() throws Exception {
        daemon = PrivateLibvirtd.start();
        connection = LibvirtConnection.open(daemon.uri());
        domains = new GuestDomains(daemon);
        domains.start(connection, "qmp1", 1);
        domains.awaitConsole("qmp1", "tick 1", Duration.ofSeconds(90));
    }

    @AfterAll
    static void stop() {
        if (connection != null) {
            connection.close();
        }
        if (daemon != null) {
            daemon.close();
        }
    }

    @Test
    void commandsAndRepliesPassThroughLibvirt() {
        try (QmpClient qmp = LibvirtQmp.connect(connection, "qmp1")) {
            assertEquals(10, qmp.greeting().version().major(), "the greeting carries QEMU's own version");
            assertFalse(qmp.oobEnabled(), "libvirt passes no exec-oob, so none is offered");
            JsonNode status = qmp.execute("query-status");
            assertEquals("running", status.path("status").asText(), status.toString());
            // arguments reach QEMU: query-block with a filter-free call, then one naming the disk's device
            JsonNode blocks = qmp.execute("query-block");
            assertEquals("/machine/peripheral/virtio-disk0/virtio-backend", blocks.get(0).path("qdev").asText(), blocks.toString());
            JsonNode name = qmp.execute("qom-get", Map.of("path", "/machine/peripheral/net0", "property", "mac"));
            assertEquals("52:54:00:d1:00:01", name.asText());

            long[] micros = new long[200];
            for (int i = 0; i < micros.length; i++) {
                long t0 = System.nanoTime();
                qmp.execute("query-status");
                micros[i] = TimeUnit.NANOSECONDS.toMicros(System.nanoTime() - t0);
            }
            Arrays.sort(micros);
            System.out.printf("measure: QMP round trip through libvirt (query-status, %d calls): p50 %.2f ms, p99 %.2f ms%n",
                    micros.length, micros[micros.length / 2] / 1000.0, micros[micros.length * 99 / 100] / 1000.0);
            assertTrue(micros[micros.length / 2] < 50_000, "p50 round trip " + micros[micros.length / 2] + " µs");
        }
    }

    @Test
    void qemuErrorsComeBackAsCommandErrorsNamingTheVm() {
        try (QmpClient qmp = LibvirtQmp.connect(connection, "qmp1")) {
            QmpCommandException unknown = assertThrows(QmpCommandException.class, () -> qmp.execute("no-such-command"));
            assertEquals("CommandNotFound", unknown.errorClass(), unknown.getMessage());
            assertTrue(unknown.getMessage().contains("qmp1"), unknown.getMessage());
            QmpCommandException badArgs = assertThrows(QmpCommandException.class,
                    () -> qmp.execute("qom-get", Map.of("path", "/machine/peripheral/nothing-here", "property", "mac")));
            assertEquals("DeviceNotFound", badArgs.errorClass(), badArgs.getMessage());
            // the connection is still good after errors
            assertEquals("running", qmp.execute("query-status").path("status").asText());
            // and file descriptors cannot pass through libvirt: a clear refusal, not a hang
            QmpException fds = assertThrows(QmpException.class, () -> qmp.getfd("x", 0));
            assertTrue(fds.getMessage().contains("does not support fd passing"), fds.getMessage());
        }
    }

    @Test
    void stopAndContEmitQemuEventsThatLibvirtFollows() throws Exception {
        Domain d = connection.domain("qmp1");
        try (QmpClient qmp = LibvirtQmp.connect(connection, "qmp1");
             EventSubscription events = qmp.subscribe("STOP", "RESUME")) {
            long t0 = System.nanoTime();
            qmp.execute("stop");
            QmpEvent stop = events.await("STOP", Duration.ofSeconds(5));
            long stopMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertEquals("qmp1", stop.vmName());
            assertEquals("paused", qmp.execute("query-status").path("status").asText());
            assertEquals(DomainInfo.DomainState.VIR_DOMAIN_PAUSED, awaitState(d, DomainInfo.DomainState.VIR_DOMAIN_PAUSED),
                    "libvirt tracks the pause that QMP made");
            t0 = System.nanoTime();
            qmp.execute("cont");
            QmpEvent resume = events.await("RESUME", Duration.ofSeconds(5));
            long resumeMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertTrue(resume.timestamp().isAfter(stop.timestamp()) || resume.timestamp().equals(stop.timestamp()));
            assertEquals(DomainInfo.DomainState.VIR_DOMAIN_RUNNING, awaitState(d, DomainInfo.DomainState.VIR_DOMAIN_RUNNING));
            System.out.printf("measure: stop -> STOP event %d ms, cont -> RESUME event %d ms (through libvirt)%n", stopMs, resumeMs);
        }
    }

    @Test
    void theClientIsDisconnectedWhenLibvirtDestroysTheDomain() throws Exception {
        Domain d = domains.start(connection, "qmp2", 2);
        QmpClient qmp = LibvirtQmp.connect(connection, "qmp2");
        try {
            assertEquals("running", qmp.execute("query-status").path("status").asText());
            long t0 = System.nanoTime();
            d.destroy(); // returns once libvirt has stopped QEMU (SIGTERM, then waits for it)
            long destroyed = System.nanoTime();
            QmpException why = qmp.whenDisconnected().get(1, TimeUnit.SECONDS);
            System.out.printf("measure: virDomainDestroy took %d ms; QmpClient disconnected %d ms after it returned%n",
                    TimeUnit.NANOSECONDS.toMillis(destroyed - t0), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - destroyed));
            assertInstanceOf(QmpDisconnectedException.class, why);
            assertTrue(why.getMessage().contains("qmp2") && why.getMessage().contains("stopped/destroyed"), why.getMessage());
            QmpException after = assertThrows(QmpException.class, () -> qmp.execute("query-status"));
            assertTrue(after.getMessage().contains("qmp2"), after.getMessage());
        } finally {
            qmp.close();
        }
    }

    @Test
    void aDomainThatIsNotThereIsNamedInTheError() {
        LibvirtCallException e = assertThrows(LibvirtCallException.class, () -> LibvirtQmp.connect(connection, "no-such-vm"));
        assertEquals("no-such-vm", e.domain());
        assertTrue(e.getMessage().contains("domain 'no-such-vm'") && e.getMessage().contains("Domain not found"), e.getMessage());
    }

    private static DomainInfo.DomainState awaitState(Domain d, DomainInfo.DomainState wanted) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        DomainInfo.DomainState s = d.getInfo().state;
        while (s != wanted && System.nanoTime() < deadline) {
            Thread.sleep(20);
            s = d.getInfo().state;
        }
        return s;
    }
}

package dev.doppel.libvirt;

import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.libvirt.Domain;

import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Story 4 of issue #15: a domain that libvirt destroys, and one whose QEMU is killed (a crash), are reported
 * within a second by libvirt's lifecycle events; nothing here polls libvirt for the domain's state.
 */
class DomainLifecycleIntegrationTest {
    private static final long ONE_SECOND_NANOS = TimeUnit.SECONDS.toNanos(1);

    private static PrivateLibvirtd daemon;
    private static LibvirtConnection connection;
    private static GuestDomains domains;
    private static DomainLifecycle lifecycle;
    private static final BlockingQueue<DomainLifecycleEvent> received = new LinkedBlockingQueue<>();

    @BeforeAll
    static void start() throws Exception {
        daemon = PrivateLibvirtd.start();
        connection = LibvirtConnection.open(daemon.uri());
        domains = new GuestDomains(daemon);
        lifecycle = DomainLifecycle.watch(connection);
        lifecycle.addListener(received::add);
    }

    @AfterAll
    static void stop() {
        if (lifecycle != null) {
            lifecycle.close();
        }
        if (connection != null) {
            connection.close();
        }
        if (daemon != null) {
            daemon.close();
        }
    }

    @Test
    void aStartedAndThenDestroyedDomainIsReportedWithinASecond() throws Exception {
        Domain d = domains.start(connection, "life1", 1);
        String uuid = d.getUUIDString();
        // libvirt starts QEMU paused and then resumes it: RESUMED/unpaused may come before STARTED/booted
        DomainLifecycleEvent started = next("life1", DomainLifecycleEvent.Kind.STARTED, Duration.ofSeconds(5));
        assertEquals(uuid, started.uuid());
        assertEquals("started/booted", started.cause());
        domains.awaitConsole("life1", "tick 1", Duration.ofSeconds(90));

        long called = System.nanoTime();
        d.destroy(); // returns once QEMU is gone: libvirt sends SIGTERM and waits for the process (~1 s under TCG here)
        long returned = System.nanoTime();
        // QEMU reports the SIGTERM as a guest shutdown (SHUTDOWN/unknown) before libvirt says it stopped
        DomainLifecycleEvent stopped = next("life1", DomainLifecycleEvent.Kind.STOPPED, Duration.ofSeconds(5));
        assertEquals(DomainLifecycleEvent.Kind.STOPPED, stopped.kind(), stopped.toString());
        assertEquals("stopped/destroyed", stopped.cause());
        assertEquals(uuid, stopped.uuid());
        System.out.printf("measure: destroy: virDomainDestroy took %d ms; lifecycle event %d ms after the call began, "
                        + "%d ms after it returned%n", ms(returned - called), ms(stopped.receivedNanos() - called),
                ms(stopped.receivedNanos() - returned));
        assertTrue(stopped.receivedNanos() - returned < ONE_SECOND_NANOS,
                "destroy reported " + ms(stopped.receivedNanos() - returned) + " ms after libvirt had stopped the domain");
    }

    @Test
    void aDomainWhoseQemuIsKilledIsReportedAsCrashedWithinASecond() throws Exception {
        domains.start(connection, "life2", 2);
        next("life2", DomainLifecycleEvent.Kind.STARTED, Duration.ofSeconds(5));
        domains.awaitConsole("life2", "tick 1", Duration.ofSeconds(90));
        long pid = daemon.qemuPid("life2");
        ProcessHandle qemu = ProcessHandle.of(pid).orElseThrow();
        assertTrue(qemu.info().command().orElse("").contains("qemu-system"), "pid " + pid + " is QEMU");
        // Doppel finds the same process without libvirt's pid file (fencing needs it)
        assertEquals(pid, DomainProcess.qemuOf("life2", connection.domain("life2").getUUIDString()).orElseThrow().pid());

        long killed = System.nanoTime();
        new ProcessBuilder("kill", "-KILL", Long.toString(pid)).start().waitFor();
        DomainLifecycleEvent crashed = next("life2", Duration.ofSeconds(5));
        long latency = crashed.receivedNanos() - killed;
        System.out.printf("measure: SIGKILL of QEMU -> lifecycle event %s (%s) after %d ms%n", crashed.kind(),
                crashed.cause(), ms(latency));
        assertEquals(DomainLifecycleEvent.Kind.CRASHED, crashed.kind(), crashed.toString());
        assertEquals("stopped/failed", crashed.cause());
        assertTrue(crashed.ended());
        assertTrue(latency < ONE_SECOND_NANOS, "crash reported after " + ms(latency) + " ms");
        // a transient domain is forgotten once it stops: libvirt's list must agree with the event
        for (Domain other : connection.libvirt().listAllDomains(0)) {
            assertNotEquals("life2", other.getName(), "libvirt still lists the killed domain");
        }
    }

    /** The next event of {@code domain} of the given kind; other events of it before that one are skipped. */
    private static DomainLifecycleEvent next(String domain, DomainLifecycleEvent.Kind kind, Duration timeout)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            DomainLifecycleEvent e = next(domain, Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
            if (e.kind() == kind) {
                return e;
            }
        }
    }

    /** The next event of {@code domain}; events of other domains are skipped. */
    private static DomainLifecycleEvent next(String domain, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            DomainLifecycleEvent e = received.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            assertNotNull(e, "no lifecycle event of domain '" + domain + "' within " + timeout.toMillis() + " ms");
            if (e.domain().equals(domain)) {
                return e;
            }
        }
    }

    private static long ms(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(nanos);
    }
}

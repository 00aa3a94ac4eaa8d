package dev.doppel.remus.libvirt;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.libvirt.DomainDeviceModel;
import dev.doppel.libvirt.DomainProcess;
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
import dev.doppel.remus.control.ControlMessage;
import dev.doppel.remus.control.ControlServer;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.PrimaryFencing;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.primary.ProtectionScope;
import dev.doppel.remus.primary.ProtectionState;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.remus.primary.ProtectionTarget;
import dev.doppel.tls.PeerTls;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #15, story 1's primary half: Doppel's own checkpoint engine ({@link PrimaryProtector}, unchanged)
 * protects a libvirt domain through a {@code QmpClient} that goes through libvirt, with the domain's output held
 * on the netdev its XML names; and when the domain's QEMU is killed, the backup's control port hears
 * "primary down" within a second (libvirt's lifecycle event ends the QMP connection; nothing polls).
 */
class LibvirtPrimaryProtectorIntegrationTest {

    @Test
    void doppelsProtectorProtectsALibvirtDomainAndReportsItsDeath() throws Exception {
        Path root = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-libvirt-protect-");
        try (PrivateLibvirtd daemon = PrivateLibvirtd.start();
             LibvirtConnection connection = LibvirtConnection.open(daemon.uri());
             BackupServer backup = new BackupServer(root.resolve("stores"));
             ControlServer control = new ControlServer(new InetSocketAddress("127.0.0.1", 0));
             EmbeddedCoordinator zookeeper = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0),
                     root.resolve("zk"), HostSockets.LOCAL, PeerTls.INSECURE);
             Coordinator coordination = Coordinator.connect(zookeeper.connectString(), Coordinator.DEFAULT_SESSION,
                     HostSockets.LOCAL, Duration.ofSeconds(10), PeerTls.INSECURE)) {
            run(daemon, connection, backup, control, coordination);
        } finally {
            BackupStore.deleteAll(root);
        }
    }

    private void run(PrivateLibvirtd daemon, LibvirtConnection connection, BackupServer backup, ControlServer control,
                     Coordinator coordination) throws Exception {
        GuestDomains domains = new GuestDomains(daemon);
        domains.start(connection, "web1", 1, Map.of("doppel.run", "dirtier", "doppel.dirty_mb", "16", "doppel.dirty_rate", "2000"), 128);
        domains.awaitConsole("web1", "dirtier t=", Duration.ofSeconds(120));
        DomainDeviceModel model = DomainXml.read(connection, "web1");

        AtomicLong committed = new AtomicLong(-1);
        BackupServer.Endpoint ep = backup.listen(ProtectedVm.named("web1").withMachine(model.machine(), model.memoryKiB() * 1024),
                new InetSocketAddress("127.0.0.1", 0), new EpochListener() {
                    @Override
                    public void epochCommitted(EpochMetrics m) {
                        committed.set(m.epoch());
                    }
                });
        BlockingQueue<ControlMessage> controlMessages = new LinkedBlockingQueue<>();
        control.register("web1", controlMessages::add);
        // The QEMU that fencing kills and whose exit means "primary down": found as product code would find it.
        ProcessHandle qemu = DomainProcess.qemuOf("web1", model.uuid()).orElseThrow();
        assertEquals(daemon.qemuPid("web1"), qemu.pid());
        Path runDir = Files.createDirectories(daemon.directory().resolve("vm/web1.run"));

        QmpClient qmp = LibvirtQmp.connect(connection, "web1");
        try (PrimaryFencing fencing = PrimaryFencing.claim(coordination, "web1", "primary@local", qemu, Duration.ofSeconds(5))) {
            PrimaryProtector protector = new PrimaryProtector("web1", qmp,
                    () -> ProtectionTarget.memoryOnly(new InetSocketAddress("127.0.0.1", ep.port()), "backup@local/web1"),
                    new InetSocketAddress("127.0.0.1", control.port()), ProtectionOptions.withInterval(Duration.ofMillis(100)),
                    new ProtectionScope(model.netdevIds(), List.of(), HostSockets.LOCAL, runDir, PeerTls.INSECURE), fencing,
                    line -> System.out.println("progress: " + line));
            try {
                protector.protect();
                Thread.sleep(5_000);
                ProtectionStatus s = protector.status();
                System.out.printf("measure: libvirt domain protected through libvirt's monitor: %d checkpoints in 5 s, pause p50 %.2f ms"
                        + " p99 %.2f ms, output held on %s%n", s.checkpoints(), s.pauseP50Ms(), s.pauseP99Ms(), s.heldNetdevs());
                assertEquals(ProtectionState.PROTECTED, s.state(), s.lastProblem());
                assertEquals(List.of("hostnet0"), s.heldNetdevs());
                assertTrue(s.checkpoints() >= 15, "checkpoints in 5 s: " + s.checkpoints());
                assertTrue(committed.get() >= 15, "epochs committed by the backup: " + committed.get());

                controlMessages.clear();
                long killed = System.nanoTime();
                new ProcessBuilder("kill", "-KILL", Long.toString(qemu.pid())).start().waitFor();
                ControlMessage down = null;
                while (down == null) {
                    ControlMessage m = controlMessages.poll(2, TimeUnit.SECONDS);
                    assertNotNull(m, "no primary-down on the backup's control port within 2 s of the kill");
                    if (m.type().equals(ControlMessage.PRIMARY_DOWN)) {
                        down = m;
                    }
                }
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
                System.out.printf("measure: SIGKILL of the libvirt domain's QEMU -> primary-down at the backup after %d ms (%s)%n",
                        ms, down.reason());
                assertTrue(ms < 1000, "primary-down after " + ms + " ms");
                assertEquals(ProtectionState.PRIMARY_LOST, protector.state());
            } finally {
                protector.close();
            }
        } finally {
            qmp.close();
        }
    }
}

package dev.doppel.remus.libvirt;

import dev.doppel.libvirt.DomainDeviceModel;
import dev.doppel.libvirt.DomainXml;
import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.libvirt.LibvirtQmp;
import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import org.junit.jupiter.api.Test;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;

import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #15, the ground under story 2: after SIGKILL of a checkpointed libvirt domain's QEMU, the backup
 * host's libvirt runs the VM again, with the same name and UUID, from the backup store. The way measured here:
 * the primary's own domain XML (host paths mapped) started paused with {@code -incoming defer}, the store's
 * self-contained stream loaded through libvirt's monitor, then {@code virDomainResume}; the destination domain
 * created at failover, or ahead while the primary runs.
 */
class LibvirtRestoreIntegrationTest {
    private static final Pattern DIRTIER = Pattern.compile("dirtier t=\\d+ writes=(\\d+) passes=\\d+ rate=\\d+ corrupt=(\\d+)");
    /** VIR_DOMAIN_XML_INACTIVE: the XML to define the domain anew (no aliases, no runtime state). */
    private static final int XML_INACTIVE = 2;
    /** VIR_DOMAIN_START_PAUSED. */
    private static final int START_PAUSED = 1;

    @Test
    void theBackupHostsLibvirtRunsTheKilledDomainFromTheStore() throws Exception {
        restoreAfterKill(false);
    }

    /** The paused destination domain created while the primary still runs, as a pool would: out of the failover path. */
    @Test
    void aDomainCreatedAheadOnTheBackupHostTakesOverFaster() throws Exception {
        restoreAfterKill(true);
    }

    private void restoreAfterKill(boolean createdAhead) throws Exception {
        Path storeRoot = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-libvirt-restore-");
        try (PrivateLibvirtd primaryHost = PrivateLibvirtd.start();
             PrivateLibvirtd backupHost = PrivateLibvirtd.start();
             LibvirtConnection primary = LibvirtConnection.open(primaryHost.uri());
             LibvirtConnection backup = LibvirtConnection.open(backupHost.uri());
             BackupServer server = new BackupServer(storeRoot)) {
            run(primaryHost, backupHost, primary, backup, server, createdAhead);
        } finally {
            BackupStore.deleteAll(storeRoot);
        }
    }

    private void run(PrivateLibvirtd primaryHost, PrivateLibvirtd backupHost, LibvirtConnection primary,
                     LibvirtConnection backup, BackupServer server, boolean createdAhead) throws Exception {
        GuestDomains domains = new GuestDomains(primaryHost);
        Domain original = domains.start(primary, "web1", 1,
                Map.of("doppel.run", "dirtier", "doppel.dirty_mb", "16", "doppel.dirty_rate", "2000"), 128);
        domains.awaitConsole("web1", "dirtier t=", Duration.ofSeconds(120));
        String uuid = original.getUUIDString();
        String definition = original.getXMLDesc(XML_INACTIVE);
        DomainDeviceModel model = DomainXml.read(primary, "web1");

        AtomicLong committed = new AtomicLong(-1);
        BackupServer.Endpoint ep = server.listen(ProtectedVm.named("web1").withMachine(model.machine(), model.memoryKiB() * 1024),
                new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), new EpochListener() {
                    @Override
                    public void epochCommitted(EpochMetrics m) {
                        committed.set(m.epoch());
                    }
                });
        try (QmpClient qmp = LibvirtQmp.connect(primary, "web1")) {
            qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "x-colo", "state", true), Map.of("capability", "events", "state", true))));
            qmp.execute("migrate-set-parameters", Map.of("x-checkpoint-delay", 100));
            qmp.execute("migrate", Map.of("uri", "tcp:127.0.0.1:" + ep.port()));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (committed.get() < 30) {
                assertTrue(System.nanoTime() < deadline, "30 checkpoints not committed within 90 s: " + ep.lastFailure());
                Thread.sleep(20);
            }
        }
        Domain ahead = createdAhead ? pausedDestination(primaryHost, backupHost, backup, definition, uuid) : null;
        long lastPrimaryWrites = lastWrites(Files.readString(primaryHost.directory().resolve("vm/web1.console"),
                StandardCharsets.ISO_8859_1));

        long killed = System.nanoTime();
        new ProcessBuilder("kill", "-KILL", Long.toString(primaryHost.qemuPid("web1"))).start().waitFor();
        while (ep.sessionActive()) {
            assertTrue(System.nanoTime() - killed < TimeUnit.SECONDS.toNanos(10), "backup session still active 10 s after the kill");
            Thread.sleep(5);
        }
        long sessionEnded = System.nanoTime();
        BackupStore store = ep.store();
        long epoch = store.committedEpoch();
        Path stream = backupHost.directory().resolve("vm/web1-restore.state");
        try (OutputStream out = Files.newOutputStream(stream)) {
            store.writeSelfContainedRestoreStream(out);
        }
        long streamWritten = System.nanoTime();

        Domain restored = createdAhead ? ahead : pausedDestination(primaryHost, backupHost, backup, definition, uuid);
        long created = System.nanoTime();
        try (QmpClient qmp = LibvirtQmp.connect(backup, "web1")) {
            qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(Map.of("capability", "events", "state", true))));
            try (EventSubscription migration = qmp.subscribe("MIGRATION")) {
                qmp.execute("migrate-incoming", Map.of("uri", "file:" + stream));
                QmpEvent done = migration.await(e -> e.dataText("status").equals("completed") || e.dataText("status").equals("failed"),
                        Duration.ofSeconds(60));
                assertEquals("completed", done.dataText("status"), qmp.execute("query-migrate").toString());
            }
        }
        long loaded = System.nanoTime();
        restored.resume();
        long running = System.nanoTime();
        DomainInfo.DomainState state = restored.getInfo().state;
        System.out.printf("measure: libvirt restore (destination %s) of epoch %d (self-contained stream %d MiB): kill -> session"
                        + " end %d ms, stream written %d ms, paused domain created %d ms, stream loaded %d ms, resumed %d ms;"
                        + " kill -> libvirt reports running %d ms%n", createdAhead ? "created ahead" : "created at failover", epoch,
                Files.size(stream) >> 20, ms(sessionEnded - killed),
                ms(streamWritten - sessionEnded), ms(created - streamWritten), ms(loaded - created), ms(running - loaded),
                ms(running - killed));
        Files.delete(stream);

        assertEquals(DomainInfo.DomainState.VIR_DOMAIN_RUNNING, state);
        Domain byName = backup.domain("web1");
        assertEquals(uuid, byName.getUUIDString(), "same UUID on the backup host");
        // libvirt drops a killed domain once its QEMU is reaped (SIGKILL -> lifecycle event 36-247 ms measured); with the
        // destination created ahead the backup runs the VM sooner than that (214 ms seen), so wait for it, bounded.
        long listedUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (primary.libvirt().listAllDomains(0).length > 0 && System.nanoTime() < listedUntil) {
            Thread.sleep(10);
        }
        assertFalse(primary.libvirt().listAllDomains(0).length > 0, "the primary host's libvirt still lists it 5 s after the kill");

        // The guest continues from the checkpoint: the dirtier's counter goes on, and it never finds a corrupt page.
        GuestDomains onBackup = new GuestDomains(backupHost);
        onBackup.awaitConsole("web1", "dirtier t=", Duration.ofSeconds(30));
        Thread.sleep(8_000);
        String console = Files.readString(backupHost.directory().resolve("vm/web1.console"), StandardCharsets.ISO_8859_1);
        Matcher m = DIRTIER.matcher(console);
        assertTrue(m.find(), console);
        long firstWrites = Long.parseLong(m.group(1));
        long maxCorrupt = Long.parseLong(m.group(2));
        int lines = 1;
        while (m.find()) {
            maxCorrupt = Math.max(maxCorrupt, Long.parseLong(m.group(2)));
            lines++;
        }
        System.out.printf("measure: restored guest: first writes=%d (primary's last printed %d), %d dirtier lines, corrupt=%d%n",
                firstWrites, lastPrimaryWrites, lines, maxCorrupt);
        assertTrue(firstWrites >= lastPrimaryWrites / 2 && firstWrites > 0,
                "restored dirtier continues the checkpointed counter: " + firstWrites + " vs " + lastPrimaryWrites);
        assertFalse(console.contains("CORRUPT"), console);
        assertEquals(0, maxCorrupt);
        assertTrue(lines >= 5, "dirtier lines in ~8 s after restore: " + lines);
        assertEquals(DomainInfo.DomainState.VIR_DOMAIN_RUNNING, restored.getInfo().state);

        // What a libvirt user sees with virsh on the backup host.
        assertEquals("running (unpaused)", virsh(backupHost, "domstate", "web1", "--reason"));
        assertTrue(virsh(backupHost, "list", "--name").lines().anyMatch("web1"::equals));
        assertEquals(uuid, virsh(backupHost, "domuuid", "web1"));
        String status = virsh(backupHost, "qemu-monitor-command", "web1", "{\"execute\":\"query-status\"}");
        assertTrue(status.contains("\"status\":\"running\""), status);
    }

    /** virsh against a fixture's libvirtd: its trimmed output; fails the test on a non-zero exit. */
    private static String virsh(PrivateLibvirtd host, String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("virsh", "-q", "-c", host.uri()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "virsh " + String.join(" ", args) + " hangs");
        assertEquals(0, p.exitValue(), "virsh " + String.join(" ", args) + ": " + out);
        return out;
    }

    /**
     * The primary's definition on the backup host: its own disk file and tap (host paths mapped), the same name
     * and UUID, started paused as a migration destination ({@code -incoming defer}).
     */
    private static Domain pausedDestination(PrivateLibvirtd primaryHost, PrivateLibvirtd backupHost, LibvirtConnection backup,
                                            String definition, String uuid) throws Exception {
        Files.createDirectories(backupHost.directory().resolve("vm"));
        new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", backupHost.directory().resolve("vm/web1.qcow2").toString(), "32M")
                .inheritIO().start().waitFor();
        String xml = definition.replace(primaryHost.directory().toString(), backupHost.directory().toString())
                .replace(primaryHost.tapPrefix(), backupHost.tapPrefix())
                .replace("</qemu:commandline>", "  <qemu:arg value='-incoming'/>\n    <qemu:arg value='defer'/>\n  </qemu:commandline>");
        assertTrue(xml.contains("<uuid>" + uuid + "</uuid>"), xml);
        return backup.libvirt().domainCreateXML(xml, START_PAUSED);
    }

    private static long lastWrites(String console) {
        long last = -1;
        Matcher m = DIRTIER.matcher(console);
        while (m.find()) {
            last = Long.parseLong(m.group(1));
        }
        return last;
    }

    private static long ms(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(nanos);
    }
}

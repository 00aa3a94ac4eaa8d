package dev.doppel.libvirt.remus;

import dev.doppel.libvirt.DomainProcess;
import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.libvirt.LibvirtQmp;
import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.failover.Restore;
import dev.doppel.vm.DiskSpec;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fails a protected libvirt domain over into this host's libvirtd: the same name and UUID, from the domain XML the
 * primary sent ({@link DestinationXml}: disks on the backup's replicas, this host's taps, {@code -incoming defer}),
 * started paused; the store's committed epoch loaded as one self-contained stream through libvirt's monitor; then
 * {@code virDomainResume}. libvirt then knows the domain as its own ({@code virsh list}, {@code domstate},
 * {@code qemu-monitor-command}, {@code destroy}).
 *
 * <p>Why a self-contained stream and not the store's memory file mapped {@code share=on} (Doppel's own restore):
 * libvirt chooses the path of a file-backed RAM itself ({@code memory_backing_dir}), so the domain cannot be pointed
 * at the store's file; loading the RAM costs ~75 ms per 100 MiB here (docs/libvirt.md).
 */
public final class LibvirtRestorer implements BackupGuard.Restorer {
    private static final Logger log = LoggerFactory.getLogger(LibvirtRestorer.class);
    /** VIR_DOMAIN_START_PAUSED. */
    private static final int START_PAUSED = 1;
    private static final Duration LOAD_TIMEOUT = Duration.ofSeconds(60);

    private final LibvirtConnection connection;
    private final String definition;
    private final UnaryOperator<String> localize;

    /**
     * @param definition the primary's inactive domain XML
     * @param localize   maps host paths of the primary's XML to this host's (identity when they are the same)
     */
    public LibvirtRestorer(LibvirtConnection connection, String definition, UnaryOperator<String> localize) {
        this.connection = connection;
        this.definition = definition;
        this.localize = localize;
    }

    @Override
    public Restore.Restored restore(VmSpec spec, BackupStore store, BackupStore.RestoreSnapshot snapshot) throws IOException {
        long t0 = System.nanoTime();
        long epoch = snapshot.epoch();
        List<Path> replicas = spec.disks().stream().map(DiskSpec::image).toList();
        String xml;
        try {
            xml = DestinationXml.of(localize.apply(definition), replicas);
        } catch (IllegalArgumentException e) {
            throw failure(spec.name(), epoch, "making the destination domain XML", e);
        }
        Path stream = store.directory().resolve("libvirt-restore-" + epoch + ".state");
        try (OutputStream out = Files.newOutputStream(stream)) {
            store.writeSelfContainedRestoreStream(out);
        }
        long written = System.nanoTime();
        Domain domain;
        try {
            domain = connection.libvirt().domainCreateXML(xml, START_PAUSED);
        } catch (LibvirtException e) {
            Files.deleteIfExists(stream);
            throw failure(spec.name(), epoch, "creating the paused destination domain at " + connection.uri(), e);
        }
        String name;
        String uuid;
        QmpClient qmp = null;
        try {
            name = domain.getName();
            uuid = domain.getUUIDString();
            qmp = LibvirtQmp.connect(connection, name);
            long created = System.nanoTime();
            load(qmp, stream, name, epoch);
            long loaded = System.nanoTime();
            domain.resume();
            long resumed = System.nanoTime();
            long pid = DomainProcess.qemuOf(name, uuid).map(ProcessHandle::pid).orElse(-1L);
            log.info("vm={} epoch={} event=libvirt-restored uri={} uuid={} pid={} stream_mib={} written_ms={} created_ms={} "
                            + "loaded_ms={} resumed_ms={}", name, epoch, connection.uri(), uuid, pid, Files.size(stream) >> 20,
                    ms(written - t0), ms(created - written), ms(loaded - created), ms(resumed - loaded));
            return new Restore.Restored(new LibvirtRestoredVm(connection, name, uuid, pid, qmp), epoch, (resumed - t0) / 1e6);
        } catch (LibvirtException | IOException | RuntimeException e) {
            if (qmp != null) {
                qmp.close();
            }
            destroyQuietly(domain);
            throw e instanceof IOException io ? io : failure(spec.name(), epoch, "loading the checkpoint into the domain", e);
        } finally {
            Files.deleteIfExists(stream);
        }
    }

    private static void load(QmpClient qmp, Path stream, String vm, long epoch) throws IOException {
        qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(Map.of("capability", "events", "state", true))));
        try (EventSubscription migration = qmp.subscribe("MIGRATION")) {
            qmp.execute("migrate-incoming", Map.of("uri", "file:" + stream));
            long deadline = System.nanoTime() + LOAD_TIMEOUT.toNanos();
            while (System.nanoTime() < deadline) {
                QmpEvent e = migration.poll(Duration.ofMillis(100));
                String status = e != null ? e.dataText("status") : qmp.execute("query-migrate").path("status").asText();
                if (status.equals("completed")) {
                    return;
                }
                if (status.equals("failed")) {
                    throw new IOException("VM '" + vm + "' (epoch " + epoch + "): loading the checkpoint through libvirt failed: "
                            + qmp.execute("query-migrate").path("error-desc").asText("?"));
                }
            }
        }
        throw new IOException("VM '" + vm + "' (epoch " + epoch + "): loading the checkpoint did not finish within "
                + LOAD_TIMEOUT.toSeconds() + " s");
    }

    private static void destroyQuietly(Domain domain) {
        try {
            domain.destroy();
        } catch (LibvirtException e) {
            log.warn("destroying the half-restored domain failed: {}", e.getMessage());
        }
    }

    private static IOException failure(String vm, long epoch, String step, Exception cause) {
        return new IOException("VM '" + vm + "' (epoch " + epoch + "): libvirt restore: " + step + ": " + cause.getMessage(), cause);
    }

    private static long ms(long nanos) {
        return nanos / 1_000_000;
    }
}

package dev.doppel.libvirt.remus;

import dev.doppel.libvirt.DomainDeviceModel;
import dev.doppel.libvirt.DomainLifecycle;
import dev.doppel.libvirt.DomainLifecycleEvent;
import dev.doppel.libvirt.DomainProcess;
import dev.doppel.libvirt.DomainXml;
import dev.doppel.libvirt.LibvirtCallException;
import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.libvirt.LibvirtQmp;
import dev.doppel.qmp.QmpClient;
import dev.doppel.remus.service.PrimaryVm;
import dev.doppel.vm.GuestDescriptor;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.libvirt.LibvirtException;

/**
 * A running libvirt domain as the VM a primary protects ({@code doppel protect --libvirt NAME}): QMP through
 * libvirt's monitor, the QEMU process found by the domain's UUID, the device model from the domain's live XML (the
 * netdevs {@code hostnetN} whose output is held, the disks' {@code libvirt-N-format} nodes), the inactive XML for the
 * backup to restore the domain from, and libvirt's lifecycle events telling an owner's stop from a crash. Doppel's
 * own files for the domain (guard socket and log) are under {@code $DOPPEL_RUN_DIR/libvirt/NAME/qemu-PID}:
 * libvirt's directories are libvirt's.
 */
public final class LibvirtPrimaryVm implements PrimaryVm {
    /** VIR_DOMAIN_XML_INACTIVE: the definition to start the domain anew (no aliases, no runtime state). */
    private static final int XML_INACTIVE = 2;
    /**
     * How long the guard keeps the lease after the QEMU is gone, waiting for libvirt's cause: libvirt reports a
     * stop once the process is reaped (measured 36-247 ms after SIGKILL on this 2-core host, under load more); a
     * controller that is gone gives no cause, and a crash must then still fail over, so not much longer.
     */
    private static final Duration VERDICT_WAIT = Duration.ofSeconds(3);

    private final LibvirtConnection connection;
    private final DomainDeviceModel model;
    private final String definition;
    private final long qemuPid;
    private final Path stateDir;
    private DomainLifecycle lifecycle;

    private LibvirtPrimaryVm(LibvirtConnection connection, DomainDeviceModel model, String definition, long qemuPid, Path stateDir) {
        this.connection = connection;
        this.model = model;
        this.definition = definition;
        this.qemuPid = qemuPid;
        this.stateDir = stateDir;
    }

    /**
     * The running domain {@code name} of the libvirtd at {@code uri}. Owns a connection of its own from here.
     *
     * @throws IllegalStateException if the domain does not run or its QEMU is not on this host
     */
    public static LibvirtPrimaryVm open(String uri, String name) throws IOException {
        LibvirtConnection connection = LibvirtConnection.open(uri);
        try {
            DomainDeviceModel model = DomainXml.read(connection, name);
            String definition;
            try {
                definition = connection.domain(name).getXMLDesc(XML_INACTIVE);
            } catch (LibvirtException e) {
                throw new LibvirtCallException(uri, name, "reading the inactive domain XML", e);
            }
            long pid = DomainProcess.qemuOf(name, model.uuid())
                    .orElseThrow(() -> new IllegalStateException("libvirt domain '" + name + "' (UUID " + model.uuid()
                            + ") has no QEMU process on this host: is it running, and is libvirtd at " + uri + " on this host?"))
                    .pid();
            // Per QEMU process: a re-attaching controller finds the same guard; a domain started anew (after a
            // failover, say) must not find the embedded ZooKeeper data of a guard of its previous life.
            Path stateDir = Files.createDirectories(VmRunDir.root().resolve("libvirt").resolve(name).resolve("qemu-" + pid));
            return new LibvirtPrimaryVm(connection, model, definition, pid, stateDir);
        } catch (IOException | RuntimeException e) {
            connection.close();
            throw e;
        }
    }

    @Override
    public String name() {
        return model.name();
    }

    public String uuid() {
        return model.uuid();
    }

    @Override
    public long qemuPid() {
        return qemuPid;
    }

    @Override
    public Path stateDir() {
        return stateDir;
    }

    @Override
    public QmpClient connectQmp() {
        return LibvirtQmp.connect(connection, model.name());
    }

    /**
     * The device model as the backup's service reads a descriptor: machine type and memory (the backup store's RAM
     * block), the NICs by netdev id (held output) and the disks by block node (mirrored). It is marked disk-booted:
     * the backup restores from the domain XML, never from Doppel's guest image.
     */
    @Override
    public GuestDescriptor descriptor() {
        List<GuestDescriptor.Nic> nics = model.nics().stream()
                .filter(n -> n.netdevId() != null)
                .map(n -> new GuestDescriptor.Nic(n.netdevId(), n.mac())).toList();
        return new GuestDescriptor(model.machine(), model.memoryKiB() / 1024, 1, Map.of(), false, nics, model.diskNodeNames(),
                false, true);
    }

    @Override
    public String definition() {
        return definition;
    }

    @Override
    public Duration exitVerdictWait() {
        return VERDICT_WAIT;
    }

    /**
     * libvirt's lifecycle event for this domain (same UUID): {@code stopped/destroyed}, {@code stopped/shutdown},
     * {@code stopped/saved}, {@code stopped/migrated} are its owner's acts; {@code stopped/failed} (QEMU killed or
     * died) and {@code stopped/crashed} are not.
     */
    @Override
    public synchronized void onExit(Consumer<VmExit> listener) {
        if (lifecycle == null) {
            lifecycle = DomainLifecycle.watch(connection);
        }
        AtomicBoolean told = new AtomicBoolean();
        lifecycle.addListener(e -> {
            if (e.uuid().equalsIgnoreCase(model.uuid()) && e.ended() && told.compareAndSet(false, true)) {
                listener.accept(new VmExit(e.kind() == DomainLifecycleEvent.Kind.STOPPED, e.cause()));
            }
        });
    }

    @Override
    public synchronized void close() {
        if (lifecycle != null) {
            lifecycle.close();
        }
        connection.close();
    }
}

package dev.doppel.remus.service;

import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.GuestDescriptor;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Consumer;

/**
 * The VM a {@link PrimarySession} protects, whoever started it: a VM of Doppel's own launcher ({@link RunDirVm}, its
 * run directory) or a VM another manager owns (a libvirt domain, in doppel-libvirt). The session needs its QEMU
 * process (the guard watches it and, when fenced, kills it), a QMP connection to it, its device model (which
 * netdevs' output is held, which disks are mirrored, what the backup rebuilds) and a directory of Doppel's own for
 * the guard's socket and log and the replication relay's socket.
 */
public interface PrimaryVm extends AutoCloseable {
    /** The VM's name: in the ownership record, on the backup, in every message. */
    String name();

    /** The VM's QEMU process on this host. */
    long qemuPid();

    /** A directory of Doppel's own for this VM (guard socket and log, embedded ZooKeeper data, relay socket). */
    Path stateDir();

    /** A new QMP connection to the VM's QEMU; it ends when the QEMU does. */
    QmpClient connectQmp() throws IOException;

    /** The device model the backup rebuilds: NIC ids are the netdevs whose output is held, disks are block node names. */
    GuestDescriptor descriptor();

    /**
     * The VM's own definition in its manager's terms, sent to the backup so that it restores the VM into the same
     * manager (libvirt: the inactive domain XML); null for a VM of Doppel's own launcher.
     */
    default String definition() {
        return null;
    }

    /**
     * How long the VM's guard keeps the lease after the QEMU exited, waiting for {@link #onExit}'s cause; zero when
     * the VM's manager gives none (the lease is given back at once).
     */
    default Duration exitVerdictWait() {
        return Duration.ZERO;
    }

    /** Calls {@code listener} (once) when the VM's manager says why its QEMU ended. Managers that do not say: never. */
    default void onExit(Consumer<VmExit> listener) {
    }

    /** Lets go of what this object holds (connections to the manager); the VM runs on. */
    @Override
    default void close() {
    }

    /**
     * Why a protected VM's QEMU ended, as its manager says.
     *
     * @param byOwner true for an owner's deliberate stop (libvirt: {@code stopped/destroyed}, {@code stopped/shutdown}):
     *                protection ends and the backup stands down; false for a crash or kill: the backup fails over
     * @param cause   the manager's words, e.g. {@code stopped/destroyed}
     */
    record VmExit(boolean byOwner, String cause) {
    }
}

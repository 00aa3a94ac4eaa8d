package dev.doppel.libvirt.remus;

import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.qmp.QmpClient;
import dev.doppel.remus.failover.RestoredVm;
import org.libvirt.LibvirtException;

/**
 * A failed-over VM running as a domain of this host's libvirtd. The domain is libvirt's: the backup service lets
 * go of its monitor connection but never stops it ({@code virsh destroy} does).
 */
final class LibvirtRestoredVm implements RestoredVm {
    private final LibvirtConnection connection;
    private final String name;
    private final String uuid;
    private final long pid;
    private final QmpClient qmp;

    LibvirtRestoredVm(LibvirtConnection connection, String name, String uuid, long pid, QmpClient qmp) {
        this.connection = connection;
        this.name = name;
        this.uuid = uuid;
        this.pid = pid;
        this.qmp = qmp;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long pid() {
        return pid;
    }

    @Override
    public boolean isAlive() {
        try {
            return connection.domain(name).isActive() == 1;
        } catch (LibvirtException | RuntimeException e) {
            return false;
        }
    }

    @Override
    public String describe() {
        return "libvirt domain " + name + " (UUID " + uuid + ", QEMU pid " + pid + ") at " + connection.uri();
    }

    @Override
    public void releaseMonitor() {
        qmp.close();
    }

    @Override
    public void close() {
        qmp.close();
    }
}

package dev.doppel.cli;

import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.libvirt.remus.LibvirtRestoreTarget;
import dev.doppel.remus.service.BackupService;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code backup serve --libvirt URI [--libvirt-map FROM=TO]...}: the connection to this host's libvirtd that
 * failed-over libvirt domains are created in, open as long as the service runs; without {@code --libvirt}, none.
 */
final class LibvirtTarget implements AutoCloseable {
    private final LibvirtConnection connection;
    private final BackupService.RestoreTarget target;

    private LibvirtTarget(LibvirtConnection connection, BackupService.RestoreTarget target) {
        this.connection = connection;
        this.target = target;
    }

    static LibvirtTarget open(String uri, List<String> maps) {
        if (uri == null) {
            if (!maps.isEmpty()) {
                throw new IllegalArgumentException("--libvirt-map needs --libvirt");
            }
            return new LibvirtTarget(null, BackupService.RestoreTarget.NONE);
        }
        Map<String, String> pathMap = new LinkedHashMap<>();
        for (String m : maps) {
            int eq = m.indexOf('=');
            if (eq <= 0 || eq == m.length() - 1) {
                throw new IllegalArgumentException("--libvirt-map: expected FROM=TO, got '" + m + "'");
            }
            pathMap.put(m.substring(0, eq), m.substring(eq + 1));
        }
        LibvirtConnection c = LibvirtConnection.open(uri);
        System.out.println("failed-over libvirt domains are created in the libvirtd at " + uri);
        return new LibvirtTarget(c, new LibvirtRestoreTarget(c, pathMap));
    }

    BackupService.RestoreTarget restoreTarget() {
        return target;
    }

    /** The domains restored through it stay libvirt's; only the connection ends. */
    @Override
    public void close() {
        if (connection != null) {
            connection.close();
        }
    }
}

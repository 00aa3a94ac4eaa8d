package dev.doppel.libvirt.remus;

import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.remus.control.ProtectRequest;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.service.BackupService;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * {@code backup serve --libvirt URI}: protected libvirt domains fail over into this host's libvirtd, from the domain
 * XML their primary sent with its protect request. Host paths in that XML are this host's too (as libvirt's own
 * migration assumes), except the prefixes mapped with {@code --libvirt-map FROM=TO}.
 */
public final class LibvirtRestoreTarget implements BackupService.RestoreTarget {
    private final LibvirtConnection connection;
    private final Map<String, String> pathMap;

    /** @param pathMap host path prefixes of the primary's XML → this host's (may be empty) */
    public LibvirtRestoreTarget(LibvirtConnection connection, Map<String, String> pathMap) {
        this.connection = connection;
        this.pathMap = Map.copyOf(pathMap);
    }

    @Override
    public BackupGuard.Restorer restorerFor(ProtectRequest request) {
        if (request.definition() == null) {
            return null;
        }
        return new LibvirtRestorer(connection, request.definition(), localize());
    }

    private UnaryOperator<String> localize() {
        return xml -> {
            String out = xml;
            for (var e : pathMap.entrySet()) {
                out = out.replace(e.getKey(), e.getValue());
            }
            return out;
        };
    }
}

package dev.doppel.remus.primary;

import java.net.InetSocketAddress;
import java.util.Map;

/**
 * Where one protection attempt replicates to: the backup's replication port for this VM, the name of
 * the backup store (written into the VM's ownership record: only that store may take it over) and,
 * per replicated disk (node name), the backup's NBD export. A new attempt (after a lost backup) may get
 * new ports, so the protector asks for a target each time it protects.
 */
public record ProtectionTarget(InetSocketAddress replication, String store, Map<String, InetSocketAddress> disks) {
    public ProtectionTarget {
        disks = Map.copyOf(disks);
        java.util.Objects.requireNonNull(store, "backup store name");
    }

    public static ProtectionTarget memoryOnly(InetSocketAddress replication, String store) {
        return new ProtectionTarget(replication, store, Map.of());
    }
}

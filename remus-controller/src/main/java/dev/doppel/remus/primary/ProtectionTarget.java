package dev.doppel.remus.primary;

import java.net.InetSocketAddress;
import java.util.Map;

/**
 * Where one protection attempt replicates to: the backup's replication port for this VM and, per
 * replicated disk (node name), the backup's NBD export. A new attempt (after a lost backup) may get
 * new ports, so the protector asks for a target each time it protects.
 */
public record ProtectionTarget(InetSocketAddress replication, Map<String, InetSocketAddress> disks) {
    public ProtectionTarget {
        disks = Map.copyOf(disks);
    }

    public static ProtectionTarget memoryOnly(InetSocketAddress replication) {
        return new ProtectionTarget(replication, Map.of());
    }
}

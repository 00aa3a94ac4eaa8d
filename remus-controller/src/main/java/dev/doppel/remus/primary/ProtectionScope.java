package dev.doppel.remus.primary;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import java.nio.file.Path;
import java.util.List;

/**
 * What of a VM is protected besides memory and device state, and where the primary host's own
 * sockets live.
 *
 * @param netdevs   NIC backends (netdev ids) whose output is held until the backup commits (Remus
 *                  output commit); empty: output is not held (memory-only protection)
 * @param disks     block node names of the disks replicated to the backup; empty: none
 * @param host      the primary host's network, for the replication relay's connection to the backup
 * @param runDir    a private directory for the relay's unix socket (the VM's run directory); needed
 *                  when output is held or {@code tls} is secure (the stream then goes through the relay)
 * @param tls       how the relay's stream and the heartbeats to the backup are protected
 */
public record ProtectionScope(List<String> netdevs, List<String> disks, HostSockets host, Path runDir, PeerTls tls) {
    public ProtectionScope {
        netdevs = List.copyOf(netdevs);
        disks = List.copyOf(disks);
    }

    /** Memory and device state only, plain TCP: the behaviour before output commit and disks existed. */
    public static ProtectionScope memoryOnly() {
        return new ProtectionScope(List.of(), List.of(), HostSockets.LOCAL, null, PeerTls.INSECURE);
    }

    boolean holdsOutput() {
        return !netdevs.isEmpty();
    }
}

package dev.doppel.daemon;

import java.net.InetSocketAddress;
import java.nio.file.Path;

/**
 * How a daemon runs on its host.
 *
 * @param stateDir    the daemon's own files (backup service settings, the backup stores' default root)
 * @param socket      the unix socket of the API (local access; its directory is made 0750)
 * @param tcp         TCP address of the API, or null for none (then {@code tlsDir} and {@code tokenFile} are required)
 * @param tlsDir      this host's directory from {@code doppel pki issue HOST} (server-cert.pem, server-key.pem)
 * @param tokenFile   the bearer token TCP clients must send
 * @param patchedQemu the prefix of the COLO-patched QEMU (VMs started with colo, restored VMs)
 * @param accelerator "tcg" or "kvm" to force one, null to pick (KVM when usable, else TCG)
 */
public record DaemonConfig(Path stateDir, Path socket, InetSocketAddress tcp, Path tlsDir, Path tokenFile, Path patchedQemu,
                           String accelerator) {
    public static final Path DEFAULT_STATE = Path.of("/var/lib/doppel/daemon");
    public static final Path DEFAULT_SOCKET = Path.of("/run/doppel/daemon/doppeld.sock");

    public DaemonConfig {
        if (tcp != null && (tlsDir == null || tokenFile == null)) {
            throw new IllegalArgumentException("the API on TCP (" + tcp + ") needs TLS and a token: give --tls DIR and --token-file FILE "
                    + "(or use the unix socket " + (socket == null ? DEFAULT_SOCKET : socket) + " only)");
        }
        stateDir = stateDir == null ? DEFAULT_STATE : stateDir;
        socket = socket == null ? DEFAULT_SOCKET : socket;
    }
}

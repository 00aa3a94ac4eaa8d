package dev.doppel.daemon.vms;

import dev.doppel.remus.primary.ProtectionStatus;

/**
 * One VM as the API lists it.
 *
 * @param state      running or dead (its QEMU process is gone but its run directory is left)
 * @param origin     started (by a client), restored (a failover made it here), family (a fork family's VM)
 * @param protection its protection, or null when it is not protected from this host
 */
public record VmView(String name, long pid, String state, String accelerator, String runDir, String origin,
                     ProtectionStatus protection) {
}

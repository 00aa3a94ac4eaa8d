package dev.doppel.remus.colo;

import java.time.Duration;

/**
 * What the backup knows about a VM before its primary connects, to refuse a stream from the wrong
 * VM instead of storing it.
 *
 * @param name              the VM's name (errors, logs, store directory)
 * @param machineType       expected machine type, e.g. {@code pc-i440fx-10.0}; null accepts any
 * @param mainRamBytes      expected size of {@code pc.ram}; 0 accepts any
 * @param idleTimeout       longest wait for the next CHECKPOINT_REQUEST (must exceed x-checkpoint-delay)
 * @param transferTimeout   longest silence inside the initial stream or a checkpoint
 */
public record ProtectedVm(String name, String machineType, long mainRamBytes, Duration idleTimeout, Duration transferTimeout) {
    public static ProtectedVm named(String name) {
        return new ProtectedVm(name, null, 0, Duration.ofMinutes(5), Duration.ofSeconds(30));
    }

    public ProtectedVm withMachine(String machine, long ramBytes) {
        return new ProtectedVm(name, machine, ramBytes, idleTimeout, transferTimeout);
    }
}

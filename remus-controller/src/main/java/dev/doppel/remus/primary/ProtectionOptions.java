package dev.doppel.remus.primary;

import java.time.Duration;

/**
 * How a VM is protected.
 *
 * @param interval        epoch length: QEMU's {@code x-checkpoint-delay}
 * @param backupTimeout   longest the guest may stay stopped in one checkpoint before the backup is
 *                        declared lost and the guest continues unprotected
 * @param initialSyncTimeout bound for the initial full synchronisation
 * @param reprotectDelay  pause between attempts to protect again after the backup was lost
 */
public record ProtectionOptions(Duration interval, Duration backupTimeout, Duration initialSyncTimeout, Duration reprotectDelay) {
    public ProtectionOptions {
        if (interval.toMillis() < 1) {
            throw new IllegalArgumentException("interval must be at least 1 ms");
        }
        if (backupTimeout.compareTo(interval) < 0) {
            throw new IllegalArgumentException("backup timeout must be at least one interval");
        }
    }

    /** Interval as given, timeout 3 intervals but at least 300 ms (a TCG guest's stop alone can take tens of ms). */
    public static ProtectionOptions withInterval(Duration interval) {
        Duration timeout = interval.multipliedBy(3);
        if (timeout.toMillis() < 300) {
            timeout = Duration.ofMillis(300);
        }
        return new ProtectionOptions(interval, timeout, Duration.ofSeconds(120), Duration.ofSeconds(2));
    }
}

package dev.doppel.remus.primary;

/**
 * What a {@link PrimaryProtector} reports as it happens, for a host service's event stream and
 * metrics. Called on the protector's QMP event or watchdog threads: implementations hand the event
 * on and return at once (they must never block the checkpoint loop).
 */
public interface ProtectionEvents {
    ProtectionEvents NONE = new ProtectionEvents() {
    };

    /** The initial synchronisation is done; checkpoints to {@code backup} follow. */
    default void protectedNow(String vm, String backup) {
    }

    /** Checkpoint {@code epoch} is committed by the backup and the guest runs again after {@code pauseNanos}. */
    default void checkpointCommitted(String vm, long epoch, long pauseNanos) {
    }

    /**
     * The output held during {@code epoch} was released at its commit: {@code frames} frames of
     * {@code bytes} bytes, as the kernel counted them on the NICs' taps.
     */
    default void outputReleased(String vm, long epoch, long frames, long bytes) {
    }

    /** The backup is lost; {@code fenced}: the primary may not serve on alone and its QEMU is being stopped. */
    default void backupLost(String vm, long epoch, String cause, boolean fenced) {
    }

    /** The primary QEMU itself is gone (the backup was told to take over). */
    default void primaryLost(String vm, long epoch, String cause) {
    }
}

package dev.doppel.remus.colo;

/** Observes a {@link ColoSecondarySession}. Methods run on the session's thread: keep them short. */
public interface EpochListener {
    /**
     * Epoch {@code epoch} is committed and the primary is still paused, waiting for VMSTATE_LOADED.
     * The primary's memory equals the store's committed epoch now (tests compare them here, through
     * {@code BackupStore.memoryFile()}, which waits for the pages to be applied); the primary's pause
     * grows by the time spent in this method.
     */
    default void beforeRelease(long epoch) {
    }

    /** Epoch committed and acknowledged. */
    default void epochCommitted(EpochMetrics metrics) {
    }

    /** The session ended: {@code cause} is null when the primary closed the connection between checkpoints. */
    default void sessionEnded(long lastCommittedEpoch, Throwable cause) {
    }

    EpochListener NONE = new EpochListener() {
    };
}

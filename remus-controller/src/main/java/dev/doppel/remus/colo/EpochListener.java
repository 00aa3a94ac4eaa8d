package dev.doppel.remus.colo;

/** Observes a {@link ColoSecondarySession}. Methods run on the session's thread: keep them short. */
public interface EpochListener {
    /**
     * Every byte of checkpoint {@code epoch} has arrived (RAM and device state); the commit follows.
     * Runs before VMSTATE_RECEIVED: a test or campaign that holds this call holds the commit.
     */
    default void checkpointReceived(long epoch) {
    }

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

    /** Both listeners, {@code first} first, for every event. */
    static EpochListener both(EpochListener first, EpochListener second) {
        return new EpochListener() {
            @Override
            public void checkpointReceived(long epoch) {
                first.checkpointReceived(epoch);
                second.checkpointReceived(epoch);
            }

            @Override
            public void beforeRelease(long epoch) {
                first.beforeRelease(epoch);
                second.beforeRelease(epoch);
            }

            @Override
            public void epochCommitted(EpochMetrics metrics) {
                first.epochCommitted(metrics);
                second.epochCommitted(metrics);
            }

            @Override
            public void sessionEnded(long lastCommittedEpoch, Throwable cause) {
                first.sessionEnded(lastCommittedEpoch, cause);
                second.sessionEnded(lastCommittedEpoch, cause);
            }
        };
    }
}

package dev.doppel.remus.primary;

import java.util.Arrays;

/**
 * Per-epoch figures as the primary sees them: how long the guest stood still in each checkpoint
 * (QEMU's STOP → RESUME events). A bounded ring of recent pauses gives the percentiles.
 */
public final class CheckpointStats {
    private static final int WINDOW = 4096;

    private final long[] pausesNanos = new long[WINDOW];
    private long checkpoints;
    private long lastPauseNanos;
    private long maxPauseNanos;

    synchronized void recordPause(long nanos) {
        pausesNanos[(int) (checkpoints % WINDOW)] = nanos;
        checkpoints++;
        lastPauseNanos = nanos;
        maxPauseNanos = Math.max(maxPauseNanos, nanos);
    }

    public synchronized long checkpoints() {
        return checkpoints;
    }

    public synchronized double lastPauseMs() {
        return lastPauseNanos / 1e6;
    }

    public synchronized double maxPauseMs() {
        return maxPauseNanos / 1e6;
    }

    /** Pause percentile over the last {@value #WINDOW} checkpoints, in ms (0 with none). */
    public synchronized double pausePercentileMs(double p) {
        int n = (int) Math.min(checkpoints, WINDOW);
        if (n == 0) {
            return 0;
        }
        long[] sorted = Arrays.copyOf(pausesNanos, n);
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(p / 100.0 * n);
        return sorted[Math.min(n - 1, Math.max(0, rank - 1))] / 1e6;
    }
}

package dev.doppel.cli.bench;

import java.util.Arrays;

/** Nearest-rank percentiles over a sample of longs. */
public final class Percentiles {
    private final long[] sorted;

    public Percentiles(long[] sample, int count) {
        this.sorted = Arrays.copyOf(sample, count);
        Arrays.sort(sorted);
    }

    /** p in [0, 100]; 0 for an empty sample. */
    public long at(double p) {
        if (sorted.length == 0) {
            return 0;
        }
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
    }

    public int count() {
        return sorted.length;
    }
}

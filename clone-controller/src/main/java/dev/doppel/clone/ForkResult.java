package dev.doppel.clone;

import java.util.List;

/**
 * What a fork produced and what it cost.
 *
 * @param parent          the parent (same handle as before the fork; now in a new process)
 * @param clones          clone k at index k-1
 * @param forkNumber      the family-wide fork number (part of the clones' addresses)
 * @param parentPauseMs   parent {@code stop} → parent running again
 * @param forkMs          fork request → all clones running
 * @param prestartMs      time spent starting QEMU processes inside this request (0 with a warm pool)
 * @param descriptorBytes size of the VM descriptor (device state, x-ignore-shared stream)
 */
public record ForkResult(ForkableVm parent, List<ForkableVm> clones, int forkNumber, double parentPauseMs, double forkMs,
                         double prestartMs, long descriptorBytes) {
}

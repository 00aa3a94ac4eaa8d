package dev.doppel.remus.primary;

import java.util.List;

/**
 * A snapshot of one protected VM for {@code doppel status} and metrics.
 *
 * @param vm              VM name
 * @param state           protection state
 * @param backup          backup address ("host:port")
 * @param checkpoints     checkpoints completed since protection (re)started
 * @param lastPauseMs     guest pause of the last checkpoint
 * @param pauseP50Ms      median pause over recent checkpoints
 * @param pauseP99Ms      99th percentile pause
 * @param maxPauseMs      longest pause seen
 * @param lagMs           time since the last checkpoint completed: how far the backup's state is behind
 * @param lostBackups     how often the backup was lost
 * @param lastProblem     why protection last failed or was lost (empty if never)
 * @param heldNetdevs     NIC backends whose output is held per epoch (empty: output not held)
 * @param replicatedDisks disk nodes mirrored to the backup (empty: none)
 * @param outputReleaseMs mean time per checkpoint spent releasing held output
 */
public record ProtectionStatus(String vm, ProtectionState state, String backup, long checkpoints, double lastPauseMs,
                               double pauseP50Ms, double pauseP99Ms, double maxPauseMs, long lagMs,
                               long lostBackups, String lastProblem, List<String> heldNetdevs,
                               List<String> replicatedDisks, double outputReleaseMs) {
    public ProtectionStatus {
        heldNetdevs = heldNetdevs == null ? List.of() : List.copyOf(heldNetdevs);
        replicatedDisks = replicatedDisks == null ? List.of() : List.copyOf(replicatedDisks);
    }
}

package dev.doppel.remus.primary;

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
 */
public record ProtectionStatus(String vm, ProtectionState state, String backup, long checkpoints, double lastPauseMs,
                               double pauseP50Ms, double pauseP99Ms, double maxPauseMs, long lagMs,
                               long lostBackups, String lastProblem) {
}

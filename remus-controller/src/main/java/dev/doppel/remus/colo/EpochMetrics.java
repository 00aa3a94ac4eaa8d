package dev.doppel.remus.colo;

/**
 * What one epoch cost, as the backup saw it.
 *
 * @param epoch            0 for the initial stream, then 1, 2, ... per checkpoint
 * @param dataPages        pages received with data
 * @param filledPages      pages received as ZERO records
 * @param wireBytes        bytes read from the primary for this epoch (RAM part, device state, messages)
 * @param deviceStateBytes size of the device state
 * @param receiveNanos     CHECKPOINT_REQUEST received → last device-state byte read (initial: first → last byte)
 * @param commitNanos      the store's commit up to the commit point (what the primary waits for)
 * @param pauseNanos       CHECKPOINT_REQUEST received → VMSTATE_LOADED sent: the primary's pause as seen here
 * @param commitLogNanos   part of the commit up to the commit point (redo log, device state, commit record)
 * @param commitApplyNanos writing the pages into the memory files, done after the commit point on the
 *                         store's thread while the primary runs: the figure is the PREVIOUS epoch's
 */
public record EpochMetrics(long epoch, int dataPages, int filledPages, long wireBytes, long deviceStateBytes,
                           long receiveNanos, long commitNanos, long pauseNanos, long commitLogNanos, long commitApplyNanos) {
}

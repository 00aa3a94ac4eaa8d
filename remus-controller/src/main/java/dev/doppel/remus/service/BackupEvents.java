package dev.doppel.remus.service;

import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.failover.BackupGuard;

/**
 * What a {@link BackupService} reports as it happens, for a host service's event stream and metrics.
 * Called on replication and guard threads: implementations hand the event on and return at once.
 */
public interface BackupEvents {
    BackupEvents NONE = new BackupEvents() {
    };

    /** A primary asked to have {@code vm} protected and got a store and replication port. */
    default void vmProtected(String vm, int replicationPort, String store) {
    }

    /** The backup committed an epoch of {@code vm} (the primary may now release that epoch's output). */
    default void epochCommitted(String vm, EpochMetrics metrics) {
    }

    /** {@code vm} failed over: its restored copy runs on this host. */
    default void failedOver(String vm, BackupGuard.Failover failover) {
    }

    /** No failover for {@code vm}: {@code stale} when the primary went on without this store (the right outcome). */
    default void failoverRefused(String vm, String cause, boolean stale) {
    }
}

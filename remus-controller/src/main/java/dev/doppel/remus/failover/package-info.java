/**
 * The failover path on the backup: {@link dev.doppel.remus.failover.BackupGuard} decides when the
 * primary is lost, {@link dev.doppel.remus.failover.Restore} starts the VM from the last committed
 * checkpoint.
 */
package dev.doppel.remus.failover;

/**
 * COLO on the wire, backup side: the message codec and {@link dev.doppel.remus.colo.ColoSecondarySession},
 * which turns one primary QEMU's connection into committed epochs of a
 * {@link dev.doppel.remus.backup.BackupStore}.
 */
package dev.doppel.remus.colo;

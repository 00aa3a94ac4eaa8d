/**
 * The backup service: {@link dev.doppel.remus.backup.BackupStore} holds each protected VM's last
 * committed epoch (memory files on tmpfs, device state, atomic commit) and produces the stream a
 * restore loads; {@link dev.doppel.remus.backup.BackupServer} accepts the primaries' connections.
 */
package dev.doppel.remus.backup;

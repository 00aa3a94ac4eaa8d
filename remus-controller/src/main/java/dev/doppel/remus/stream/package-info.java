/**
 * QEMU's migration stream as bytes: reading ({@link dev.doppel.remus.stream.MigrationStreamReader},
 * {@link dev.doppel.remus.stream.RamSectionParser}) and writing
 * ({@link dev.doppel.remus.stream.MigrationStreamWriter}). No sockets, no files, no policy: the COLO
 * session and the backup store decide what to do with the records.
 */
package dev.doppel.remus.stream;

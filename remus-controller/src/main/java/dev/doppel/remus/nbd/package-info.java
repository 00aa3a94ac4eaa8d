/**
 * Disk replication, backup side: an NBD server ({@link dev.doppel.remus.nbd.NbdServer}, one
 * connection per {@link dev.doppel.remus.nbd.NbdConnection}) that a COLO primary's {@code quorum}
 * child or {@code blockdev-mirror} (copy-mode=write-blocking) writes to, in front of an
 * {@link dev.doppel.remus.nbd.EpochDisk} that holds the writes of the open epoch in memory until the
 * COLO session commits the checkpoint. The wire constants live in
 * {@link dev.doppel.remus.nbd.NbdProtocol}; nothing here knows about COLO messages.
 */
package dev.doppel.remus.nbd;

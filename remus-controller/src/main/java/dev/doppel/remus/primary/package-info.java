/**
 * The primary side of Remus: {@link dev.doppel.remus.primary.PrimaryProtector} starts QEMU's COLO
 * checkpointing of a running VM towards a backup and supervises it — every epoch QEMU stops the
 * guest, ships dirty RAM and device state, and resumes when the backup has committed — and takes
 * the guest out of COLO when the backup is lost, so that it never stays stopped longer than the
 * configured timeout.
 */
package dev.doppel.remus.primary;

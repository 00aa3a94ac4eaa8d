/**
 * The control channel between a primary's controller and the backup service, beside QEMU's
 * replication stream: heartbeats, "primary down" and "stand down". It is what lets the backup tell
 * a dead primary (fail over) from a primary that is alive but gave up on this backup (do not fail
 * over: the primary runs on, a second copy would be split brain).
 */
package dev.doppel.remus.control;

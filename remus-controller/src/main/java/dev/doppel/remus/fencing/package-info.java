/**
 * Fencing: who may run a protected VM is decided in ZooKeeper (through Curator), never by silence.
 *
 * <p>Per VM two nodes under {@code /doppel/vms/<vm>}: {@code lease}, an ephemeral node that lives as
 * long as its holder's ZooKeeper session (its creation zxid is the holder's <em>fencing token</em>,
 * which only grows), and {@code record}, a persistent JSON {@link OwnershipRecord} that says who owns
 * the VM and which backup store may take it over. Every write of the record is a compare-and-set on
 * its version, so the primary's "continue without a backup" and the backup's "take over" cannot both
 * succeed. See {@code docs/fencing.md} for the timing argument.
 */
package dev.doppel.remus.fencing;

package dev.doppel.remus.fencing;

import java.time.Duration;

/**
 * What the checkpoint loop on the primary needs from fencing: name the backup store before
 * replicating to it, record "unprotected" before output leaves without a commit, and learn whether
 * the QEMU was killed because it may no longer run the VM.
 *
 * <p>Two implementations: {@link PrimaryFencing} holds the lease in the calling process (used inside
 * the per-VM guard, and by single-process benches whose QEMUs die with them anyway), and
 * {@code guard.GuardClient} asks the VM's guard process, which holds the lease for a controller that
 * may crash and come back ({@code docs/fencing.md}, "The guard").
 */
public interface PrimaryFence extends AutoCloseable {

    /** The lease's fencing token (the creation zxid of the lease node). */
    long token();

    /** Names {@code store} as the backup that may take the VM over; retakes a lost lease first. */
    void protectWith(String store) throws FencingException;

    /**
     * Must succeed before held output leaves without a backup's commit. On failure the QEMU has been
     * killed and the output must not be released.
     */
    boolean goUnprotected(String why);

    /** Null, or why the QEMU was killed. */
    String fencedBecause();

    /** Waits up to {@code wait} for the QEMU process to be gone (a zombie counts as gone). */
    boolean confirmDead(Duration wait);

    /** Protection is over (the VM is unprotected or dead): the lease is given back. */
    @Override
    void close();
}

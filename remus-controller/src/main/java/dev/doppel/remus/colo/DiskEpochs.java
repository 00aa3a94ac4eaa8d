package dev.doppel.remus.colo;

import java.io.IOException;

/**
 * The protected VM's replicated disks as the COLO session sees them: the session tells them where
 * epochs begin and end, so that the backup's disks always match its committed memory.
 *
 * <p>Where the epoch boundaries lie: the checkpoint's VM stop drains the guest's in-flight I/O and
 * then flushes every disk written since its last flush (FINDINGS: every epoch ends with that FLUSH;
 * the mirror does not forward the guest's own flushes), all before QEMU sends VMSTATE_SEND. So each
 * disk's epoch closes at that FLUSH, on the disk's own connection ({@code EpochDisk#boundary}): with
 * speculative checkpoints the guest runs again before VMSTATE_SEND is read here, and the next epoch's
 * writes would race it (docs/speculation.md §3). In synchronous mode the two points coincide (measured
 * over 11,784 NBD requests: nothing arrives between VMSTATE_SEND and VMSTATE_LOADED).
 */
public interface DiskEpochs {
    /**
     * The initial state is committed and the primary's guest is still stopped (it resumes after
     * CHECKPOINT_READY): writes so far — the initial synchronisation — are the initial disk, later
     * ones belong to epoch 1.
     */
    void initialStateCommitted() throws IOException;

    /** VMSTATE_SEND of {@code epoch} was read (the disks closed the epoch at their FLUSH before it). */
    void epochClosed(long epoch) throws IOException;

    /**
     * Before the epoch's memory is committed: refuses (throws) if a disk may have missed a write
     * of this epoch, e.g. its connection ended; memory and disks then stay at the previous epoch.
     */
    void checkEpoch(long epoch) throws IOException;

    /** After the epoch's memory is committed, before VMSTATE_LOADED: applies its writes. */
    void commitEpoch(long epoch) throws IOException;

    /** The session ended (normally or not): writes of uncommitted epochs are dropped. */
    void sessionEnded();

    /** A VM without replicated disks. */
    DiskEpochs NONE = new DiskEpochs() {
        @Override
        public void initialStateCommitted() {
        }

        @Override
        public void epochClosed(long epoch) {
        }

        @Override
        public void checkEpoch(long epoch) {
        }

        @Override
        public void commitEpoch(long epoch) {
        }

        @Override
        public void sessionEnded() {
        }
    };
}

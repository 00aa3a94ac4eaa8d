package dev.doppel.remus.colo;

import java.io.IOException;

/**
 * The protected VM's replicated disks as the COLO session sees them: the session tells them where
 * epochs begin and end, so that the backup's disks always match its committed memory.
 *
 * <p>Where the epoch boundaries lie (measured over 11,784 NBD requests with a COLO primary, see
 * FINDINGS): every disk write of epoch N reaches the backup between VMSTATE_LOADED(N-1) and
 * VMSTATE_SEND(N) — the checkpoint's VM stop drains the guest's in-flight I/O before QEMU sends
 * VMSTATE_SEND, and the guest runs again only after VMSTATE_LOADED. So an epoch is closed when
 * VMSTATE_SEND is read, not at the FLUSH that the VM stop also produces, and nothing arrives
 * between VMSTATE_SEND and VMSTATE_LOADED.
 */
public interface DiskEpochs {
    /**
     * The initial state is committed and the primary's guest is still stopped (it resumes after
     * CHECKPOINT_READY): writes so far — the initial synchronisation — are the initial disk, later
     * ones belong to epoch 1.
     */
    void initialStateCommitted() throws IOException;

    /** VMSTATE_SEND of {@code epoch} was read: the epoch's writes are complete. */
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

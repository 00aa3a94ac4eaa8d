package dev.doppel.remus.primary;

/** Where a protected VM stands. */
public enum ProtectionState {
    /** Initial full synchronisation to the backup is running. */
    SYNCING,
    /** COLO checkpoints every interval; the backup can take over. */
    PROTECTED,
    /** The backup was lost (or never reached); the guest runs on alone. Doppel keeps trying to protect it again. */
    UNPROTECTED,
    /** Protection was stopped by the operator. */
    STOPPED,
    /** The primary QEMU is gone; the backup was told to take over. */
    PRIMARY_LOST,
    /** This primary could not prove it still owns the VM (lease lost, ownership record changed): its QEMU was killed. */
    FENCED
}

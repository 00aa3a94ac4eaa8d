package dev.doppel.remus.backup;

import java.io.IOException;

/** A backup store operation failed; names the VM, the epoch and the step. */
public final class BackupStoreException extends IOException {
    public BackupStoreException(String vm, long epoch, String step, Throwable cause) {
        super("backup store of VM '" + vm + "', epoch " + epoch + ": " + step
                + (cause == null ? "" : ": " + cause.getMessage()), cause);
    }

    public BackupStoreException(String vm, long epoch, String step) {
        this(vm, epoch, step, null);
    }
}

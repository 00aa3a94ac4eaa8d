package dev.doppel.remus.primary;

/** Protection of a VM could not be started or was lost; names the VM, the epoch and the cause. */
public class ProtectionException extends RuntimeException {
    public ProtectionException(String vm, long epoch, String message) {
        super("VM '" + vm + "' (epoch " + epoch + "): " + message);
    }

    public ProtectionException(String vm, long epoch, String message, Throwable cause) {
        super("VM '" + vm + "' (epoch " + epoch + "): " + message + (cause.getMessage() == null ? "" : ": " + cause.getMessage()), cause);
    }
}

package dev.doppel.vm;

/** A QEMU process could not be started or did not come up (names the VM and the cause). */
public class VmStartException extends RuntimeException {
    public VmStartException(String message) {
        super(message);
    }

    public VmStartException(String message, Throwable cause) {
        super(message, cause);
    }
}

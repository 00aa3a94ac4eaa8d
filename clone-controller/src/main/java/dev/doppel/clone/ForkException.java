package dev.doppel.clone;

/** A fork, reshare or clone operation failed; the message names the VM, the step and the cause. */
public class ForkException extends RuntimeException {
    public ForkException(String vm, String message) {
        super("VM '" + vm + "': " + message);
    }

    public ForkException(String vm, String message, Throwable cause) {
        super("VM '" + vm + "': " + message + (cause.getMessage() == null ? "" : ": " + cause.getMessage()), cause);
    }
}

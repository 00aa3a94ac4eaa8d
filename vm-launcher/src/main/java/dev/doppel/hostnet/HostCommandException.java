package dev.doppel.hostnet;

/** A host command (ip, tc, qemu-img …) failed; the message holds the command and its stderr. */
public class HostCommandException extends RuntimeException {
    public HostCommandException(String message) {
        super(message);
    }

    public HostCommandException(String message, Throwable cause) {
        super(message, cause);
    }
}

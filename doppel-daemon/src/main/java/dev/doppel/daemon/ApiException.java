package dev.doppel.daemon;

/** A request the daemon refuses: the HTTP status, the VM concerned (or null) and the reason. */
public final class ApiException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int status;
    private final String vm;

    public ApiException(int status, String vm, String message) {
        super(message);
        this.status = status;
        this.vm = vm;
    }

    public int status() {
        return status;
    }

    public String vm() {
        return vm;
    }
}

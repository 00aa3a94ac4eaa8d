package dev.doppel.remus.colo;

import java.io.IOException;

/** A COLO session with a primary failed; names the VM, the epoch being received and the step. */
public final class ColoSessionException extends IOException {
    private final String vm;
    private final long epoch;
    private final String step;

    public ColoSessionException(String vm, long epoch, String step, Throwable cause) {
        super("VM '" + vm + "', epoch " + epoch + ", " + step + ": " + (cause == null ? "" : cause.getMessage()), cause);
        this.vm = vm;
        this.epoch = epoch;
        this.step = step;
    }

    public String vm() {
        return vm;
    }

    /** The epoch that was being received (not committed). */
    public long epoch() {
        return epoch;
    }

    public String step() {
        return step;
    }
}

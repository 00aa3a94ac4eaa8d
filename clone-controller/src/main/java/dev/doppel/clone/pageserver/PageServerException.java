package dev.doppel.clone.pageserver;

/** A clone's page-server connection failed: names the clone, the step, and the cause. */
public final class PageServerException extends RuntimeException {
    private final String clone;
    private final String step;

    public PageServerException(String clone, String step, String detail, Throwable cause) {
        super("clone " + clone + ": page server " + step + " failed: " + detail, cause);
        this.clone = clone;
        this.step = step;
    }

    public String clone() {
        return clone;
    }

    public String step() {
        return step;
    }
}

package dev.doppel.clone.identity;

/** A step of giving a clone its own identity failed; names the parent, the clone, the step and the cause. */
public final class CloneIdentityException extends RuntimeException {
    private final String clone;
    private final String step;

    public CloneIdentityException(String parent, String clone, String step, String cause) {
        super("VM '" + parent + "', clone '" + clone + "': identity step " + step + " failed: " + cause);
        this.clone = clone;
        this.step = step;
    }

    public CloneIdentityException(String parent, String clone, String step, Throwable cause) {
        super("VM '" + parent + "', clone '" + clone + "': identity step " + step + " failed: " + cause.getMessage(), cause);
        this.clone = clone;
        this.step = step;
    }

    public String clone() {
        return clone;
    }

    /** {@code clock}, {@code rng}, {@code hostname}, {@code network}, {@code ssh-host-keys} or {@code agent}. */
    public String step() {
        return step;
    }
}

package dev.doppel.remus.fencing;

/** A fencing step failed or was refused; names the VM and the cause. */
public class FencingException extends Exception {
    private final String vm;

    public FencingException(String vm, String message) {
        this(vm, message, null);
    }

    public FencingException(String vm, String message, Throwable cause) {
        super("VM '" + vm + "': " + message, cause);
        this.vm = vm;
    }

    public String vm() {
        return vm;
    }

    /** This holder no longer owns the VM: someone with a newer token does. It must not act on the VM. */
    public static final class Fenced extends FencingException {
        public Fenced(String vm, String message) {
            super(vm, message);
        }
    }
}

package dev.doppel.vm;

/** The accelerator chosen for this host and the one-line reason, for logs and benchmark output. */
public record AcceleratorChoice(Accelerator accelerator, String reason) {
    @Override
    public String toString() {
        return accelerator.qemuName() + " (" + reason + ")";
    }
}

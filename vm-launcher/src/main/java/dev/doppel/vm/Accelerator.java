package dev.doppel.vm;

/** The CPU accelerator a QEMU process runs its guest with. */
public enum Accelerator {
    KVM("kvm"),
    TCG("tcg");

    private final String qemuName;

    Accelerator(String qemuName) {
        this.qemuName = qemuName;
    }

    /** The name QEMU's {@code -accel} option takes. */
    public String qemuName() {
        return qemuName;
    }

    /** Parses {@code kvm}, {@code tcg} (any case); {@code auto} and null yield null. */
    public static Accelerator parseOrAuto(String text) {
        if (text == null || text.isBlank() || text.equalsIgnoreCase("auto")) {
            return null;
        }
        for (Accelerator a : values()) {
            if (a.qemuName.equalsIgnoreCase(text.trim())) {
                return a;
            }
        }
        throw new IllegalArgumentException("unknown accelerator '" + text + "' (expected kvm, tcg or auto)");
    }
}

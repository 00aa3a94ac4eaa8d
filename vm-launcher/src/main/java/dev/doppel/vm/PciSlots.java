package dev.doppel.vm;

/**
 * Fixed PCI slots on the i440fx bus. Clones and restored VMs must have the identical device model,
 * so nothing is left to QEMU's automatic slot assignment. Slots 0 and 1 belong to the host bridge
 * and the PIIX3 function block.
 */
public final class PciSlots {
    public static final int AGENT_SERIAL = 0x08;
    public static final int BALLOON = 0x09;
    public static final int RNG = 0x0a;
    /** NIC i sits in slot FIRST_NIC + i. */
    public static final int FIRST_NIC = 0x10;
    /** Disk i sits in slot FIRST_DISK + i. */
    public static final int FIRST_DISK = 0x18;

    private PciSlots() {
    }

    static void check(int slot) {
        if (slot < 2 || slot > 0x1f) {
            throw new IllegalArgumentException("PCI slot must be 0x02..0x1f, not " + hex(slot));
        }
    }

    static String hex(int slot) {
        return "0x" + Integer.toHexString(slot);
    }
}

package dev.doppel.remus.stream;

/**
 * One RAM block as the MEM_SIZE record lists it.
 *
 * @param name         QEMU's block idstr, e.g. {@code pc.ram}, {@code /rom@etc/acpi/tables}
 * @param usedLength   bytes in use (page multiple)
 * @param guestAddress the block's {@code mr->addr}; sent only with x-ignore-shared, else -1
 */
public record RamBlock(String name, long usedLength, long guestAddress) {
    public static final long NO_ADDRESS = -1;

    public boolean hasAddress() {
        return guestAddress != NO_ADDRESS;
    }

    public long pages(int pageSize) {
        return usedLength / pageSize;
    }
}

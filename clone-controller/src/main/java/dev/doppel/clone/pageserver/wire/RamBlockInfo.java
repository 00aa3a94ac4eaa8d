package dev.doppel.clone.pageserver.wire;

/**
 * One RAM block as the MEM_SIZE record lists it (name and used length); the destination refuses a
 * stream whose list differs from its own by a single block or byte.
 */
public record RamBlockInfo(String name, long usedLength) {
    public RamBlockInfo {
        if (name.isEmpty() || name.length() > 255) {
            throw new IllegalArgumentException("RAM block name must have 1-255 characters: '" + name + "'");
        }
        if (usedLength <= 0 || usedLength % WireFormat.PAGE_SIZE != 0) {
            throw new IllegalArgumentException("RAM block " + name + ": length " + usedLength + " is not a page multiple");
        }
    }

    public int pages() {
        return (int) (usedLength / WireFormat.PAGE_SIZE);
    }
}

package dev.doppel.remus.stream;

/**
 * Byte values of QEMU's migration stream (migration/savevm.c, migration/ram.c, QEMU 10.0). Kept in
 * one place so that the reader and the writer can never disagree.
 */
public final class StreamTags {
    private StreamTags() {
    }

    /** {@code QEMU_VM_FILE_MAGIC}: "QEVM". */
    public static final int FILE_MAGIC = 0x5145564d;
    /** {@code QEMU_VM_FILE_VERSION}; version 2 streams are pre-2012 and not accepted. */
    public static final int FILE_VERSION = 3;

    public static final int EOF = 0x00;
    public static final int SECTION_START = 0x01;
    public static final int SECTION_PART = 0x02;
    public static final int SECTION_END = 0x03;
    public static final int SECTION_FULL = 0x04;
    public static final int SUBSECTION = 0x05;
    public static final int VMDESCRIPTION = 0x06;
    public static final int CONFIGURATION = 0x07;
    public static final int COMMAND = 0x08;
    public static final int SECTION_FOOTER = 0x7e;

    /** idstr of the RAM section ({@code ram}, instance 0, version 4 in QEMU 10.0). */
    public static final String RAM_IDSTR = "ram";

    /** Limits a receiver sets for itself: QEMU never sends more; a larger value means corruption. */
    public static final int MAX_VMDESC_BYTES = 16 << 20;
    public static final int MAX_COMMAND_BYTES = 64 << 10;
    public static final int MAX_DEVICE_SECTION_BYTES = 16 << 20;

    public static String typeName(int type) {
        return switch (type) {
            case EOF -> "EOF";
            case SECTION_START -> "SECTION_START";
            case SECTION_PART -> "SECTION_PART";
            case SECTION_END -> "SECTION_END";
            case SECTION_FULL -> "SECTION_FULL";
            case SUBSECTION -> "SUBSECTION";
            case VMDESCRIPTION -> "VMDESCRIPTION";
            case CONFIGURATION -> "CONFIGURATION";
            case COMMAND -> "COMMAND";
            case SECTION_FOOTER -> "SECTION_FOOTER";
            default -> String.format("unknown type 0x%02x", type);
        };
    }
}

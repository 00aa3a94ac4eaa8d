package dev.doppel.clone.pageserver.wire;

/**
 * The numbers of QEMU 10.0's migration wire format that the page server speaks, in one place.
 * Sources: migration/savevm.c ({@code QEMU_VM_*} record types, {@code enum qemu_vm_cmd}),
 * migration/migration.c ({@code enum mig_rp_message_type}), migration/ram.c
 * ({@code RAM_SAVE_FLAG_*}, {@code RAMBLOCK_RECV_BITMAP_ENDING}). All integers are big-endian.
 *
 * <p>The Remus side has its own general stream reader (remus-controller, {@code dev.doppel.remus.stream});
 * the page server needs only the source half of postcopy and a descriptor cutter, and clone-controller
 * may not depend on remus-controller, hence these few constants here.
 */
public final class WireFormat {
    private WireFormat() {
    }

    public static final int FILE_MAGIC = 0x5145564d;      // "QEVM"
    public static final int FILE_VERSION = 3;

    // Top-level record types (savevm.c).
    public static final int VM_EOF = 0x00;
    public static final int VM_SECTION_START = 0x01;
    public static final int VM_SECTION_PART = 0x02;
    public static final int VM_SECTION_END = 0x03;
    public static final int VM_SECTION_FULL = 0x04;
    public static final int VM_SUBSECTION = 0x05;
    public static final int VM_VMDESCRIPTION = 0x06;
    public static final int VM_CONFIGURATION = 0x07;
    public static final int VM_COMMAND = 0x08;
    public static final int VM_SECTION_FOOTER = 0x7e;

    // enum qemu_vm_cmd (savevm.c, QEMU 10.0): the enum order, MIG_CMD_INVALID = 0.
    public static final int CMD_OPEN_RETURN_PATH = 1;
    public static final int CMD_PING = 2;
    public static final int CMD_POSTCOPY_ADVISE = 3;
    public static final int CMD_POSTCOPY_LISTEN = 4;
    public static final int CMD_POSTCOPY_RUN = 5;
    public static final int CMD_POSTCOPY_RAM_DISCARD = 6;
    public static final int CMD_PACKAGED = 7;
    public static final int CMD_ENABLE_COLO = 8;
    public static final int CMD_POSTCOPY_RESUME = 9;
    public static final int CMD_RECV_BITMAP = 10;
    public static final int CMD_SWITCHOVER_START = 11;

    // enum mig_rp_message_type (migration.c): return-path messages, be16 type + be16 length + data.
    public static final int RP_INVALID = 0;
    public static final int RP_SHUT = 1;
    public static final int RP_PONG = 2;
    public static final int RP_REQ_PAGES_ID = 3;
    public static final int RP_REQ_PAGES = 4;
    public static final int RP_RECV_BITMAP = 5;
    public static final int RP_RESUME_ACK = 6;
    public static final int RP_SWITCHOVER_ACK = 7;

    // RAM_SAVE_FLAG_* (ram.c): low bits of the be64 "offset | flags" word of every RAM record.
    public static final int RAM_ZERO = 0x02;
    public static final int RAM_MEM_SIZE = 0x04;
    public static final int RAM_PAGE = 0x08;
    public static final int RAM_EOS = 0x10;
    public static final int RAM_CONTINUE = 0x20;
    public static final int RAM_XBZRLE = 0x40;
    public static final int RAM_COMPRESS_PAGE = 0x100;
    public static final int RAM_MULTIFD_FLUSH = 0x200;

    /** ram.c: written after each block's received bitmap on the return path. */
    public static final long RECV_BITMAP_ENDING = 0x0123456789abcdefL;
    /** migration.h {@code MIGRATION_RESUME_ACK_VALUE}. */
    public static final int RESUME_ACK_VALUE = 1;
    /** postcopy-ram.c {@code postcopy_ram_discard_version}. */
    public static final int DISCARD_VERSION = 0;
    /** savevm.c {@code MAX_VM_CMD_PACKAGED_SIZE}. */
    public static final int MAX_PACKAGED_BYTES = 1 << 24;

    /** The RAM section's idstr and version (ram.c {@code register_savevm_live("ram", 0, 4, ...)}). */
    public static final String RAM_IDSTR = "ram";
    public static final int RAM_VERSION = 4;

    public static final int PAGE_SIZE = 4096;
}

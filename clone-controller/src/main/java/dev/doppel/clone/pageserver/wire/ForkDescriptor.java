package dev.doppel.clone.pageserver.wire;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A fork descriptor cut into what a postcopy source sends. The descriptor is the file the local fork
 * path writes: a device-state-only migration of the stopped parent with {@code x-ignore-shared}
 * (~0.3 MB). Its layout (savevm.c {@code qemu_savevm_state_setup} … {@code _complete_precopy}):
 * header, configuration, the RAM section's START (block list with guest addresses) and PART/END
 * sections carrying the pages of the non-shared blocks (the ROMs: BIOS, option ROMs, ACPI tables),
 * optional commands, then the device sections (FULL), EOF and the vmdesc JSON.
 *
 * <p>What the page server takes from it: the machine type, the RAM section id (the device sections
 * keep their ids from the parent's stream, so ours must not collide with them), the block list, the
 * ROM blocks' contents (a postcopy destination discards all RAM at ADVISE and asks for ROM pages too),
 * and the device sections up to but without the EOF byte — the part that goes into the PACKAGED
 * command. The capabilities subsection and the guest addresses are dropped: the destination has no
 * x-ignore-shared.
 */
public final class ForkDescriptor {
    private final String machineType;
    private final int ramSectionId;
    private final List<RamBlockInfo> blocks;
    /** Contents of the blocks the descriptor carries (all but the shared RAM file's block). */
    private final Map<String, byte[]> carriedBlocks;
    private final byte[] deviceSections;

    private ForkDescriptor(String machineType, int ramSectionId, List<RamBlockInfo> blocks, Map<String, byte[]> carriedBlocks,
                           byte[] deviceSections) {
        this.machineType = machineType;
        this.ramSectionId = ramSectionId;
        this.blocks = List.copyOf(blocks);
        this.carriedBlocks = carriedBlocks;
        this.deviceSections = deviceSections;
    }

    public static ForkDescriptor read(Path file) throws IOException {
        return parse(Files.readAllBytes(file));
    }

    /** @throws DescriptorFormatException naming the offset and what was expected there */
    public static ForkDescriptor parse(byte[] bytes) throws DescriptorFormatException {
        return new Cutter(bytes).cut();
    }

    public String machineType() {
        return machineType;
    }

    public int ramSectionId() {
        return ramSectionId;
    }

    public List<RamBlockInfo> blocks() {
        return blocks;
    }

    /** The contents of a block the descriptor carries, or null for a block that lives in the RAM file. */
    public byte[] carriedBlock(String name) {
        return carriedBlocks.get(name);
    }

    /** Device sections (FULL records with footers), without the trailing EOF. */
    public byte[] deviceSections() {
        return deviceSections.clone();
    }

    public int deviceSectionBytes() {
        return deviceSections.length;
    }

    /** Walks the descriptor once; every read is bounds-checked and names what it expected. */
    private static final class Cutter {
        private final ByteBuffer in;
        private String machine;
        private int ramId = -1;
        private final List<RamBlockInfo> blocks = new ArrayList<>();
        private final Map<String, byte[]> contents = new LinkedHashMap<>();
        private boolean ignoreShared;
        private String lastBlock;

        Cutter(byte[] bytes) {
            this.in = ByteBuffer.wrap(bytes);
        }

        ForkDescriptor cut() throws DescriptorFormatException {
            if (be32("magic") != WireFormat.FILE_MAGIC) {
                throw bad(0, "magic QEVM");
            }
            if (be32("version") != WireFormat.FILE_VERSION) {
                throw bad(4, "stream version 3");
            }
            while (true) {
                int at = in.position();
                int type = u8("record type");
                switch (type) {
                    case WireFormat.VM_CONFIGURATION -> configuration();
                    case WireFormat.VM_COMMAND -> {
                        be16("command");
                        skip(be16("command length"), "command data");
                    }
                    case WireFormat.VM_SECTION_START, WireFormat.VM_SECTION_FULL -> {
                        int id = be32("section id");
                        String idstr = shortString("section idstr");
                        be32("instance id");
                        be32("version id");
                        if (!idstr.equals(WireFormat.RAM_IDSTR)) {
                            // The first device section: everything from here to the EOF is device state.
                            return finish(at);
                        }
                        ramId = id;
                        ramRecords();
                        footer(id);
                    }
                    case WireFormat.VM_SECTION_PART, WireFormat.VM_SECTION_END -> {
                        int id = be32("section id");
                        if (id != ramId) {
                            throw bad(at, "a RAM section PART/END (only RAM is iterative in a fork descriptor), not section " + id);
                        }
                        ramRecords();
                        footer(id);
                    }
                    default -> throw bad(at, "a configuration, command or section record, not type 0x" + Integer.toHexString(type));
                }
            }
        }

        private ForkDescriptor finish(int deviceStart) throws DescriptorFormatException {
            if (machine == null || ramId < 0 || blocks.isEmpty()) {
                throw bad(deviceStart, "configuration and RAM block list before the device sections");
            }
            int eof = eofPosition();
            if (eof < deviceStart) {
                throw bad(deviceStart, "an EOF record after the device sections");
            }
            byte[] devices = Arrays.copyOfRange(in.array(), deviceStart, eof);
            return new ForkDescriptor(machine, ramId, blocks, contents, devices);
        }

        /**
         * Where the EOF byte is: right before the vmdesc record ({@code 0x06}, be32 length, JSON to
         * the end of the file), or the last byte when QEMU suppressed the vmdesc.
         */
        private int eofPosition() {
            byte[] b = in.array();
            for (int p = b.length - 6; p > 0; p--) {
                if (b[p] == WireFormat.VM_VMDESCRIPTION && b[p - 1] == WireFormat.VM_EOF
                        && ByteBuffer.wrap(b, p + 1, 4).getInt() == b.length - p - 5 && b[p + 5] == '{') {
                    return p - 1;
                }
            }
            return b[b.length - 1] == WireFormat.VM_EOF ? b.length - 1 : -1;
        }

        private void configuration() throws DescriptorFormatException {
            int len = be32("machine type length");
            if (len <= 0 || len > 256) {
                throw bad(in.position() - 4, "a machine type length of 1-256");
            }
            machine = new String(bytes(len, "machine type"), StandardCharsets.US_ASCII);
            while (in.hasRemaining() && in.get(in.position()) == WireFormat.VM_SUBSECTION) {
                u8("subsection marker");
                String name = shortString("subsection name");
                be32("subsection version");
                switch (name) {
                    case "configuration/capabilities" -> {
                        int n = be32("capability count");
                        for (int i = 0; i < n; i++) {
                            if (shortString("capability").equals("x-ignore-shared")) {
                                ignoreShared = true;
                            }
                        }
                    }
                    case "configuration/target-page-bits" -> {
                        if (be32("target page bits") != 12) {
                            throw bad(in.position() - 4, "4 KiB target pages");
                        }
                    }
                    case "configuration/uuid" -> skip(16, "uuid");
                    default -> throw bad(in.position(), "a known configuration subsection, not " + name);
                }
            }
        }

        /** RAM records up to EOS (ram.c {@code ram_load_precopy}); pages go into the carried blocks. */
        private void ramRecords() throws DescriptorFormatException {
            while (true) {
                int at = in.position();
                long word = be64("RAM record");
                int flags = (int) (word & (WireFormat.PAGE_SIZE - 1));
                long addr = word & ~(long) (WireFormat.PAGE_SIZE - 1);
                switch (flags & ~WireFormat.RAM_CONTINUE) {
                    case WireFormat.RAM_EOS -> {
                        return;
                    }
                    case WireFormat.RAM_MEM_SIZE -> blockList(addr);
                    case WireFormat.RAM_ZERO -> {
                        byte[] block = block(at, flags);
                        int fill = u8("fill byte");
                        checkPage(at, block, addr);
                        Arrays.fill(block, (int) addr, (int) addr + WireFormat.PAGE_SIZE, (byte) fill);
                    }
                    case WireFormat.RAM_PAGE -> {
                        byte[] block = block(at, flags);
                        checkPage(at, block, addr);
                        need(WireFormat.PAGE_SIZE, "page data");
                        in.get(block, (int) addr, WireFormat.PAGE_SIZE);
                    }
                    case WireFormat.RAM_MULTIFD_FLUSH -> { }
                    default -> throw bad(at, "a plain RAM record (turn xbzrle, compression and multifd off), flags 0x"
                            + Integer.toHexString(flags));
                }
            }
        }

        private void blockList(long total) throws DescriptorFormatException {
            long sum = 0;
            while (sum < total) {
                String name = shortString("RAM block name");
                long length = be64("RAM block length");
                if (ignoreShared) {
                    be64("RAM block guest address");
                }
                blocks.add(new RamBlockInfo(name, length));
                sum += length;
            }
            if (sum != total) {
                throw bad(in.position(), "block lengths adding up to " + total + ", not " + sum);
            }
        }

        /** The block a record refers to; a block that appears here is carried (its pages are in the file). */
        private byte[] block(int at, int flags) throws DescriptorFormatException {
            if ((flags & WireFormat.RAM_CONTINUE) == 0) {
                lastBlock = shortString("RAM block name");
            }
            if (lastBlock == null) {
                throw bad(at, "a block name before the first CONTINUE record");
            }
            String name = lastBlock;
            RamBlockInfo info = blocks.stream().filter(b -> b.name().equals(name)).findFirst()
                    .orElseThrow(() -> bad(at, "a block of the MEM_SIZE list, not '" + name + "'"));
            if (info.usedLength() > Integer.MAX_VALUE - WireFormat.PAGE_SIZE) {
                throw bad(at, "a carried block under 2 GiB, not '" + name + "' (" + info.usedLength() + " bytes)");
            }
            return contents.computeIfAbsent(name, n -> new byte[(int) info.usedLength()]);
        }

        private void checkPage(int at, byte[] block, long addr) throws DescriptorFormatException {
            if (addr + WireFormat.PAGE_SIZE > block.length) {
                throw bad(at, "a page inside its block, not offset 0x" + Long.toHexString(addr));
            }
        }

        private void footer(int id) throws DescriptorFormatException {
            int at = in.position();
            if (u8("footer") != WireFormat.VM_SECTION_FOOTER || be32("footer id") != id) {
                throw bad(at, "the footer of section " + id);
            }
        }

        private int u8(String what) throws DescriptorFormatException {
            need(1, what);
            return in.get() & 0xff;
        }

        private int be16(String what) throws DescriptorFormatException {
            need(2, what);
            return in.getShort() & 0xffff;
        }

        private int be32(String what) throws DescriptorFormatException {
            need(4, what);
            return in.getInt();
        }

        private long be64(String what) throws DescriptorFormatException {
            need(8, what);
            return in.getLong();
        }

        private byte[] bytes(int n, String what) throws DescriptorFormatException {
            need(n, what);
            byte[] b = new byte[n];
            in.get(b);
            return b;
        }

        private void skip(int n, String what) throws DescriptorFormatException {
            need(n, what);
            in.position(in.position() + n);
        }

        private String shortString(String what) throws DescriptorFormatException {
            int len = u8(what + " length");
            return new String(bytes(len, what), StandardCharsets.US_ASCII);
        }

        private void need(int n, String what) throws DescriptorFormatException {
            if (n < 0 || in.remaining() < n) {
                throw bad(in.position(), what + " (" + n + " bytes; the file is truncated)");
            }
        }

        private DescriptorFormatException bad(int at, String expected) {
            return new DescriptorFormatException("fork descriptor, offset " + at + ": expected " + expected);
        }
    }
}

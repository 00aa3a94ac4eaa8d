package dev.doppel.remus.stream;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads QEMU's migration stream record by record (migration/savevm.c {@code qemu_loadvm_state}).
 * It knows the framing only: header, configuration, commands, sections with footers, EOF, vmdesc.
 * RAM section data goes to the {@link RamSectionParser} and a {@link RamRecordSink}; every other
 * section is returned as opaque bytes.
 *
 * <p>Device sections carry no length: QEMU writes each field as its vmstate describes, and only a
 * loader that interprets every vmstate knows where a section ends. This reader does not interpret
 * them. It delimits a section by the first footer ({@code 0x7e}, be32 section id) that is followed
 * by something only a section boundary can be followed by: a START/FULL header with a printable
 * idstr, a PART/END of a known section, a known command, or EOF followed by the vmdesc or by the end
 * of the input. A false match would need that whole pattern inside device data; the RAM section,
 * where arbitrary guest bytes live, is parsed exactly and never scanned.
 *
 * <p>Not thread-safe; one reader per connection.
 */
public final class MigrationStreamReader {
    private final StreamInput in;
    private final RamSectionParser ram;
    private RamRecordSink ramSink = RamRecordSink.IGNORE;
    private final Map<Integer, SectionHeader> sections = new HashMap<>();
    private boolean headerRead;

    private record SectionHeader(String idstr, int instanceId, int version) {
    }

    public MigrationStreamReader(StreamInput in) {
        this(in, new RamSectionParser(4096));
    }

    public MigrationStreamReader(StreamInput in, RamSectionParser ram) {
        this.in = in;
        this.ram = ram;
    }

    /**
     * A reader for a device-state blob (a COLO checkpoint's VMSTATE_SIZE payload): FULL sections
     * and EOF, no file header.
     */
    public static MigrationStreamReader headless(StreamInput in, RamSectionParser ram) {
        MigrationStreamReader r = new MigrationStreamReader(in, ram);
        r.headerRead = true;
        return r;
    }

    public StreamInput input() {
        return in;
    }

    public RamSectionParser ram() {
        return ram;
    }

    /** Where the pages of the next RAM sections go (e.g. a new staging area per checkpoint). */
    public void setRamSink(RamRecordSink sink) {
        this.ramSink = sink;
    }

    /** Reads and checks the file header: magic {@code QEVM}, version 3. */
    public void readHeader() throws IOException {
        long at = in.offset();
        int magic = in.be32("stream magic");
        if (magic != StreamTags.FILE_MAGIC) {
            throw new StreamFormatException(at, "magic 0x5145564d (\"QEVM\")", String.format("0x%08x", magic));
        }
        int version = in.be32("stream version");
        if (version != StreamTags.FILE_VERSION) {
            throw new StreamFormatException(at + 4, "stream version 3", Integer.toString(version));
        }
        headerRead = true;
    }

    /**
     * The next record. Returns {@link StreamItem.EndOfState} for EOF; the caller decides whether a
     * vmdesc may follow (it does after a full precopy state, not after a COLO checkpoint's RAM part).
     *
     * @throws StreamFormatException on anything QEMU would not send, including a truncated record
     */
    public StreamItem next() throws IOException {
        if (!headerRead) {
            throw new IllegalStateException("readHeader() first");
        }
        long at = in.offset();
        int type = in.u8("record type");
        return switch (type) {
            case StreamTags.CONFIGURATION -> readConfiguration(at);
            case StreamTags.COMMAND -> readCommand(at);
            case StreamTags.SECTION_START, StreamTags.SECTION_FULL -> readSection(at, type, true);
            case StreamTags.SECTION_PART, StreamTags.SECTION_END -> readSection(at, type, false);
            case StreamTags.EOF -> new StreamItem.EndOfState();
            case StreamTags.VMDESCRIPTION -> readVmDescription(at);
            default -> throw new StreamFormatException(at, "a record type (0x00-0x08)", String.format("0x%02x", type));
        };
    }

    private StreamItem readConfiguration(long at) throws IOException {
        RecordingInput r = new RecordingInput(StreamTags.CONFIGURATION);
        int len = r.be32("machine type length");
        if (len <= 0 || len > 256) {
            throw new StreamFormatException(at + 1, "a machine type length of 1-256", Integer.toString(len));
        }
        String machine = new String(r.bytes(len, "machine type"), StandardCharsets.US_ASCII);
        List<String> caps = new ArrayList<>();
        int pageBits = 0;
        byte[] uuid = null;
        while (in.peekByte() == StreamTags.SUBSECTION) {
            long subAt = in.offset();
            r.u8("subsection marker");
            String name = r.shortString("subsection name");
            int version = r.be32("subsection version");
            if (version != 1) {
                throw new StreamFormatException(subAt, "version 1 of " + name, Integer.toString(version));
            }
            switch (name) {
                case "configuration/capabilities" -> {
                    int n = r.be32("capability count");
                    if (n < 0 || n > 64) {
                        throw new StreamFormatException(subAt, "a capability count of 0-64", Integer.toString(n));
                    }
                    for (int i = 0; i < n; i++) {
                        caps.add(r.shortString("capability name"));
                    }
                }
                case "configuration/target-page-bits" -> pageBits = r.be32("target page bits");
                case "configuration/uuid" -> uuid = r.bytes(16, "uuid");
                default -> throw new StreamFormatException(subAt, "a known configuration subsection", "'" + name + "'");
            }
        }
        if (pageBits != 0 && (1 << pageBits) != ram.pageSize()) {
            throw new StreamFormatException(at, "target page size " + ram.pageSize(), "page bits " + pageBits);
        }
        ram.setIgnoreShared(caps.contains("x-ignore-shared"));
        return new StreamItem.Configuration(machine, List.copyOf(caps), pageBits, uuid, r.raw());
    }

    private StreamItem readCommand(long at) throws IOException {
        int code = in.be16("command number");
        int len = in.be16("command length");
        if (len > StreamTags.MAX_COMMAND_BYTES) {
            throw new StreamFormatException(at, "a command length of at most " + StreamTags.MAX_COMMAND_BYTES, Integer.toString(len));
        }
        MigrationCommand cmd = MigrationCommand.of(code);
        if (cmd == null) {
            throw new StreamFormatException(at, "a command number 1-11", Integer.toString(code));
        }
        if (cmd.length() >= 0 && cmd.length() != len) {
            // QEMU's loadvm_process_command refuses the same ("received with bad length").
            throw new StreamFormatException(at, "command " + cmd + " with " + cmd.length() + " bytes of data",
                    "command length " + len);
        }
        byte[] data = in.bytes(len, "data of command " + cmd);
        return new StreamItem.Command(code, cmd, data);
    }

    private StreamItem readSection(long at, int type, boolean withHeader) throws IOException {
        RecordingInput r = new RecordingInput(type);
        int id = r.be32("section id");
        SectionHeader h;
        if (withHeader) {
            String idstr = r.shortString("section idstr");
            int instance = r.be32("instance id");
            int version = r.be32("version id");
            h = new SectionHeader(idstr, instance, version);
            sections.put(id, h);
        } else {
            h = sections.get(id);
            if (h == null) {
                throw new StreamFormatException(at, "the id of a section started earlier " + sections.keySet(),
                        StreamTags.typeName(type) + " of section " + id);
            }
        }
        if (h.idstr().equals(StreamTags.RAM_IDSTR)) {
            ram.parse(in, ramSink);
            readFooter(id);
            return new StreamItem.RamSection(type, id, h.idstr(), h.instanceId(), h.version());
        }
        ByteArrayOutputStream raw = r.buffer();
        scanOpaqueData(at, id, raw);
        return new StreamItem.DeviceSection(type, id, h.idstr(), h.instanceId(), h.version(), raw.toByteArray());
    }

    private void readFooter(int id) throws IOException {
        long at = in.offset();
        int marker = in.u8("section footer");
        if (marker != StreamTags.SECTION_FOOTER) {
            throw new StreamFormatException(at, "section footer 0x7e", String.format("0x%02x", marker));
        }
        int footerId = in.be32("footer section id");
        if (footerId != id) {
            throw new StreamFormatException(at, "footer of section " + id, "footer of section " + footerId);
        }
    }

    /** Moves the data and footer of an opaque section into {@code raw} (see the class comment). */
    private void scanOpaqueData(long at, int id, ByteArrayOutputStream raw) throws IOException {
        byte b0 = (byte) (id >>> 24), b1 = (byte) (id >>> 16), b2 = (byte) (id >>> 8), b3 = (byte) id;
        for (int i = 0; ; i++) {
            if (i > StreamTags.MAX_DEVICE_SECTION_BYTES) {
                throw new StreamFormatException(at, "a device section of at most " + StreamTags.MAX_DEVICE_SECTION_BYTES
                        + " bytes", "no footer of section " + id + " within that");
            }
            int b = in.peekAt(i);
            if (b < 0) {
                throw new StreamFormatException(in.offset() + i, "the footer of section " + id + " (" + sectionName(id) + ")",
                        "end of stream (truncated)");
            }
            if (b == StreamTags.SECTION_FOOTER && in.peekAt(i + 4) >= 0
                    && (byte) in.peekAt(i + 1) == b0 && (byte) in.peekAt(i + 2) == b1
                    && (byte) in.peekAt(i + 3) == b2 && (byte) in.peekAt(i + 4) == b3
                    && boundaryAt(i + 5)) {
                in.transfer(i + 5, raw);
                return;
            }
        }
    }

    private String sectionName(int id) {
        SectionHeader h = sections.get(id);
        return h == null ? "?" : h.idstr();
    }

    /** Whether the bytes at {@code j} past the read position can start the record after a section. */
    private boolean boundaryAt(int j) throws IOException {
        int t = in.peekAt(j);
        switch (t) {
            case -1:
                return true;                       // end of a bounded device blob
            case StreamTags.EOF: {
                int after = in.peekAt(j + 1);
                return after == -1 || after == StreamTags.VMDESCRIPTION;
            }
            case StreamTags.SECTION_START:
            case StreamTags.SECTION_FULL: {
                int len = in.peekAt(j + 5);
                if (len <= 0 || in.peekAt(j + 5 + len + 8) < 0) {
                    return false;
                }
                for (int k = 0; k < len; k++) {
                    int c = in.peekAt(j + 6 + k);
                    if (c < 0x20 || c > 0x7e) {
                        return false;
                    }
                }
                return true;
            }
            case StreamTags.SECTION_PART:
            case StreamTags.SECTION_END: {
                if (in.peekAt(j + 4) < 0) {
                    return false;
                }
                int id = (in.peekAt(j + 1) << 24) | (in.peekAt(j + 2) << 16) | (in.peekAt(j + 3) << 8) | in.peekAt(j + 4);
                return sections.containsKey(id);
            }
            case StreamTags.COMMAND: {
                if (in.peekAt(j + 4) < 0) {
                    return false;
                }
                int code = (in.peekAt(j + 1) << 8) | in.peekAt(j + 2);
                int len = (in.peekAt(j + 3) << 8) | in.peekAt(j + 4);
                MigrationCommand c = MigrationCommand.of(code);
                return c != null && (c.length() < 0 || c.length() == len);
            }
            default:
                return false;
        }
    }

    private StreamItem readVmDescription(long at) throws IOException {
        int len = in.be32("vmdesc length");
        if (len < 0 || len > StreamTags.MAX_VMDESC_BYTES) {
            throw new StreamFormatException(at, "a vmdesc length of at most " + StreamTags.MAX_VMDESC_BYTES,
                    Integer.toUnsignedString(len));
        }
        byte[] json = in.bytes(len, "vmdesc JSON");
        return new StreamItem.VmDescription(new String(json, StandardCharsets.UTF_8));
    }

    /** Reads through {@link #in} while keeping a copy of every byte (for records kept verbatim). */
    private final class RecordingInput {
        private final ByteArrayOutputStream copy = new ByteArrayOutputStream(64);

        RecordingInput(int type) {
            copy.write(type);
        }

        int u8(String what) throws IOException {
            int v = in.u8(what);
            copy.write(v);
            return v;
        }

        int be32(String what) throws IOException {
            int v = in.be32(what);
            copy.write(v >>> 24);
            copy.write(v >>> 16);
            copy.write(v >>> 8);
            copy.write(v);
            return v;
        }

        byte[] bytes(int n, String what) throws IOException {
            byte[] b = in.bytes(n, what);
            copy.writeBytes(b);
            return b;
        }

        String shortString(String what) throws IOException {
            String s = in.shortString(what);
            copy.write(s.length());
            copy.writeBytes(s.getBytes(StandardCharsets.US_ASCII));
            return s;
        }

        byte[] raw() {
            return copy.toByteArray();
        }

        ByteArrayOutputStream buffer() {
            return copy;
        }
    }
}

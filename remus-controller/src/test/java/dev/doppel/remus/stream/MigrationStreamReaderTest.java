package dev.doppel.remus.stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.testing.RecordedStreams;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The reader on recorded QEMU 10.0.2 streams (see src/test/resources/streams/README.md). */
class MigrationStreamReaderTest {

    /** Everything a full read of a precopy stream yields, with the offset each record started at. */
    static final class Parsed {
        StreamItem.Configuration config;
        List<RamBlock> blocks;
        final Map<String, Integer> dataPages = new TreeMap<>();
        final Map<String, Integer> filledPages = new TreeMap<>();
        final List<StreamItem.DeviceSection> devices = new ArrayList<>();
        final List<StreamItem.Command> commands = new ArrayList<>();
        final List<Long> recordOffsets = new ArrayList<>();
        final Map<Long, StreamItem> itemsAt = new TreeMap<>();
        String vmdesc;
        int ramSections;
    }

    static Parsed parse(byte[] stream) throws IOException {
        Parsed p = new Parsed();
        StreamInput in = new StreamInput(new ByteArrayInputStream(stream));
        MigrationStreamReader r = new MigrationStreamReader(in);
        r.setRamSink(new RamRecordSink() {
            @Override
            public void blockList(List<RamBlock> blocks) {
                p.blocks = blocks;
            }

            @Override
            public void page(int block, long offset, byte[] data, int off) {
                p.dataPages.merge(p.blocks.get(block).name(), 1, Integer::sum);
            }

            @Override
            public void filledPage(int block, long offset, int fill) {
                p.filledPages.merge(p.blocks.get(block).name(), 1, Integer::sum);
            }
        });
        r.readHeader();
        while (true) {
            long at = in.offset();
            p.recordOffsets.add(at);
            StreamItem item = r.next();
            p.itemsAt.put(at, item);
            if (item instanceof StreamItem.Configuration c) {
                p.config = c;
            } else if (item instanceof StreamItem.DeviceSection d) {
                p.devices.add(d);
            } else if (item instanceof StreamItem.Command c) {
                p.commands.add(c);
            } else if (item instanceof StreamItem.RamSection) {
                p.ramSections++;
            } else if (item instanceof StreamItem.VmDescription v) {
                p.vmdesc = v.json();
                break;
            }
        }
        assertTrue(in.atEnd(), "nothing after the vmdesc");
        return p;
    }

    @Test
    void precopyWithIgnoreSharedYieldsBlocksWithAddressesPagesDevicesAndVmdesc() throws IOException {
        Parsed p = parse(RecordedStreams.load(RecordedStreams.PRECOPY));
        assertEquals("pc-i440fx-10.0", p.config.machineType());
        assertEquals(List.of("x-ignore-shared"), p.config.capabilities());
        List<String> names = p.blocks.stream().map(RamBlock::name).toList();
        assertEquals("pc.ram", names.get(0));
        assertTrue(names.containsAll(List.of("pc.bios", "pc.rom", "/rom@etc/acpi/tables", "/rom@etc/table-loader",
                "/rom@etc/acpi/rsdp")), names.toString());
        RamBlock ram = p.blocks.get(0);
        assertEquals(128L << 20, ram.usedLength());
        assertTrue(p.blocks.stream().allMatch(RamBlock::hasAddress), "x-ignore-shared sends every block's address");
        // The restore stream relies on this: a memory backend's region sits at 0.
        assertEquals(0, ram.guestAddress());
        assertEquals(300, p.dataPages.get("pc.ram"), "the trimmed recording keeps 300 data pages of pc.ram");
        assertTrue(p.dataPages.get("pc.bios") > 0);
        long ramPages = p.dataPages.get("pc.ram") + p.filledPages.getOrDefault("pc.ram", 0);
        assertTrue(ramPages > 300);
        assertTrue(p.devices.size() >= 10, "device sections: " + p.devices.size());
        List<String> devices = p.devices.stream().map(StreamItem.DeviceSection::idstr).toList();
        assertTrue(devices.containsAll(List.of("cpu", "apic", "timer")), devices.toString());
        assertTrue(p.devices.stream().allMatch(d -> d.type() == StreamTags.SECTION_FULL));
        assertTrue(p.commands.stream().anyMatch(c -> c.command() == MigrationCommand.SWITCHOVER_START && c.data().length == 0),
                "10.0 machine types send SWITCHOVER_START");
        assertTrue(p.vmdesc.startsWith("{\"configuration\":"), p.vmdesc.substring(0, 40));
        assertTrue(p.ramSections >= 2, "START and END of the RAM section");
    }

    @Test
    void deviceSectionsAreKeptVerbatimWithHeaderAndFooter() throws IOException {
        byte[] stream = RecordedStreams.load(RecordedStreams.PRECOPY);
        Parsed p = parse(stream);
        for (Map.Entry<Long, StreamItem> e : p.itemsAt.entrySet()) {
            if (e.getValue() instanceof StreamItem.DeviceSection d) {
                byte[] at = java.util.Arrays.copyOfRange(stream, e.getKey().intValue(), e.getKey().intValue() + d.raw().length);
                assertTrue(java.util.Arrays.equals(at, d.raw()), "section " + d.idstr() + " verbatim");
                assertEquals(StreamTags.SECTION_FOOTER, d.raw()[d.raw().length - 5] & 0xff);
            }
        }
    }

    @Test
    void q35StreamNamesItsMachineType() throws IOException {
        Parsed p = parse(RecordedStreams.load(RecordedStreams.Q35));
        assertEquals("pc-q35-10.0", p.config.machineType());
        assertTrue(p.config.capabilities().isEmpty());
        assertFalse(p.blocks.get(0).hasAddress());
        assertEquals(64L << 20, p.blocks.get(0).usedLength());
    }

    @Test
    void wrongMagicAndVersionAreRefused() throws IOException {
        byte[] s = RecordedStreams.load(RecordedStreams.PRECOPY);
        s[0] = 'X';
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(s));
        assertTrue(e.getMessage().contains("offset 0") && e.getMessage().contains("QEVM"), e.getMessage());

        byte[] v = RecordedStreams.load(RecordedStreams.PRECOPY);
        v[7] = 2;
        e = assertThrows(StreamFormatException.class, () -> parse(v));
        assertTrue(e.getMessage().contains("stream version 3") && e.getMessage().contains("found 2"), e.getMessage());
    }

    @Test
    void truncationAtEveryTopLevelRecordBoundaryAndInsideIsAnError() throws IOException {
        byte[] s = RecordedStreams.load(RecordedStreams.PRECOPY);
        Parsed p = parse(s);
        for (long at : p.recordOffsets) {
            for (long cut : new long[] {at, at + 1, at + 3}) {
                if (cut >= s.length) {
                    continue;
                }
                byte[] t = java.util.Arrays.copyOf(s, (int) cut);
                StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(t), "cut at " + cut);
                assertTrue(e.getMessage().contains("truncated"), e.getMessage());
            }
        }
    }

    @Test
    void unknownSectionTypeIsRefused() throws IOException {
        byte[] s = RecordedStreams.load(RecordedStreams.PRECOPY);
        Parsed p = parse(s);
        long deviceAt = firstOffset(p, StreamItem.DeviceSection.class);
        s[(int) deviceAt] = 0x09;
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(s));
        assertTrue(e.getMessage().contains("offset " + deviceAt) && e.getMessage().contains("0x09"), e.getMessage());
    }

    @Test
    void oversizedVmdescAndCommandLengthsAreRefused() throws IOException {
        byte[] s = RecordedStreams.load(RecordedStreams.PRECOPY);
        Parsed p = parse(s);
        int vmdescAt = (int) firstOffset(p, StreamItem.VmDescription.class);
        byte[] big = s.clone();
        big[vmdescAt + 1] = 0x01;           // length 0x01xxxxxx: > 16 MiB
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(big));
        assertTrue(e.getMessage().contains("vmdesc length"), e.getMessage());

        int cmdAt = (int) firstOffset(p, StreamItem.Command.class);
        byte[] cmd = s.clone();
        // A be16 cannot exceed 64 KiB; what QEMU (and this reader) check is each command's own length.
        cmd[cmdAt + 3] = (byte) 0xff;
        cmd[cmdAt + 4] = (byte) 0xff;
        e = assertThrows(StreamFormatException.class, () -> parse(cmd));
        assertTrue(e.getMessage().contains("command SWITCHOVER_START with 0 bytes") && e.getMessage().contains("65535"),
                e.getMessage());
    }

    @Test
    void unknownCommandNumberIsRefused() throws IOException {
        byte[] s = RecordedStreams.load(RecordedStreams.PRECOPY);
        int cmdAt = (int) firstOffset(parse(s), StreamItem.Command.class);
        s[cmdAt + 2] = 12;
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(s));
        assertTrue(e.getMessage().contains("command number"), e.getMessage());
    }

    @Test
    void idstrWithNonPrintableBytesIsRefused() throws IOException {
        byte[] s = RecordedStreams.load(RecordedStreams.PRECOPY);
        int deviceAt = (int) firstOffset(parse(s), StreamItem.DeviceSection.class);
        s[deviceAt + 6] = 0x01;             // first idstr character
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(s));
        assertTrue(e.getMessage().contains("section idstr"), e.getMessage());
        byte[] empty = RecordedStreams.load(RecordedStreams.PRECOPY);
        empty[deviceAt + 5] = 0;            // idstr length 0
        e = assertThrows(StreamFormatException.class, () -> parse(empty));
        assertTrue(e.getMessage().contains("empty name"), e.getMessage());
    }

    @Test
    void garbageIsRefusedAtTheMagic() {
        byte[] garbage = new byte[4096];
        new java.util.Random(7).nextBytes(garbage);
        garbage[0] = 0x12;
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> parse(garbage));
        assertEquals(0, e.offset());
    }

    static long firstOffset(Parsed p, Class<?> type) {
        return p.itemsAt.entrySet().stream().filter(e -> type.isInstance(e.getValue())).findFirst().orElseThrow().getKey();
    }
}

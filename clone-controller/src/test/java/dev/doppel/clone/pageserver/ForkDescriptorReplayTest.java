package dev.doppel.clone.pageserver;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.pageserver.wire.DescriptorFormatException;
import dev.doppel.clone.pageserver.wire.ForkDescriptor;
import dev.doppel.clone.pageserver.wire.RamBlockInfo;
import dev.doppel.clone.pageserver.wire.WireFormat;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Cuts a fork descriptor recorded from QEMU 10.0.2 (see {@link RecordPageServerTranscripts}). */
class ForkDescriptorReplayTest {
    private static final byte[] RECORDED = Recordings.load(Recordings.DESCRIPTOR);

    @Test
    void recordedDescriptorYieldsMachineBlocksRomsAndDeviceSections() throws Exception {
        ForkDescriptor d = ForkDescriptor.parse(RECORDED);
        assertEquals("pc-i440fx-10.0", d.machineType());
        List<String> names = d.blocks().stream().map(RamBlockInfo::name).toList();
        assertTrue(names.contains("pc.ram") && names.contains("pc.bios") && names.contains("pc.rom"), names.toString());
        assertEquals(256L << 20, d.blocks().stream().filter(b -> b.name().equals("pc.ram")).findFirst().orElseThrow().usedLength());
        // x-ignore-shared: the guest RAM lives in the shared file, the ROMs travel in the descriptor.
        assertNull(d.carriedBlock("pc.ram"));
        byte[] bios = d.carriedBlock("pc.bios");
        assertNotNull(bios);
        assertTrue(Arrays.stream(toLongs(bios)).anyMatch(v -> v != 0), "BIOS contents are all zero");
        // The device part starts with a FULL section and stops before the EOF byte QEMU wrote after it.
        byte[] devices = d.deviceSections();
        assertEquals(WireFormat.VM_SECTION_FULL, devices[0]);
        assertEquals(WireFormat.VM_SECTION_FOOTER, devices[devices.length - 5], "device part must end with a section footer");
        assertTrue(devices.length > 5_000 && devices.length < RECORDED.length, "device part of " + devices.length + " bytes");
        assertFalse(d.ramSectionId() < 0);
    }

    @Test
    void deviceSectionsAreTheRecordedBytesVerbatim() throws Exception {
        ForkDescriptor d = ForkDescriptor.parse(RECORDED);
        byte[] devices = d.deviceSections();
        int at = indexOf(RECORDED, devices);
        assertTrue(at > 0, "device part not found verbatim in the descriptor");
        assertEquals(WireFormat.VM_EOF, RECORDED[at + devices.length], "the byte after the device part is QEMU's EOF");
    }

    @Test
    void truncatedOrForeignInputIsRejectedWithTheOffset() {
        DescriptorFormatException cut = assertThrows(DescriptorFormatException.class,
                () -> ForkDescriptor.parse(Arrays.copyOf(RECORDED, 2000)));
        assertTrue(cut.getMessage().contains("truncated") || cut.getMessage().contains("EOF"), cut.getMessage());
        byte[] foreign = RECORDED.clone();
        foreign[0] = 'X';
        DescriptorFormatException magic = assertThrows(DescriptorFormatException.class, () -> ForkDescriptor.parse(foreign));
        assertTrue(magic.getMessage().contains("offset 0") && magic.getMessage().contains("QEVM"), magic.getMessage());
    }

    private static long[] toLongs(byte[] b) {
        long[] out = new long[b.length / 8];
        java.nio.ByteBuffer.wrap(b).asLongBuffer().get(out);
        return out;
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < Math.min(needle.length, 64); j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            if (Arrays.equals(hay, i, i + needle.length, needle, 0, needle.length)) {
                return i;
            }
        }
        return -1;
    }
}

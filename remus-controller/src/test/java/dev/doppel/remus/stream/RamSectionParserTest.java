package dev.doppel.remus.stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.RecordedStreams;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * RAM records of the recorded COLO session: block list, CONTINUE carried across checkpoints, and
 * each record-level defect patched into the first page record of checkpoint 2.
 */
class RamSectionParserTest {
    static RecordedSession session;

    @BeforeAll
    static void index() throws IOException {
        session = RecordedSession.parse(RecordedStreams.load(RecordedStreams.COLO_P2B));
    }

    /** Offset of the first RAM record of checkpoint {@code n} (after the END section's 5-byte header). */
    static int firstRecordOf(int n) {
        return (int) session.checkpoints.get(n - 1).ramSectionAt() + 5;
    }

    static long flagsAt(byte[] s, int at) {
        return java.nio.ByteBuffer.wrap(s, at, 8).getLong() & 0xfff;
    }

    static void replay(byte[] s) throws IOException {
        RecordedSession.parse(s);
    }

    @Test
    void blockListOfThePrimaryWithoutAddresses() {
        assertEquals("pc.ram", session.blocks.get(0).name());
        assertEquals(128L << 20, session.blocks.get(0).usedLength());
        assertEquals(6, session.blocks.size(), session.blocks.toString());
        assertTrue(session.blocks.stream().noneMatch(RamBlock::hasAddress));
    }

    @Test
    void everyCheckpointCarriesPagesAndContinueCrossesCheckpoints() {
        assertEquals(3, session.checkpoints.size());
        for (RecordedSession.Checkpoint c : session.checkpoints) {
            assertTrue(c.pages().size() > 10, "checkpoint " + c.epoch() + ": " + c.pages().size() + " pages");
        }
        byte[] s = session.bytes;
        // QEMU keeps the last block across checkpoints: checkpoint 2's first record is CONTINUE.
        long flags = flagsAt(s, firstRecordOf(2));
        assertTrue((flags & RamSectionParser.FLAG_CONTINUE) != 0, "flags 0x" + Long.toHexString(flags));
    }

    @Test
    void pageBeyondTheBlockIsRefused() {
        byte[] s = session.bytes.clone();
        int at = firstRecordOf(2);
        s[at] = 0x7f;                       // address ~ 2^62
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> replay(s));
        assertTrue(e.getMessage().contains("page address") && e.getMessage().contains("offset " + at), e.getMessage());
    }

    @Test
    void compressedXbzrleMultifdAndRdmaRecordsAreRefusedByName() {
        int at = firstRecordOf(2);
        String[][] cases = {{"0x40", "XBZRLE"}, {"0x100", "compressed"}, {"0x200", "multifd"}, {"0x80", "RDMA"}};
        for (String[] c : cases) {
            byte[] s = session.bytes.clone();
            int flag = Integer.decode(c[0]);
            // Replace the PAGE flag (keep CONTINUE) by the unsupported one.
            long word = java.nio.ByteBuffer.wrap(s, at, 8).getLong();
            word = (word & ~0xfffL) | (word & RamSectionParser.FLAG_CONTINUE) | flag;
            java.nio.ByteBuffer.wrap(s, at, 8).putLong(word);
            StreamFormatException e = assertThrows(StreamFormatException.class, () -> replay(s));
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
    }

    @Test
    void continueWithoutAPreviousBlockAndUnknownBlockNamesAreRefused() throws IOException {
        // The initial stream's first page record names its block; make it CONTINUE.
        byte[] s = session.bytes.clone();
        int first = (int) firstNamedRecord(s);
        s[first + 7] |= RamSectionParser.FLAG_CONTINUE;
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> replay(s));
        assertTrue(e.getMessage().contains("CONTINUE"), e.getMessage());

        byte[] u = session.bytes.clone();
        u[first + 9] = 'X';                 // first character of the block name
        e = assertThrows(StreamFormatException.class, () -> replay(u));
        assertTrue(e.getMessage().contains("unknown block"), e.getMessage());
    }

    @Test
    void blockListDifferentFromTheAgreedOneIsRefused() throws IOException {
        // Splice the recorded MEM_SIZE record, with one size changed, in front of checkpoint 2's pages.
        byte[] s = session.bytes;
        int memAt = memSizeRecordAt(s);
        int memLen = memSizeRecordLength(s, memAt);
        byte[] mem = java.util.Arrays.copyOfRange(s, memAt, memAt + memLen);
        // Move 4 KiB from pc.ram to the next block: the total stays, the list differs.
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(mem);
        int nameLen = mem[8];
        int ramLenAt = 8 + 1 + nameLen;
        b.putLong(ramLenAt, b.getLong(ramLenAt) - 4096);
        int next = ramLenAt + 8;
        int next2Len = mem[next];
        b.putLong(next + 1 + next2Len, b.getLong(next + 1 + next2Len) + 4096);
        int at = firstRecordOf(2);
        byte[] spliced = new byte[s.length + mem.length];
        System.arraycopy(s, 0, spliced, 0, at);
        System.arraycopy(mem, 0, spliced, at, mem.length);
        System.arraycopy(s, at, spliced, at + mem.length, s.length - at);
        StreamFormatException e = assertThrows(StreamFormatException.class, () -> replay(spliced));
        assertTrue(e.getMessage().contains("block list agreed at start"), e.getMessage());
    }

    /** The initial RAM START section's first record (MEM_SIZE) follows its header: type, id, "ram", instance, version. */
    static int memSizeRecordAt(byte[] s) {
        for (long at : session.initialBoundaries) {
            if (s[(int) at] == StreamTags.SECTION_START && s[(int) at + 5] == 3 && s[(int) at + 6] == 'r') {
                return (int) at + 1 + 4 + 1 + 3 + 4 + 4;
            }
        }
        throw new AssertionError("no RAM START section");
    }

    static int memSizeRecordLength(byte[] s, int at) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(s);
        long total = b.getLong(at) & ~0xfffL;
        int p = at + 8;
        while (total > 0) {
            int len = s[p] & 0xff;
            p += 1 + len;
            total -= b.getLong(p);
            p += 8;
        }
        return p - at;
    }

    /** The first page record after the MEM_SIZE record (always names its block). */
    static long firstNamedRecord(byte[] s) throws IOException {
        int mem = memSizeRecordAt(s);
        int p = mem + memSizeRecordLength(s, mem);
        // Then EOS (8 bytes) and the START footer (5), the next section's header (5), the first record.
        StreamInput in = new StreamInput(new ByteArrayInputStream(s, p, s.length - p));
        long eos = in.be64("eos");
        assertEquals(RamSectionParser.FLAG_EOS, eos);
        p += 8 + 5;
        // Skip commands/sections until a RAM PART: find first boundary > p of type PART.
        for (long at : session.initialBoundaries) {
            if (at >= p && s[(int) at] == StreamTags.SECTION_PART) {
                return at + 5;
            }
        }
        throw new AssertionError("no RAM PART section");
    }
}

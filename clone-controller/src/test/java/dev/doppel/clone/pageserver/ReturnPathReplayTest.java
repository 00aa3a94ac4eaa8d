package dev.doppel.clone.pageserver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.pageserver.wire.ForkDescriptor;
import dev.doppel.clone.pageserver.wire.RamBlockInfo;
import dev.doppel.clone.pageserver.wire.ReturnPathMessage;
import dev.doppel.clone.pageserver.wire.ReturnPathReader;
import dev.doppel.clone.pageserver.wire.WireFormat;
import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Replays a return path recorded from a real QEMU 10.0.2 postcopy destination fed by the page server. */
class ReturnPathReplayTest {
    private static final byte[] RECORDED = Recordings.load(Recordings.RETURN_PATH);
    private static final Map<String, RamBlockInfo> BLOCKS = blocks();

    private static Map<String, RamBlockInfo> blocks() {
        try {
            Map<String, RamBlockInfo> m = new LinkedHashMap<>();
            for (RamBlockInfo b : ForkDescriptor.parse(Recordings.load(Recordings.DESCRIPTOR)).blocks()) {
                m.put(b.name(), b);
            }
            return m;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void recordedReturnPathIsPageRequestsInsideTheBlocksThenShut() throws Exception {
        List<ReturnPathMessage> all = readAll(RECORDED);
        assertTrue(all.size() > 100, "only " + all.size() + " messages");
        ReturnPathMessage.PageRequest first = assertInstanceOf(ReturnPathMessage.PageRequest.class, all.get(0));
        // The device state load touches the VGA/option ROM area of guest RAM first (0xc0000-0xc2000 in FINDINGS).
        assertEquals("pc.ram", first.block());
        for (ReturnPathMessage m : all.subList(0, all.size() - 1)) {
            ReturnPathMessage.PageRequest r = assertInstanceOf(ReturnPathMessage.PageRequest.class, m);
            RamBlockInfo b = BLOCKS.get(r.block());
            assertTrue(b != null && r.offset() % WireFormat.PAGE_SIZE == 0 && r.length() == WireFormat.PAGE_SIZE
                    && r.offset() + r.length() <= b.usedLength(), r.toString());
        }
        assertEquals(new ReturnPathMessage.Shut(0), all.get(all.size() - 1));
    }

    @Test
    void aReturnPathCutAnywhereEndsInEofNotInAWrongMessage() throws Exception {
        int complete = readAll(RECORDED).size();
        for (int cut : new int[] {1, 3, 7, 20, RECORDED.length / 2 + 1, RECORDED.length - 3}) {
            ReturnPathReader r = new ReturnPathReader(new ByteArrayInputStream(Arrays.copyOf(RECORDED, cut)), BLOCKS);
            int n = 0;
            try {
                while (true) {
                    r.next();
                    n++;
                }
            } catch (EOFException e) {
                assertTrue(n < complete, "cut at " + cut + " still gave all " + n + " messages");
            }
        }
    }

    @Test
    void requestPagesBeforeAnyNamedBlockIsAProtocolError() throws Exception {
        // The recording's second message is a REQ_PAGES (same block as the first): without the first it is meaningless.
        List<ReturnPathMessage> all = readAll(RECORDED);
        int firstLen = 4 + ((RECORDED[2] & 0xff) << 8 | (RECORDED[3] & 0xff));
        int type2 = (RECORDED[firstLen] & 0xff) << 8 | (RECORDED[firstLen + 1] & 0xff);
        assertEquals(WireFormat.RP_REQ_PAGES, type2, "the recording's second message continues the first one's block");
        ReturnPathReader r = new ReturnPathReader(new ByteArrayInputStream(Arrays.copyOfRange(RECORDED, firstLen, RECORDED.length)), BLOCKS);
        Exception e = assertThrows(Exception.class, r::next);
        assertTrue(e.getMessage().contains("REQ_PAGES before any REQ_PAGES_ID"), e.getMessage());
        assertTrue(all.size() > 1);
    }

    private static List<ReturnPathMessage> readAll(byte[] bytes) throws Exception {
        ReturnPathReader r = new ReturnPathReader(new ByteArrayInputStream(bytes), BLOCKS);
        List<ReturnPathMessage> out = new ArrayList<>();
        try {
            while (true) {
                out.add(r.next());
            }
        } catch (EOFException end) {
            return out;
        }
    }
}

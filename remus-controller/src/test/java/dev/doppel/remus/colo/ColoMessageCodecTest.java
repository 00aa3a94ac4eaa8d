package dev.doppel.remus.colo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.stream.StreamFormatException;
import dev.doppel.remus.stream.StreamInput;
import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.RecordedStreams;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** COLO messages as the recorded session carries them, both directions. */
class ColoMessageCodecTest {

    @Test
    void backupToPrimaryRecordingDecodesAndReencodesIdentically() throws IOException {
        byte[] b2p = RecordedStreams.load(RecordedStreams.COLO_B2P);
        StreamInput in = new StreamInput(new ByteArrayInputStream(b2p));
        List<ColoMessage> got = new ArrayList<>();
        ByteArrayOutputStream again = new ByteArrayOutputStream();
        while (!in.atEnd()) {
            ColoMessage m = ColoMessageCodec.read(in);
            got.add(m);
            ColoMessageCodec.write(again, m);
        }
        List<ColoMessage> expected = new ArrayList<>(List.of(ColoMessage.CHECKPOINT_READY));
        for (int i = 0; i < 3; i++) {
            expected.addAll(List.of(ColoMessage.CHECKPOINT_REPLY, ColoMessage.VMSTATE_RECEIVED, ColoMessage.VMSTATE_LOADED));
        }
        assertEquals(expected, got);
        assertArrayEquals(b2p, again.toByteArray());
    }

    @Test
    void primaryToBackupMessagesDecodeAtTheirRecordedOffsets() throws IOException {
        RecordedSession s = RecordedSession.parse(RecordedStreams.load(RecordedStreams.COLO_P2B));
        for (RecordedSession.Checkpoint c : s.checkpoints) {
            assertArrayEquals(ColoMessageCodec.encode(ColoMessage.CHECKPOINT_REQUEST), slice(s.bytes, c.requestAt(), 4));
            assertArrayEquals(ColoMessageCodec.encode(ColoMessage.VMSTATE_SEND), slice(s.bytes, c.sendAt(), 4));
            // VMSTATE_SIZE carries a be64: re-encoding the decoded size gives the recorded 12 bytes.
            StreamInput in = new StreamInput(new ByteArrayInputStream(s.bytes, (int) c.sizeAt(), 12));
            long size = ColoMessageCodec.readSize(in);
            assertEquals(c.deviceState().length, size);
            assertArrayEquals(slice(s.bytes, c.sizeAt(), 12), ColoMessageCodec.encodeSize(size));
        }
    }

    @Test
    void unknownMessageIdIsAFormatError() throws IOException {
        RecordedSession s = RecordedSession.parse(RecordedStreams.load(RecordedStreams.COLO_P2B));
        byte[] b = slice(s.bytes, s.checkpoints.get(0).requestAt(), 4);
        b[3] = 7;
        StreamFormatException e = assertThrows(StreamFormatException.class,
                () -> ColoMessageCodec.read(new StreamInput(new ByteArrayInputStream(b))));
        assertTrue(e.getMessage().contains("COLO message (0-6)") && e.getMessage().contains("found 7"), e.getMessage());
    }

    @Test
    void everyMessageRoundTrips() throws IOException {
        for (ColoMessage m : ColoMessage.values()) {
            byte[] b = ColoMessageCodec.encode(m);
            assertEquals(m, ColoMessageCodec.read(new StreamInput(new ByteArrayInputStream(b))));
        }
    }

    static byte[] slice(byte[] b, long at, int n) {
        return Arrays.copyOfRange(b, (int) at, (int) at + n);
    }
}

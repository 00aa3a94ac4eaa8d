package dev.doppel.qmp.connection;

import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("unit")
class LineFramerTest {

    private static List<String> feedAll(LineFramer f, byte[] data, int chunk) throws Exception {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < data.length; i += chunk) {
            f.feed(data, i, Math.min(chunk, data.length - i), (b, o, l) -> out.add(new String(b, o, l, StandardCharsets.UTF_8)));
        }
        return out;
    }

    private static byte[] recordedStream() {
        StringBuilder b = new StringBuilder();
        Transcript.load("interleaved.jsonl").received().forEach(e -> b.append(e.raw()));
        return b.toString().getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void splitsRecordedCrlfStreamAtAnyChunkSize() throws Exception {
        byte[] stream = recordedStream();
        int expected = Transcript.load("interleaved.jsonl").received().size();
        for (int chunk : new int[]{1, 2, 3, 7, 64, 4096, stream.length}) {
            List<String> lines = feedAll(new LineFramer(1 << 20), stream, chunk);
            assertEquals(expected, lines.size(), "chunk " + chunk);
            lines.forEach(l -> assertTrue(l.startsWith("{") && l.endsWith("}"), l));
        }
    }

    @Test
    void toleratesLfOnly() throws Exception {
        byte[] stream = new String(recordedStream(), StandardCharsets.UTF_8).replace("\r\n", "\n").getBytes(StandardCharsets.UTF_8);
        List<String> lines = feedAll(new LineFramer(1 << 20), stream, 5);
        assertEquals(Transcript.load("interleaved.jsonl").received().size(), lines.size());
        lines.forEach(l -> assertTrue(l.endsWith("}"), l));
    }

    @Test
    void messageOfExactlyTheLimitPassesOneMoreFails() throws Exception {
        byte[] ok = ("x".repeat(1024) + "\r\n").getBytes(StandardCharsets.US_ASCII);
        assertEquals(1, feedAll(new LineFramer(1024), ok, 100).size());
        byte[] tooLong = ("x".repeat(1025) + "\r\n").getBytes(StandardCharsets.US_ASCII);
        LineFramer.TooLongException e = assertThrows(LineFramer.TooLongException.class,
                () -> feedAll(new LineFramer(1024), tooLong, 2000));
        assertEquals("message exceeds 1024 bytes", e.getMessage());
    }

    @Test
    void unterminatedOversizedMessageFailsBeforeItsEnd() throws Exception {
        LineFramer f = new LineFramer(1024);
        byte[] chunk = "y".repeat(600).getBytes(StandardCharsets.US_ASCII);
        f.feed(chunk, 0, chunk.length, (b, o, l) -> { });
        assertEquals(600, f.pendingLength());
        assertThrows(LineFramer.TooLongException.class, () -> f.feed(chunk, 0, chunk.length, (b, o, l) -> { }));
    }

    @Test
    void keepsPartialMessageForErrorReports() throws Exception {
        LineFramer f = new LineFramer(1024);
        byte[] half = "{\"return\": {\"sta".getBytes(StandardCharsets.US_ASCII);
        f.feed(half, 0, half.length, (b, o, l) -> { throw new AssertionError("no complete message yet"); });
        assertEquals("{\"return\": {\"sta", new String(f.pendingBytes(), StandardCharsets.US_ASCII));
    }
}

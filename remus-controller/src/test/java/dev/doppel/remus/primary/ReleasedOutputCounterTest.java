package dev.doppel.remus.primary;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The held-output counter reads QEMU's and the kernel's own text; both recorded (streams/README.md). */
class ReleasedOutputCounterTest {
    @Test
    void findsTheTapOfEachNetdevAndSkipsUserNetworking() throws IOException {
        String reply = new ObjectMapper().readTree(resource("info-network-tap-and-user.qmp")).path("return").asText();
        assertEquals(Map.of("net0", "tapx0"), ReleasedOutputCounter.tapsByNetdev(reply));
    }

    @Test
    void readsReceiveBytesAndPacketsPerInterface() throws IOException {
        List<String> lines = resource("proc-net-dev.txt").lines().toList();
        Map<String, long[]> counters = ReleasedOutputCounter.receiveCounters(lines);
        assertArrayEquals(new long[] {0, 0}, counters.get("tapx0"));
        // Every interface line, and no header line, becomes an entry.
        assertEquals(lines.size() - 2, counters.size());
        String[] lo = lines.stream().filter(l -> l.trim().startsWith("lo:")).findFirst().orElseThrow().split(":")[1].trim().split("\\s+");
        assertArrayEquals(new long[] {Long.parseLong(lo[0]), Long.parseLong(lo[1])}, counters.get("lo"));
    }

    private static String resource(String name) throws IOException {
        try (InputStream in = ReleasedOutputCounterTest.class.getResourceAsStream("/streams/" + name)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}

package dev.doppel.remus.colo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.RecordedStreams;
import dev.doppel.remus.testing.StoreDigest;
import dev.doppel.remus.testing.TempStores;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;

/**
 * Seeded mutations of the recorded COLO session. Each mutated stream must either replay cleanly or
 * fail with an I/O-type cause (never a RuntimeException inside the session); on failure the store
 * must hold exactly what it held at its last commit, also after reopening. Mutations favour record
 * boundaries (headers, lengths, flags, message ids), where format bugs live, over page payloads.
 */
class ColoSessionFuzzTest {
    static final long SEED = 20261125L;
    static final int MUTATIONS = 2000;

    @AutoClose
    TempStores stores = new TempStores();

    @Test
    void mutatedSessionsFailCleanlyAndLeaveTheLastCommitIntact() throws IOException {
        RecordedSession rec = RecordedSession.parse(RecordedStreams.load(RecordedStreams.COLO_P2B));
        List<long[]> touched = rec.dataAndCheckpointPages();
        List<Long> boundaries = new ArrayList<>(rec.initialBoundaries);
        for (RecordedSession.Checkpoint c : rec.checkpoints) {
            boundaries.add(c.requestAt());
            boundaries.add(c.sendAt());
            boundaries.addAll(c.boundaries());
        }
        Random rnd = new Random(SEED);
        // Two INFO lines per replay would dominate the run time.
        ch.qos.logback.classic.Logger sessionLog =
                (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(ColoSecondarySession.class);
        ch.qos.logback.classic.Level before = sessionLog.getLevel();
        sessionLog.setLevel(ch.qos.logback.classic.Level.WARN);
        Path dir = stores.newDir();
        int[] outcome = new int[2];   // clean, failed
        assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                byte[] mutated = mutate(rec.bytes, boundaries, rnd);
                long t0 = System.nanoTime();
                BackupStore.deleteAll(dir);
                try (BackupStore store = BackupStore.open(dir, "fuzz-vm")) {
                    String[] lastDigest = {StoreDigest.of(store, touched)};
                    long[] lastEpoch = {-1};
                    EpochListener l = new EpochListener() {
                        @Override
                        public void epochCommitted(EpochMetrics m) {
                            lastEpoch[0] = m.epoch();
                            try {
                                lastDigest[0] = StoreDigest.of(store, touched);
                            } catch (IOException e) {
                                throw new UncheckedIOException(e);
                            }
                        }
                    };
                    try {
                        new ColoSecondarySession(ProtectedVm.named("fuzz-vm"), store, l)
                                .run(new ByteArrayInputStream(mutated), new ByteArrayOutputStream());
                        outcome[0]++;
                    } catch (ColoSessionException e) {
                        if (!(e.getCause() instanceof IOException)) {
                            fail("mutation " + i + ": cause is not an IOException", e);
                        }
                        outcome[1]++;
                        assertEquals(lastEpoch[0], store.committedEpoch(), "mutation " + i + ": " + e.getMessage());
                        assertEquals(lastDigest[0], StoreDigest.of(store, touched), "mutation " + i + ": " + e.getMessage());
                    }
                }
                long ms = (System.nanoTime() - t0) / 1_000_000;
                if (ms > 200) {
                    System.out.println("fuzz: mutation " + i + " took " + ms + " ms");
                }
                // What a restarted backup would see.
                try (BackupStore reopened = BackupStore.open(dir, "fuzz-vm")) {
                    assertTrue(reopened.committedEpoch() >= -1);
                }
            }
        });
        sessionLog.setLevel(before);
        System.out.printf("fuzz: %d mutations, %d replayed cleanly, %d failed cleanly%n", MUTATIONS, outcome[0], outcome[1]);
        assertTrue(outcome[1] > MUTATIONS / 4, "most mutations near boundaries must be detected");
    }

    static byte[] mutate(byte[] s, List<Long> boundaries, Random rnd) {
        byte[] m = s.clone();
        int at = rnd.nextInt(4) == 0 ? rnd.nextInt(m.length)
                : (int) Math.min(m.length - 1, boundaries.get(rnd.nextInt(boundaries.size())) + rnd.nextInt(16));
        switch (rnd.nextInt(7)) {
            case 0 -> m[at] ^= (byte) (1 << rnd.nextInt(8));
            case 1 -> m[at] = (byte) rnd.nextInt(256);
            case 2 -> Arrays.fill(m, at, Math.min(m.length, at + 1 + rnd.nextInt(8)), (byte) 0xff);
            case 3 -> Arrays.fill(m, at, Math.min(m.length, at + 1 + rnd.nextInt(8)), (byte) 0);
            case 4 -> m = Arrays.copyOf(m, at);                             // truncate
            case 5 -> {                                                      // delete a few bytes
                int n = Math.min(m.length - at, 1 + rnd.nextInt(12));
                byte[] d = new byte[m.length - n];
                System.arraycopy(m, 0, d, 0, at);
                System.arraycopy(m, at + n, d, at, m.length - at - n);
                m = d;
            }
            default -> {                                                     // duplicate a few bytes
                int n = Math.min(m.length - at, 1 + rnd.nextInt(12));
                byte[] d = new byte[m.length + n];
                System.arraycopy(m, 0, d, 0, at + n);
                System.arraycopy(m, at, d, at + n, m.length - at);
                m = d;
            }
        }
        return m;
    }
}

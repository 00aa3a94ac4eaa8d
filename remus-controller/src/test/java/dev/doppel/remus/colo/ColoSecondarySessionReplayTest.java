package dev.doppel.remus.colo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.stream.StreamFormatException;
import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.RecordedStreams;
import dev.doppel.remus.testing.StoreAssertions;
import dev.doppel.remus.testing.StoreDigest;
import dev.doppel.remus.testing.TempStores;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The session against the recorded primary → backup bytes of a real COLO primary. */
class ColoSecondarySessionReplayTest {
    static final String VM = "replayed-vm";
    static RecordedSession rec;
    static List<long[]> touched;

    @AutoClose
    TempStores stores = new TempStores();

    @BeforeAll
    static void index() throws IOException {
        rec = RecordedSession.coloPrimaryToBackup();
        touched = rec.touchedPages();
    }

    static ProtectedVm vm() {
        return ProtectedVm.named(VM).withMachine("pc-i440fx-10.0", 128L << 20);
    }

    /** Replays {@code bytes}; returns what the session sent back. */
    static byte[] replay(BackupStore store, byte[] bytes, EpochListener l) throws ColoSessionException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        new ColoSecondarySession(vm(), store, l).run(new ByteArrayInputStream(bytes), out);
        return out.toByteArray();
    }

    @Test
    void recordedSessionCommitsFourEpochsAndAnswersExactlyAsRecorded() throws IOException {
        BackupStore store = stores.fresh(VM);
        List<EpochMetrics> metrics = new ArrayList<>();
        List<Long> released = new ArrayList<>();
        byte[] answers = replay(store, rec.bytes, new EpochListener() {
            @Override
            public void beforeRelease(long epoch) {
                released.add(epoch);
            }

            @Override
            public void epochCommitted(EpochMetrics m) {
                metrics.add(m);
            }
        });
        assertArrayEquals(RecordedStreams.load(RecordedStreams.COLO_B2P), answers);
        assertEquals(3, store.committedEpoch());
        assertEquals(List.of(1L, 2L, 3L), released);
        assertEquals(List.of(0L, 1L, 2L, 3L), metrics.stream().map(EpochMetrics::epoch).toList());
        for (int i = 1; i <= 3; i++) {
            RecordedSession.Checkpoint c = rec.checkpoints.get(i - 1);
            EpochMetrics m = metrics.get(i);
            assertEquals(c.pages().size(), m.dataPages() + m.filledPages());
            assertEquals(c.deviceState().length, m.deviceStateBytes());
            assertEquals(c.end() - c.requestAt(), m.wireBytes());
        }
        assertArrayEquals(rec.checkpoints.get(2).deviceState(), store.deviceState());
        StoreAssertions.assertPagesEqual(store, rec.pagesAfter(3));
        assertEquals("pc-i440fx-10.0", store.metadata().machineType());
    }

    @Test
    void aCheckpointTruncatedAtAnyRecordBoundaryLeavesThePreviousEpochByteForByte() throws IOException {
        BackupStore ref = stores.fresh(VM);
        replay(ref, rec.upToCheckpoint(1), EpochListener.NONE);
        String epoch1 = StoreDigest.of(ref, touched);
        RecordedSession.Checkpoint c2 = rec.checkpoints.get(1);
        List<Long> cuts = new ArrayList<>(c2.boundaries());
        cuts.add(c2.requestAt() + 4);       // after REQUEST
        cuts.add(c2.sendAt() + 4);          // after VMSTATE_SEND
        cuts.add(c2.sizeAt() + 4);          // inside VMSTATE_SIZE
        cuts.add(c2.end() - 1);             // one byte short of the device state
        int checked = 0;
        for (long cut : cuts) {
            BackupStore store = stores.fresh(VM);
            ColoSessionException e = assertThrows(ColoSessionException.class,
                    () -> replay(store, Arrays.copyOf(rec.bytes, (int) cut), EpochListener.NONE), "cut at " + cut);
            assertEquals(2, e.epoch(), e.getMessage());
            assertTrue(e.getMessage().startsWith("VM '" + VM + "', epoch 2"), e.getMessage());
            assertTrue(e.getMessage().contains("truncated"), e.getMessage());
            assertEquals(1, store.committedEpoch());
            assertEquals(epoch1, StoreDigest.of(store, touched), "store after cut at " + cut);
            checked++;
        }
        assertTrue(checked > 20, "cuts: " + checked);
    }

    @Test
    void theRecordingCutAfterACheckpointIsANormalEnd() throws IOException {
        BackupStore store = stores.fresh(VM);
        Long[] ended = {null};
        replay(store, rec.upToCheckpoint(2), new EpochListener() {
            @Override
            public void sessionEnded(long last, Throwable cause) {
                assertEquals(null, cause);
                ended[0] = last;
            }
        });
        assertEquals(2L, ended[0]);
        assertEquals(2, store.committedEpoch());
    }

    @Test
    void aStreamOfAnotherMachineTypeIsRefusedBeforeAnythingIsStored() throws IOException {
        BackupStore store = stores.fresh(VM);
        ColoSessionException e = assertThrows(ColoSessionException.class,
                () -> replay(store, RecordedStreams.load(RecordedStreams.Q35), EpochListener.NONE));
        assertTrue(e.getMessage().contains("VM '" + VM + "', epoch 0") && e.getMessage().contains("machine type pc-i440fx-10.0")
                && e.getMessage().contains("pc-q35-10.0"), e.getMessage());
        assertEquals(-1, store.committedEpoch());
    }

    @Test
    void aPlainPrecopyStreamIsNotACOLOSession() throws IOException {
        BackupStore store = stores.fresh(VM);
        ColoSessionException e = assertThrows(ColoSessionException.class, () -> new ColoSecondarySession(
                ProtectedVm.named(VM), store, EpochListener.NONE).run(
                new ByteArrayInputStream(RecordedStreams.load(RecordedStreams.PRECOPY)), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("ENABLE_COLO"), e.getMessage());
        assertEquals(-1, store.committedEpoch());
    }

    @Test
    void wrongRamSizeIsRefused() throws IOException {
        BackupStore store = stores.fresh(VM);
        ColoSessionException e = assertThrows(ColoSessionException.class, () -> new ColoSecondarySession(
                ProtectedVm.named(VM).withMachine("pc-i440fx-10.0", 256L << 20), store, EpochListener.NONE).run(
                new ByteArrayInputStream(rec.bytes), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("pc.ram of 268435456 bytes"), e.getMessage());
    }

    @Test
    void oversizedDeviceStateAndUnknownMessagesLeaveTheStoreAtThePreviousEpoch() throws IOException {
        RecordedSession.Checkpoint c3 = rec.checkpoints.get(2);
        byte[] big = rec.bytes.clone();
        ByteBuffer.wrap(big).putLong((int) c3.sizeAt() + 4, 1L << 40);
        assertFailsAtEpoch3(big, "device state of 1-");

        byte[] unknown = rec.bytes.clone();
        unknown[(int) c3.requestAt() + 3] = 9;
        assertFailsAtEpoch3(unknown, "COLO message");

        byte[] wrongOrder = rec.bytes.clone();
        wrongOrder[(int) c3.sendAt() + 3] = (byte) ColoMessage.CHECKPOINT_REQUEST.code();
        assertFailsAtEpoch3(wrongOrder, "expected COLO message VMSTATE_SEND");

        byte[] garbageState = rec.bytes.clone();
        garbageState[(int) c3.deviceStateAt()] = 0x42;
        assertFailsAtEpoch3(garbageState, "valid device state");
    }

    @Test
    void garbageIsRefusedAtTheHeader() throws IOException {
        BackupStore store = stores.fresh(VM);
        byte[] garbage = new byte[1 << 16];
        new java.util.Random(11).nextBytes(garbage);
        ColoSessionException e = assertThrows(ColoSessionException.class, () -> replay(store, garbage, EpochListener.NONE));
        assertInstanceOf(StreamFormatException.class, e.getCause());
        assertTrue(e.getMessage().contains("epoch 0, reading the stream header"), e.getMessage());
    }

    private void assertFailsAtEpoch3(byte[] stream, String message) throws IOException {
        BackupStore store = stores.fresh(VM);
        String[] before = new String[1];
        ColoSessionException e = assertThrows(ColoSessionException.class, () -> replay(store, stream, new EpochListener() {
            @Override
            public void epochCommitted(EpochMetrics m) {
                if (m.epoch() == 2) {
                    try {
                        before[0] = StoreDigest.of(store, touched);
                    } catch (IOException x) {
                        throw new java.io.UncheckedIOException(x);
                    }
                }
            }
        }));
        assertEquals(3, e.epoch());
        assertTrue(e.getMessage().contains(message), e.getMessage());
        assertEquals(2, store.committedEpoch());
        assertEquals(before[0], StoreDigest.of(store, touched));
    }
}

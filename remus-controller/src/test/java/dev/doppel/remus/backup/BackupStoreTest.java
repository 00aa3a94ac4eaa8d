package dev.doppel.remus.backup;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.colo.ColoSecondarySession;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.stream.MigrationStreamReader;
import dev.doppel.remus.stream.RamBlock;
import dev.doppel.remus.stream.RamRecordSink;
import dev.doppel.remus.stream.StreamInput;
import dev.doppel.remus.stream.StreamItem;
import dev.doppel.remus.testing.RecordedSession;
import dev.doppel.remus.testing.StoreAssertions;
import dev.doppel.remus.testing.StoreDigest;
import dev.doppel.remus.testing.TempStores;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Commit, crash at every commit step, reopen; the restore stream. Fed with the recorded session. */
class BackupStoreTest {
    static final String VM = "store-vm";
    static RecordedSession rec;
    static List<long[]> touched;

    @AutoClose
    TempStores stores = new TempStores();

    @BeforeAll
    static void index() throws IOException {
        rec = RecordedSession.coloPrimaryToBackup();
        touched = rec.touchedPages();
    }

    /** A store at epoch {@code n}, by replaying the recording cut after checkpoint n. */
    Path storeAt(int n) throws IOException {
        Path dir = stores.newDir();
        try (BackupStore s = BackupStore.open(dir, VM)) {
            new ColoSecondarySession(ProtectedVm.named(VM), s, EpochListener.NONE)
                    .run(new ByteArrayInputStream(rec.upToCheckpoint(n)), new ByteArrayOutputStream());
            assertEquals(n, s.committedEpoch());
        }
        return dir;
    }

    static EpochStaging staging(int epoch) {
        EpochStaging s = new EpochStaging(4096);
        for (RecordedSession.Page p : rec.checkpoints.get(epoch - 1).pages()) {
            if (p.data() != null) {
                s.page(p.block(), p.offset(), p.data(), 0);
            } else {
                s.filledPage(p.block(), p.offset(), p.fill());
            }
        }
        return s;
    }

    @Test
    void commitIsVisibleAfterReopenAndOnlyTheCurrentFilesRemain() throws IOException {
        Path dir = storeAt(2);
        try (BackupStore s = stores.open(dir, VM)) {
            assertEquals(2, s.committedEpoch());
            BackupStore.CommitStats st = s.commit(3, staging(3), rec.checkpoints.get(2).deviceState());
            assertEquals(rec.checkpoints.get(2).pages().size(), st.dataPages() + st.filledPages());
        }
        try (BackupStore s = stores.open(dir, VM)) {
            assertEquals(3, s.committedEpoch());
            assertArrayEquals(rec.checkpoints.get(2).deviceState(), s.deviceState());
            StoreAssertions.assertPagesEqual(s, rec.pagesAfter(3));
        }
        try (var files = Files.list(dir)) {
            List<String> names = files.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(List.of("COMMIT", "block-0.mem", "block-1.mem", "block-2.mem", "block-3.mem", "block-4.mem",
                    "block-5.mem", "device-3.bin", "redo-a.log", "redo-b.log", "vmdesc.json"), names);
        }
    }

    /** A crash before the commit point leaves epoch 2 byte for byte; after it, open() completes epoch 3. */
    @ParameterizedTest
    @ValueSource(strings = {"redo-written", "device-written", "committed", "half-applied"})
    void crashAtEachCommitStep(String step) throws IOException {
        Path dir = storeAt(2);
        String epoch2;
        String epoch3;
        try (BackupStore s = stores.open(storeAt(3), VM)) {
            epoch3 = StoreDigest.of(s, touched);
        }
        try (BackupStore s = stores.open(dir, VM)) {
            epoch2 = StoreDigest.of(s, touched);
            s.setFaultInjector(at -> {
                if (at.equals(step)) {
                    throw new IOException("simulated crash at " + at);
                }
            });
            BackupStoreException e = assertThrows(BackupStoreException.class,
                    () -> s.commit(3, staging(3), rec.checkpoints.get(2).deviceState()));
            assertTrue(e.getMessage().contains("VM '" + VM + "', epoch 3") && e.getMessage().contains(step), e.getMessage());
        }
        boolean afterCommitPoint = step.equals("committed") || step.equals("half-applied");
        try (BackupStore s = stores.open(dir, VM)) {
            assertEquals(afterCommitPoint ? 3 : 2, s.committedEpoch());
            assertEquals(afterCommitPoint ? epoch3 : epoch2, StoreDigest.of(s, touched));
        }
        // Reopening again replays the named redo log once more: idempotent.
        try (BackupStore s = stores.open(dir, VM)) {
            assertEquals(afterCommitPoint ? epoch3 : epoch2, StoreDigest.of(s, touched));
        }
    }

    /** Deferred apply: the commit point is passed when it returns; a failed apply is replayed by open(). */
    @Test
    void deferredApplyFailureIsReportedAndReplayedOnOpen() throws IOException {
        Path dir = storeAt(2);
        String epoch3;
        try (BackupStore s = stores.open(storeAt(3), VM)) {
            epoch3 = StoreDigest.of(s, touched);
        }
        try (BackupStore s = stores.open(dir, VM)) {
            s.setFaultInjector(at -> {
                if (at.equals("half-applied")) {
                    throw new IOException("simulated crash at " + at);
                }
            });
            s.commitAndApplyLater(3, staging(3), rec.checkpoints.get(2).deviceState());
            assertEquals(3, s.committedEpoch());
            BackupStoreException e = assertThrows(BackupStoreException.class, s::awaitApplied);
            assertTrue(e.getMessage().contains("epoch 3") && e.getMessage().contains("applying"), e.getMessage());
            assertThrows(BackupStoreException.class, s::memoryFile, "memory files behind the commit are not handed out");
        }
        try (BackupStore s = stores.open(dir, VM)) {
            assertEquals(3, s.committedEpoch());
            assertEquals(epoch3, StoreDigest.of(s, touched));
        }
    }

    @Test
    void outOfOrderCommitIsRefused() throws IOException {
        try (BackupStore s = stores.open(storeAt(1), VM)) {
            BackupStoreException e = assertThrows(BackupStoreException.class,
                    () -> s.commit(3, staging(3), rec.checkpoints.get(2).deviceState()));
            assertTrue(e.getMessage().contains("out of order"), e.getMessage());
            assertEquals(1, s.committedEpoch());
        }
    }

    @Test
    void restoreStreamHasIgnoreSharedBlockListRomPagesDeviceStateAndVmdesc() throws IOException {
        try (BackupStore s = stores.open(storeAt(3), VM)) {
            byte[] stream = s.restoreStream();
            StreamInput in = new StreamInput(new ByteArrayInputStream(stream));
            MigrationStreamReader r = new MigrationStreamReader(in);
            List<RamBlock> blocks = new ArrayList<>();
            int[] pagesPerBlock = new int[6];
            r.setRamSink(new RamRecordSink() {
                @Override
                public void blockList(List<RamBlock> b) {
                    blocks.addAll(b);
                }

                @Override
                public void page(int block, long offset, byte[] data, int off) {
                    pagesPerBlock[block]++;
                }

                @Override
                public void filledPage(int block, long offset, int fill) {
                    pagesPerBlock[block]++;
                }
            });
            r.readHeader();
            StreamItem.Configuration config = (StreamItem.Configuration) r.next();
            assertEquals("pc-i440fx-10.0", config.machineType());
            assertEquals(List.of("x-ignore-shared"), config.capabilities());
            ByteArrayOutputStream devices = new ByteArrayOutputStream();
            StreamItem item;
            while (!((item = r.next()) instanceof StreamItem.VmDescription)) {
                if (item instanceof StreamItem.DeviceSection d) {
                    devices.writeBytes(d.raw());
                }
            }
            assertTrue(in.atEnd());
            assertEquals(rec.blocks.size(), blocks.size());
            assertTrue(blocks.stream().allMatch(b -> b.hasAddress()));
            assertEquals(0, pagesPerBlock[0], "pc.ram comes from the shared memory file, not the stream");
            for (int b = 1; b < blocks.size(); b++) {
                assertEquals(blocks.get(b).usedLength() / 4096, pagesPerBlock[b], blocks.get(b).name());
            }
            devices.write(0);
            assertArrayEquals(rec.checkpoints.get(2).deviceState(), devices.toByteArray());
            assertTrue(stream.length < 2 << 20, "restore stream: " + stream.length + " bytes");
        }
    }
}

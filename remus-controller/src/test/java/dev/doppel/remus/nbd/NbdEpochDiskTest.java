package dev.doppel.remus.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NbdEpochDiskTest {
    @TempDir
    Path dir;

    private Path image(int size) throws IOException {
        byte[] base = new byte[size];
        new Random(7).nextBytes(base);
        return Files.write(dir.resolve("disk.img"), base);
    }

    private static byte[] readAll(EpochDisk d) throws IOException {
        byte[] b = new byte[(int) d.size()];
        d.read(0, b, 0, b.length);
        return b;
    }

    @Test
    void randomWritesMatchAModelAndReachTheImageOnlyOnCommit() throws IOException {
        int size = 64 * 1024 + 1000;             // last block partial
        Path img = image(size);
        byte[] model = Files.readAllBytes(img);
        byte[] before = model.clone();
        Random r = new Random(42);
        try (EpochDisk d = EpochDisk.openRaw(img)) {
            for (int i = 0; i < 300; i++) {
                int off = r.nextInt(size);
                int len = Math.min(size - off, 1 + r.nextInt(9000));
                if (r.nextInt(4) == 0) {
                    d.writeZeroes(off, len);
                    Arrays.fill(model, off, off + len, (byte) 0);
                } else {
                    byte[] data = new byte[len];
                    r.nextBytes(data);
                    d.write(off, data, 0, len);
                    System.arraycopy(data, 0, model, off, len);
                }
            }
            assertArrayEquals(model, readAll(d));
            assertArrayEquals(before, Files.readAllBytes(img));
            assertEquals(300, d.stats().writesHeld());
            d.commit();
            assertArrayEquals(model, Files.readAllBytes(img));
            assertEquals(new EpochDisk.Stats(0, 0, 1, 0), d.stats());
        }
    }

    @Test
    void discardKeepsTheCommittedEpoch() throws IOException {
        Path img = image(16384);
        byte[] before = Files.readAllBytes(img);
        try (EpochDisk d = EpochDisk.openRaw(img)) {
            d.write(100, new byte[5000], 0, 5000);
            assertEquals(2 * EpochDisk.BLOCK, d.stats().bytesHeld());
            d.discard();
            assertArrayEquals(before, readAll(d));
            d.commit();
            assertArrayEquals(before, Files.readAllBytes(img));
            assertEquals(1, d.stats().discards());
        }
    }

    @Test
    void zeroBlockIsCopiedBeforeAPartialWrite() throws IOException {
        Path img = image(3 * EpochDisk.BLOCK);
        try (EpochDisk d = EpochDisk.openRaw(img)) {
            d.writeZeroes(0, 3 * EpochDisk.BLOCK);
            d.write(10, new byte[] {1, 2, 3}, 0, 3);
            byte[] all = readAll(d);
            assertEquals(1, all[10]);
            assertEquals(0, all[EpochDisk.BLOCK + 10]);   // the other zero blocks were not touched
            assertEquals(0, all[2 * EpochDisk.BLOCK + 10]);
        }
    }

    @Test
    void outOfRangeIsRejected() throws IOException {
        try (EpochDisk d = EpochDisk.openRaw(image(4096))) {
            assertThrows(IllegalArgumentException.class, () -> d.write(4000, new byte[200], 0, 200));
            assertThrows(IllegalArgumentException.class, () -> d.read(-1, new byte[1], 0, 1));
            assertThrows(IllegalArgumentException.class, () -> d.writeZeroes(Long.MAX_VALUE, 2));
        }
    }

    @Test
    void closedEpochCommitsAloneWhileTheNextEpochStaysHeld() throws IOException {
        int size = 8 * EpochDisk.BLOCK;
        Path img = image(size);
        byte[] committed = Files.readAllBytes(img);
        try (EpochDisk d = EpochDisk.openRaw(img)) {
            byte[] a = filled(6000, 1);
            d.write(1000, a, 0, a.length);                 // epoch N
            d.boundary();                                  // the FLUSH of N's VM stop
            byte[] b = filled(3000, 2);
            d.write(2500, b, 0, b.length);                 // epoch N+1, overlaps N's blocks partially
            byte[] newest = committed.clone();
            System.arraycopy(a, 0, newest, 1000, a.length);
            System.arraycopy(b, 0, newest, 2500, b.length);
            assertArrayEquals(newest, readAll(d), "reads see the open epoch over the closed one");

            d.commitClosed();                              // N commits: only N's bytes reach the image
            System.arraycopy(a, 0, committed, 1000, a.length);
            assertArrayEquals(committed, Files.readAllBytes(img));
            assertArrayEquals(newest, readAll(d));

            d.discard();                                   // N+1 never commits
            assertArrayEquals(committed, readAll(d));
            assertArrayEquals(committed, Files.readAllBytes(img));
        }
    }

    @Test
    void passThroughWritesTheImageUntilEpochsStart() throws IOException {
        Path img = image(4 * EpochDisk.BLOCK);
        byte[] expected = Files.readAllBytes(img);
        try (EpochDisk d = EpochDisk.openRaw(img, true)) {
            byte[] a = filled(5000, 3);
            d.write(10, a, 0, a.length);
            d.writeZeroes(3 * EpochDisk.BLOCK, 100);
            System.arraycopy(a, 0, expected, 10, a.length);
            Arrays.fill(expected, 3 * EpochDisk.BLOCK, 3 * EpochDisk.BLOCK + 100, (byte) 0);
            assertArrayEquals(expected, Files.readAllBytes(img), "initial synchronisation goes straight to the image");
            assertEquals(0, d.stats().bytesHeld());

            d.boundary();
            assertEquals(0, d.boundaries(), "the initial mirror's flushes are no epoch boundaries");
            d.startEpochs();
            d.write(0, filled(10, 4), 0, 10);
            assertArrayEquals(expected, Files.readAllBytes(img), "after the initial commit writes are held");
            assertEquals(EpochDisk.BLOCK, d.stats().bytesHeld());
            d.boundary();
            assertEquals(1, d.boundaries());
            d.discard();
            assertEquals(0, d.boundaries(), "a discarded epoch leaves no boundary behind");
        }
    }

    private static byte[] filled(int n, int seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void aFullEpochBufferRefusesWritesWithoutChangingAnything() throws IOException {
        Path img = image(64 * EpochDisk.BLOCK);
        byte[] before = Files.readAllBytes(img);
        try (EpochDisk d = EpochDisk.openRaw(img)) {
            d.limitHeldBytes(4 * EpochDisk.BLOCK);
            d.write(0, filled(3 * EpochDisk.BLOCK, 5), 0, 3 * EpochDisk.BLOCK);
            byte[] heldView = readAll(d);
            IOException e = assertThrows(IOException.class, () -> d.write(10 * EpochDisk.BLOCK, new byte[2 * EpochDisk.BLOCK], 0,
                    2 * EpochDisk.BLOCK));
            assertEquals(true, e.getMessage().contains("epoch buffer"), e.getMessage());
            assertArrayEquals(heldView, readAll(d));
            assertEquals(3 * EpochDisk.BLOCK, d.stats().bytesHeld());
            d.commit();   // a commit frees the buffer
            d.write(10 * EpochDisk.BLOCK, new byte[2 * EpochDisk.BLOCK], 0, 2 * EpochDisk.BLOCK);
            assertEquals(false, Arrays.equals(before, readAll(d)));
        }
    }
}

package dev.doppel.remus.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** QEMU's own NBD client (qemu-io, qemu-img) against NbdServer + EpochDisk. */
class NbdQemuClientTest extends NbdServerFixture {
    static final int SIZE = 4 * 1024 * 1024;

    @Override
    int size() {
        return SIZE;
    }

    @Override
    long seed() {
        return 1;
    }

    @AfterEach
    void stop() throws IOException {
        server.close();
        disk.close();
    }

    private void io(String... commands) throws Exception {
        QemuTools.Result r = QemuTools.qemuIo(server, commands);
        assertTrue(r.ok(), () -> "qemu-io " + Arrays.toString(commands) + " exit " + r.exitCode() + ":\n" + r.output());
    }

    private void assertImageIs(byte[] expected) throws IOException {
        byte[] actual = Files.readAllBytes(image);
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                throw new AssertionError("image differs from the model first at byte " + i);
            }
        }
    }

    @Test
    void writesAreReadBackHeldUntilCommitThenInTheImage() throws Exception {
        io("write -P 0x5a 0 64k", "read -P 0x5a 0 64k");
        io("read -P 0x5a 0 64k");                      // a new connection sees the held epoch too
        assertImageIs(base);
        assertEquals(64 * 1024, disk.stats().bytesHeld());

        disk.commit();
        byte[] model = base.clone();
        Arrays.fill(model, 0, 64 * 1024, (byte) 0x5a);
        assertImageIs(model);
        assertEquals(1, disk.stats().commits());
        io("read -P 0x5a 0 64k");
    }

    /**
     * QEMU's NBD client's FLUSH is the epoch boundary (the checkpoint's VM stop sends one for every disk
     * written since its last flush). Nothing reaches the image before a commit, and the commit takes
     * exactly the closed epoch. (qemu-io flushes once more as it closes; both boundaries are counted.)
     */
    @Test
    void aFlushClosesTheEpoch() throws Exception {
        io("write -P 0x5a 0 64k", "flush");
        assertImageIs(base);
        assertTrue(disk.boundaries() >= 1, "the flush closed the epoch");
        assertEquals(0, disk.stats().writesHeld(), "the open epoch is empty: the write went with the flush");
        assertEquals(64 * 1024, disk.stats().bytesHeld(), "the closed epoch holds the write until its commit");
        disk.commitClosed();
        byte[] model = base.clone();
        Arrays.fill(model, 0, 64 * 1024, (byte) 0x5a);
        assertImageIs(model);
        assertEquals(0, disk.boundaries());
        assertEquals(0, disk.stats().bytesHeld());
    }

    @Test
    void commitsFromAnotherThreadInterleaveWithAClientsWrites() throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread committer = new Thread(() -> {
            try {
                while (!stop.get()) {
                    disk.commit();
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "test-committer");
        committer.start();
        try {
            String[] cmds = new String[32];
            for (int i = 0; i < 32; i++) {
                cmds[i] = "write -P 0x" + Integer.toHexString(0x40 + i) + " " + (i * 65536 + 100) + " 65536";
            }
            io(cmds);
        } finally {
            stop.set(true);
            committer.join(5000);
        }
        assertEquals(null, failure.get());
        disk.commit();
        byte[] model = base.clone();
        for (int i = 0; i < 32; i++) {
            Arrays.fill(model, i * 65536 + 100, i * 65536 + 100 + 65536, (byte) (0x40 + i));
        }
        assertImageIs(model);
        assertTrue(disk.stats().commits() > 1);
    }

    @Test
    void discardDropsTheEpoch() throws Exception {
        io("write -P 0x5a 1M 64k");
        disk.discard();
        assertImageIs(base);
        QemuTools.Result r = compareExportWith(base, "base-copy.img");
        assertEquals(0, r.exitCode(), r.output());
    }

    @Test
    void writeZeroesTrimAndUnalignedWritesMergeWithTheBase() throws Exception {
        io("write -P 0x11 100 1000",          // inside one sector
           "write -P 0x22 4000 200",          // across a 4 KiB block boundary
           "write -z 8k 12k",                 // WRITE_ZEROES
           "write -P 0x33 10000 10",          // partial write into a zeroed block
           "discard 64k 64k",                 // TRIM
           "write -P 0x44 4194000 304",       // up to the last byte
           "read -P 0x11 100 1000", "read -P 0x22 4000 200", "read -P 0 128k 0");
        byte[] model = base.clone();
        Arrays.fill(model, 100, 1100, (byte) 0x11);
        Arrays.fill(model, 4000, 4200, (byte) 0x22);
        Arrays.fill(model, 8192, 8192 + 12288, (byte) 0);
        Arrays.fill(model, 10000, 10010, (byte) 0x33);
        Arrays.fill(model, 65536, 131072, (byte) 0);
        Arrays.fill(model, 4194000, 4194304, (byte) 0x44);
        assertImageIs(base);

        disk.commit();
        assertImageIs(model);
        // and QEMU reads back the model exactly
        QemuTools.Result r = compareExportWith(model, "model.img");
        assertEquals(0, r.exitCode(), r.output());
    }

    @Test
    void qemuImgSeesHeldWritesAndCopiesTheCommittedDisk() throws Exception {
        io("write -P 0x5a 2M 8k");
        QemuTools.Result differ = compareExportWith(base, "base-copy.img");
        assertEquals(1, differ.exitCode(), differ.output());   // 1 = images differ

        disk.commit();
        QemuTools.Result same = QemuTools.run(List.of("qemu-img", "compare", "-f", "raw", "-F", "raw",
                image.toString(), QemuTools.url(server)));
        assertEquals(0, same.exitCode(), same.output());

        Path out = dir.resolve("converted.img");
        QemuTools.Result conv = QemuTools.run(List.of("qemu-img", "convert", "-f", "raw", "-O", "raw",
                QemuTools.url(server), out.toString()));
        assertEquals(0, conv.exitCode(), conv.output());
        assertArrayEquals(Files.readAllBytes(image), Files.readAllBytes(out));
    }

    /** {@code qemu-img compare} of a raw file holding {@code contents} with the NBD export: 0 equal, 1 differ. */
    private QemuTools.Result compareExportWith(byte[] contents, String fileName) throws Exception {
        Path file = Files.write(dir.resolve(fileName), contents);
        return QemuTools.run(List.of("qemu-img", "compare", "-f", "raw", "-F", "raw", file.toString(), QemuTools.url(server)));
    }
}

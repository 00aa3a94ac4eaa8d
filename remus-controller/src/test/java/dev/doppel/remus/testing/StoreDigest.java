package dev.doppel.remus.testing;

import dev.doppel.remus.backup.BackupStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * A digest of what a store holds: committed epoch, device state, and the content of a given set of
 * pages (the pages a recording can touch; hashing 128 MiB per check would make the tests slow).
 * CRC-32C plus CRC-32 (64 bits) rather than SHA-256: tests compare states they produced themselves,
 * and the fuzz test digests the store after every commit of 2,000 replays.
 */
public final class StoreDigest {
    private StoreDigest() {
    }

    /** CRC-32C and CRC-32 side by side, behind the update() calls the SHA-256 version used. */
    private static final class TwoCrcs {
        final java.util.zip.CRC32C a = new java.util.zip.CRC32C();
        final java.util.zip.CRC32 b = new java.util.zip.CRC32();

        void update(byte[] x) {
            a.update(x);
            b.update(x);
        }

        byte[] digest() {
            return java.nio.ByteBuffer.allocate(16).putLong(a.getValue()).putLong(b.getValue()).array();
        }
    }

    public static String of(BackupStore store, List<long[]> pages) throws IOException {
        store.awaitApplied();
        TwoCrcs md = new TwoCrcs();
        md.update(Long.toString(store.committedEpoch()).getBytes());
        byte[] dev = store.deviceState();
        if (dev != null) {
            md.update(dev);
        }
        if (store.committedEpoch() >= 0) {
            byte[] page = new byte[4096];
            java.util.Map<Integer, FileChannel> open = new java.util.HashMap<>();
            try {
                for (long[] p : pages) {
                    FileChannel ch = open.get((int) p[0]);
                    if (ch == null) {
                        ch = FileChannel.open(store.blockFile((int) p[0]), StandardOpenOption.READ);
                        open.put((int) p[0], ch);
                    }
                    java.util.Arrays.fill(page, (byte) 0);
                    ch.read(ByteBuffer.wrap(page), p[1]);
                    md.update(page);
                }
            } finally {
                for (FileChannel ch : open.values()) {
                    ch.close();
                }
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** SHA-256 of a whole file. */
    public static String ofFile(Path f) throws IOException {
        MessageDigest md = sha256();
        try (var in = Files.newInputStream(f)) {
            byte[] buf = new byte[1 << 20];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}

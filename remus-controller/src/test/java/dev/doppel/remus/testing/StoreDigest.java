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
 */
public final class StoreDigest {
    private StoreDigest() {
    }

    public static String of(BackupStore store, List<long[]> pages) throws IOException {
        MessageDigest md = sha256();
        md.update(Long.toString(store.committedEpoch()).getBytes());
        byte[] dev = store.deviceState();
        if (dev != null) {
            md.update(dev);
        }
        if (store.committedEpoch() >= 0) {
            byte[] page = new byte[4096];
            for (long[] p : pages) {
                Path f = store.blockFile((int) p[0]);
                try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                    ByteBuffer bb = ByteBuffer.wrap(page);
                    java.util.Arrays.fill(page, (byte) 0);
                    ch.read(bb, p[1]);
                }
                md.update(page);
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

package dev.doppel.remus.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.doppel.remus.backup.BackupStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Map;

/** Assertions on a store's memory files. */
public final class StoreAssertions {
    private StoreAssertions() {
    }

    /** Every page in {@code pages} has that content in the store's memory files. */
    public static void assertPagesEqual(BackupStore store, Map<String, RecordedSession.Page> pages) throws IOException {
        store.awaitApplied();
        byte[] got = new byte[4096];
        for (RecordedSession.Page p : pages.values()) {
            try (FileChannel ch = FileChannel.open(store.blockFile(p.block()), StandardOpenOption.READ)) {
                ch.read(ByteBuffer.wrap(got), p.offset());
            }
            byte[] want = p.data();
            if (want == null) {
                want = new byte[4096];
                Arrays.fill(want, (byte) p.fill());
            }
            assertArrayEquals(want, got, "block " + p.block() + " offset " + p.offset());
        }
    }
}

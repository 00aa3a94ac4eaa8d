package dev.doppel.remus.testing;

import dev.doppel.remus.backup.BackupStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Store directories on tmpfs for one test, deleted afterwards ({@code @AutoClose}). */
public final class TempStores implements AutoCloseable {
    private final List<Path> dirs = new ArrayList<>();
    private final List<BackupStore> stores = new ArrayList<>();

    public Path newDir() throws IOException {
        Path base = Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
        Path d = Files.createTempDirectory(base, "doppel-store-test-");
        dirs.add(d);
        return d;
    }

    public BackupStore open(Path dir, String vm) throws IOException {
        BackupStore s = BackupStore.open(dir, vm);
        stores.add(s);
        return s;
    }

    public BackupStore fresh(String vm) throws IOException {
        return open(newDir(), vm);
    }

    @Override
    public void close() throws IOException {
        for (BackupStore s : stores) {
            s.close();
        }
        for (Path d : dirs) {
            BackupStore.deleteAll(d);
        }
    }
}

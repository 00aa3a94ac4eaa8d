package dev.doppel.clone.memory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

/** Creates the generation files of one fork family in a tmpfs directory. */
public final class GenerationStore {
    private final Path directory;
    private final AtomicInteger next = new AtomicInteger();

    public GenerationStore(Path directory) {
        this.directory = directory;
        try {
            Files.createDirectories(directory);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create generation directory " + directory, e);
        }
    }

    /**
     * A new, empty generation file path (QEMU creates and sizes it with {@code share=on}). The file
     * must not exist yet: QEMU would map stale contents.
     */
    public GenerationFile create() {
        int n = next.getAndIncrement();
        Path path = directory.resolve("gen-" + n + ".ram");
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove stale " + path, e);
        }
        return new GenerationFile(path, n);
    }

    public Path directory() {
        return directory;
    }
}

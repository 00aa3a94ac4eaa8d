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

    /**
     * The generation files a dead controller left here, by number (frozen ones are read-only); new
     * ones are numbered after them.
     */
    public java.util.Map<Integer, GenerationFile> existing() {
        java.util.Map<Integer, GenerationFile> out = new java.util.TreeMap<>();
        try (java.util.stream.Stream<Path> files = Files.list(directory)) {
            files.forEach(f -> {
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("gen-(\\d+)\\.ram").matcher(f.getFileName().toString());
                if (m.matches()) {
                    GenerationFile g = new GenerationFile(f, Integer.parseInt(m.group(1)));
                    if (!ownerMayWrite(f)) {   // not Files.isWritable: root may write any file
                        g.markFrozen();
                    }
                    out.put(g.number(), g);
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list generation directory " + directory, e);
        }
        out.keySet().stream().mapToInt(Integer::intValue).max().ifPresent(n -> next.set(Math.max(next.get(), n + 1)));
        return out;
    }

    private static boolean ownerMayWrite(Path f) {
        try {
            return Files.getPosixFilePermissions(f).contains(java.nio.file.attribute.PosixFilePermission.OWNER_WRITE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the mode of " + f, e);
        }
    }

    public Path directory() {
        return directory;
    }
}

package dev.doppel.clone.memory;

import dev.doppel.clone.RefCounted;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One guest-RAM file on tmpfs. While its VM runs on it with {@code share=on} it is live memory; at a
 * fork it is frozen and becomes the immutable snapshot that every clone (and the parent, which
 * continues as one more private clone) maps {@code share=off,readonly=on}.
 *
 * <p>Why frozen matters: a MAP_PRIVATE mapping still sees later writes to the file for pages it has
 * not written itself, so a parent that kept writing the file would leak its future memory into its
 * clones (seen as a clone kernel's {@code list_del corruption}). Freezing also drops write
 * permission on the file, so nothing can write it by mistake.
 */
public final class GenerationFile extends RefCounted {
    private static final Logger log = LoggerFactory.getLogger(GenerationFile.class);

    private final Path path;
    private final int number;
    private volatile boolean frozen;

    GenerationFile(Path path, int number) {
        this.path = path;
        this.number = number;
    }

    public Path path() {
        return path;
    }

    public int number() {
        return number;
    }

    public boolean isFrozen() {
        return frozen;
    }

    /** Marks the file immutable (mode 0400); called once the VM that wrote it has stopped for good. */
    public void freeze() {
        frozen = true;
        try {
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("r--------"));
        } catch (IOException e) {
            log.warn("gen={} cannot drop write permission on {}: {}", number, path, e.getMessage());
        }
    }

    /** A file found frozen (mode 0400) by a successor controller. */
    void markFrozen() {
        frozen = true;
    }

    /** Resident bytes of the file in tmpfs (what the generation costs the host). */
    public long allocatedBytes() {
        try {
            Object blocks = Files.getAttribute(path, "unix:blocks");
            return ((Number) blocks).longValue() * 512L;
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return -1;
        }
    }

    @Override
    protected void free() {
        try {
            Files.deleteIfExists(path);
            log.info("gen={} event=deleted path={}", number, path);
        } catch (IOException e) {
            log.warn("gen={} cannot delete {}: {}", number, path, e.getMessage());
        }
    }

    @Override
    public String toString() {
        return "generation " + number + " (" + path + ")";
    }
}

package dev.doppel.clone.disk;

import dev.doppel.clone.RefCounted;
import dev.doppel.hostnet.HostCommand;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One image in a fork family's qcow2 chain. A VM's process holds a reference to the image it writes;
 * an overlay holds one on its backing image. The family's base image is not owned by Doppel and is
 * never deleted; overlays are deleted when their last user is gone (unless kept on request).
 */
public final class DiskImage extends RefCounted {
    private static final Logger log = LoggerFactory.getLogger(DiskImage.class);

    private final Path path;
    private final String format;
    private final DiskImage backing;
    private final boolean owned;
    private volatile boolean keep;

    private DiskImage(Path path, String format, DiskImage backing, boolean owned) {
        this.path = path;
        this.format = format;
        this.backing = backing;
        this.owned = owned;
    }

    /** The user's image at the bottom of the chain (never deleted by Doppel). */
    public static DiskImage base(Path path, String format) {
        if (!Files.isRegularFile(path)) {
            throw new IllegalArgumentException("disk image " + path + " does not exist");
        }
        return new DiskImage(path, format, null, false);
    }

    /** Creates a qcow2 overlay on {@code backing} (which gains a user). */
    public static DiskImage overlay(Path path, DiskImage backing) {
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing.path().toString(),
                "-F", backing.format(), path.toString());
        backing.acquire();
        return new DiskImage(path, "qcow2", backing, true);
    }

    /**
     * An overlay made earlier (by a controller that died) on {@code backing}, which gains a user; Doppel
     * owns it as one it created.
     */
    public static DiskImage existingOverlay(Path path, DiskImage backing) {
        if (!Files.isRegularFile(path)) {
            throw new IllegalArgumentException("overlay " + path + " does not exist");
        }
        backing.acquire();
        return new DiskImage(path, "qcow2", backing, true);
    }

    /** Whether Doppel made this image (an overlay) and deletes it with its last user. */
    public boolean owned() {
        return owned;
    }

    public Path path() {
        return path;
    }

    public String format() {
        return format;
    }

    public DiskImage backing() {
        return backing;
    }

    /** Keep the file when the last user goes (e.g. to inspect a clone's writes). */
    public void keep() {
        keep = true;
    }

    @Override
    protected void free() {
        if (owned && !keep) {
            try {
                Files.deleteIfExists(path);
                log.debug("overlay deleted {}", path);
            } catch (IOException e) {
                log.warn("cannot delete overlay {}: {}", path, e.getMessage());
            }
        }
        if (backing != null) {
            backing.release();
        }
    }

    @Override
    public String toString() {
        return "disk image " + path;
    }
}

package dev.doppel.vm;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The real Debian guest disk (with PostgreSQL and qemu-guest-agent) that {@code scripts/build-real-guest}
 * builds into its cache; the benches and tests that use "a user's own VM" default to it.
 */
public final class RealGuestDisk {
    private RealGuestDisk() {
    }

    /** Where the setup puts it: {@code ~/.cache/doppel/real-guest/current/disk.qcow2}. */
    public static Path defaultPath() {
        return Path.of(System.getProperty("user.home"), ".cache", "doppel", "real-guest", "current", "disk.qcow2");
    }

    /** {@code given}, or the default when null; fails, saying how to get one, when the file is missing. */
    public static Path require(Path given) {
        Path disk = given != null ? given : defaultPath();
        if (!Files.isRegularFile(disk)) {
            throw new IllegalStateException("no real guest disk at " + disk + ": run ./scripts/setup (or scripts/build-real-guest)");
        }
        return disk.toAbsolutePath();
    }

    /** For tests: system property {@code doppel.real.guest.image} (set by scripts/test), else the default. */
    public static Path fromSystemProperty() {
        String p = System.getProperty("doppel.real.guest.image");
        return require(p == null || p.isBlank() || p.contains("${") ? null : Path.of(p));
    }
}

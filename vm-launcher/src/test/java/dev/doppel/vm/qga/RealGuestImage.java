package dev.doppel.vm.qga;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the tests find the real guest disk that scripts/build-real-guest made. */
public final class RealGuestImage {
    private RealGuestImage() {
    }

    /** System property {@code doppel.real.guest.image}, else the setup's default; fails if missing. */
    public static Path locate() {
        String p = System.getProperty("doppel.real.guest.image");
        Path image = p == null || p.isBlank() || p.contains("${")
                ? Path.of(System.getProperty("user.home"), ".cache", "doppel", "real-guest", "current", "disk.qcow2")
                : Path.of(p);
        if (!Files.isRegularFile(image)) {
            throw new IllegalStateException("no real guest disk at " + image + ": run ./scripts/setup (or scripts/build-real-guest)");
        }
        return image.toAbsolutePath();
    }
}

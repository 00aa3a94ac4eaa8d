package dev.doppel.vm.qga;

import java.nio.file.Path;

/** Where the tests find the real guest disk that scripts/build-real-guest made. */
public final class RealGuestImage {
    private RealGuestImage() {
    }

    /** System property {@code doppel.real.guest.image}, else the setup's default; fails if missing. */
    public static Path locate() {
        return dev.doppel.vm.RealGuestDisk.fromSystemProperty();
    }
}

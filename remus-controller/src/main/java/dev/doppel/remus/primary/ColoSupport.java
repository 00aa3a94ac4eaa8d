package dev.doppel.remus.primary;

import dev.doppel.qmp.QemuVersion;
import dev.doppel.vm.Accelerator;

/**
 * Whether a QEMU binary can be a COLO primary. Two defects stand in the way (qemu-patches/):
 * 10.0.0–10.0.6 never enter COLO (fixed upstream in 10.0.7), and under TCG every version so far
 * deadlocks at the end of the first checkpoint (patch 0002, not upstream). Doppel's patched build
 * says so in its version string.
 */
public final class ColoSupport {
    /** Marker that scripts/build-qemu-colo puts into the package version ({@code --with-pkgversion}). */
    static final String PATCHED_MARKER = "Doppel COLO patches";

    private ColoSupport() {
    }

    /** Null if the binary can be a COLO primary under {@code accel}, else why not (one sentence). */
    public static String problem(QemuVersion version, Accelerator accel) {
        boolean patched = version.pkg() != null && version.pkg().contains(PATCHED_MARKER);
        if (patched) {
            return null;
        }
        if (!version.atLeast(10, 0, 7)) {
            return "QEMU " + version + " never enters COLO as a primary (fixed upstream in 10.0.7, commit 0b5bf4ea76); "
                    + "use the patched build from scripts/build-qemu-colo";
        }
        if (accel == Accelerator.TCG) {
            return "QEMU " + version + " deadlocks at the end of the first COLO checkpoint under TCG "
                    + "(qemu-patches/0002, not upstream); use the patched build from scripts/build-qemu-colo";
        }
        return null;
    }
}

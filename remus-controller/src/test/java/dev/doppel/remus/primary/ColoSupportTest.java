package dev.doppel.remus.primary;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.qmp.QemuVersion;
import dev.doppel.vm.Accelerator;
import org.junit.jupiter.api.Test;

/** Which QEMU may be a COLO primary: the two defects of qemu-patches/ decide. */
class ColoSupportTest {
    private static final QemuVersion DEBIAN_STOCK = new QemuVersion(10, 0, 2, "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1");
    private static final QemuVersion PATCHED = new QemuVersion(10, 0, 2,
            "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1, Doppel COLO patches a026bbe0a8e8499d");

    @Test
    void stockDebianBuildIsRefusedEverywhere() {
        String tcg = ColoSupport.problem(DEBIAN_STOCK, Accelerator.TCG);
        assertNotNull(tcg);
        assertTrue(tcg.contains("10.0.7") && tcg.contains("build-qemu-colo"), tcg);
        assertNotNull(ColoSupport.problem(DEBIAN_STOCK, Accelerator.KVM));
    }

    @Test
    void patchedBuildIsAccepted() {
        assertNull(ColoSupport.problem(PATCHED, Accelerator.TCG));
        assertNull(ColoSupport.problem(PATCHED, Accelerator.KVM));
    }

    @Test
    void fixedUpstreamReleaseNeedsThePatchOnlyUnderTcg() {
        QemuVersion upstream = new QemuVersion(10, 0, 7, "");
        assertNull(ColoSupport.problem(upstream, Accelerator.KVM), "a fixed upstream QEMU on KVM must do");
        String tcg = ColoSupport.problem(upstream, Accelerator.TCG);
        assertNotNull(tcg);
        assertTrue(tcg.contains("deadlock"), tcg);
    }
}

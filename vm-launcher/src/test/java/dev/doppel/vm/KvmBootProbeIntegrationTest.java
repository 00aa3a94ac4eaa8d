package dev.doppel.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The boot probe decides by booting, within its deadline, whatever the host's KVM does. */
@Tag("integration")
@Timeout(120)
class KvmBootProbeIntegrationTest {
    @Test
    void tcgBootsTheGuest() {
        KvmBootProbe.Result r = KvmBootProbe.probe(QemuBinary.stock(), Accelerator.TCG, GuestImage.locate(), Duration.ofSeconds(60));
        assertTrue(r.bootsGuests(), r.detail());
    }

    @Test
    void kvmProbeNeverHangsAndAgreesWithTheHostFacts() {
        // On a PVM or nested host without vmx/svm the guest hangs under KVM (or QEMU refuses): the
        // probe must come back within its deadline and say no. On a real KVM host it must say yes.
        Duration deadline = Duration.ofSeconds(15);
        long t0 = System.nanoTime();
        KvmBootProbe.Result r = KvmBootProbe.probe(QemuBinary.stock(), Accelerator.KVM, GuestImage.locate(), deadline);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms < deadline.toMillis() + 15_000, "probe took " + ms + " ms");
        boolean hostLooksUsable = new AcceleratorProbe().detect().accelerator() == Accelerator.KVM;
        assertEquals(hostLooksUsable, r.bootsGuests(), r.detail());
        AcceleratorChoice confirmed = KvmBootProbe.confirm(new AcceleratorChoice(Accelerator.KVM, "test"),
                QemuBinary.stock(), GuestImage.locate(), deadline);
        if (!r.bootsGuests()) {
            assertEquals(Accelerator.TCG, confirmed.accelerator());
            assertTrue(confirmed.reason().contains("boot probe failed"), confirmed.reason());
        }
        assertFalse(confirmed.reason().isBlank());
    }
}

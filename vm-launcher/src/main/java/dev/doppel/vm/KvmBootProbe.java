package dev.doppel.vm;

import java.time.Duration;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Proves that KVM really runs guests by booting Doppel's guest under it with a deadline.
 *
 * <p>CPU flags are not enough: on a PVM host, or a nested host with broken virtualisation, KVM
 * initialises, firmware runs, and the guest kernel then hangs without a word. The probe waits for
 * the guest's {@code DOPPEL-READY} line; a guest that does not get there in time is killed and the
 * probe reports failure. It never hangs.
 */
public final class KvmBootProbe {
    private static final Logger log = LoggerFactory.getLogger(KvmBootProbe.class);
    private static final Pattern READY = Pattern.compile("DOPPEL-READY");

    private KvmBootProbe() {
    }

    /** The probe's verdict and how long it took. */
    public record Result(boolean bootsGuests, long millis, String detail) {
    }

    /** Boots the guest under {@code accel} and waits at most {@code deadline} for it to be ready. */
    public static Result probe(QemuBinary qemu, Accelerator accel, GuestImage guest, Duration deadline) {
        long t0 = System.nanoTime();
        VmSpec spec = VmSpec.builder("accel-probe-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000)
                .memoryMiB(128).guestAgent(false).boot(guest.workload("none")).build();
        try (VmProcess vm = VmProcess.start(spec, qemu, accel)) {
            vm.console().awaitLine(READY, deadline);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            return new Result(true, ms, "guest booted under " + accel.qemuName() + " in " + ms + " ms");
        } catch (TimeoutException e) {
            long ms = (System.nanoTime() - t0) / 1_000_000;
            return new Result(false, ms, "guest did not boot under " + accel.qemuName() + " within " + deadline.toMillis() + " ms");
        } catch (VmStartException e) {
            long ms = (System.nanoTime() - t0) / 1_000_000;
            return new Result(false, ms, "QEMU failed under " + accel.qemuName() + ": " + e.getMessage());
        }
    }

    /**
     * Confirms a KVM decision by booting; falls back to TCG with one log line if the guest does not
     * come up. A TCG decision is returned unchanged.
     */
    public static AcceleratorChoice confirm(AcceleratorChoice choice, QemuBinary qemu, GuestImage guest, Duration deadline) {
        if (choice.accelerator() != Accelerator.KVM) {
            return choice;
        }
        Result r = probe(qemu, Accelerator.KVM, guest, deadline);
        if (r.bootsGuests()) {
            return choice;
        }
        AcceleratorChoice tcg = new AcceleratorChoice(Accelerator.TCG, "falling back to TCG: KVM boot probe failed: " + r.detail());
        log.warn("accelerator=tcg reason=\"{}\"", tcg.reason());
        return tcg;
    }
}

package dev.doppel.vm;

import java.util.Map;

/**
 * The entry point controllers use to start VMs: one QEMU binary, one accelerator decision (made
 * once per launcher, logged once), and Doppel's guest image.
 */
public final class VmLauncher {
    private final QemuBinary qemu;
    private final AcceleratorChoice accel;

    public VmLauncher(QemuBinary qemu, AcceleratorChoice accel) {
        this.qemu = qemu;
        this.accel = accel;
    }

    /** How long the KVM boot probe may take before KVM is declared unusable. */
    static final java.time.Duration BOOT_PROBE_DEADLINE = java.time.Duration.ofSeconds(30);

    /**
     * Stock QEMU; accelerator {@code forced}, or detected from host facts and — when that says KVM —
     * confirmed by booting the guest once under KVM (see {@link KvmBootProbe}).
     */
    public static VmLauncher create(Accelerator forced) {
        QemuBinary qemu = QemuBinary.stock();
        AcceleratorChoice choice = new AcceleratorProbe().choose(forced);
        if (forced == null) {
            choice = KvmBootProbe.confirm(choice, qemu, GuestImage.locate(), BOOT_PROBE_DEADLINE);
        }
        return new VmLauncher(qemu, choice);
    }

    /** Stock QEMU, accelerator from {@code DOPPEL_ACCEL} (kvm, tcg, auto) or as {@link #create}. */
    public static VmLauncher fromEnvironment() {
        return create(Accelerator.parseOrAuto(System.getenv("DOPPEL_ACCEL")));
    }

    /**
     * The same accelerator choice on Doppel's COLO-patched QEMU ({@link PatchedQemuPrefix}): what a
     * Remus primary, and a failed-over VM that may be protected again, must run on.
     */
    public VmLauncher onPatchedQemu() throws java.io.IOException, InterruptedException {
        return new VmLauncher(QemuBinary.atPrefix(PatchedQemuPrefix.find()), accel);
    }

    public QemuBinary qemu() {
        return qemu;
    }

    public AcceleratorChoice accelerator() {
        return accel;
    }

    public VmProcess start(VmSpec spec) {
        return VmProcess.start(spec, qemu, accel.accelerator());
    }

    public VmProcess start(VmSpec spec, VmProcess.StartOptions options) {
        return VmProcess.start(spec, qemu, accel.accelerator(), options);
    }

    /** A spec for Doppel's guest running {@code workload} with extra {@code doppel.*} parameters. */
    public static VmSpec.Builder guestSpec(String name, GuestImage image, String workload, Map<String, String> params) {
        Map<String, String> all = new java.util.LinkedHashMap<>(params);
        all.put("doppel.run", workload);
        all.putIfAbsent("doppel.hostname", name);
        return VmSpec.builder(name).boot(image.boot(all));
    }
}

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

    /** Stock QEMU, accelerator from {@code forced} or detected. */
    public static VmLauncher create(Accelerator forced) {
        return new VmLauncher(QemuBinary.stock(), new AcceleratorProbe().choose(forced));
    }

    /** Stock QEMU, accelerator from {@code DOPPEL_ACCEL} or detected. */
    public static VmLauncher fromEnvironment() {
        return new VmLauncher(QemuBinary.stock(), new AcceleratorProbe().chooseFromEnvironment());
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

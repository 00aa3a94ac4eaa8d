package dev.doppel.vm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decides whether KVM can really run guests on this host, falling back to TCG.
 *
 * <p>Why not just "does /dev/kvm exist": on a PVM host (the {@code kvm_pvm} module, no
 * {@code vmx}/{@code svm} CPU flag) KVM initialises, SeaBIOS runs, and an ordinary 64-bit guest
 * kernel then hangs silently after its real-mode setup. A controller that trusted /dev/kvm would
 * hang forever waiting for the guest. So KVM is chosen only when the CPU advertises hardware
 * virtualisation and the host is not a PVM host; the override {@code DOPPEL_ACCEL=kvm|tcg} (or
 * {@code --accel}) forces a choice.
 */
public final class AcceleratorProbe {
    private static final Logger log = LoggerFactory.getLogger(AcceleratorProbe.class);
    private static final Pattern HW_VIRT_FLAG = Pattern.compile("^flags\\s*:.*\\b(vmx|svm)\\b", Pattern.MULTILINE);

    private final Path devKvm;
    private final Path cpuinfo;
    private final Path pvmModule;

    public AcceleratorProbe() {
        this(Path.of("/dev/kvm"), Path.of("/proc/cpuinfo"), Path.of("/sys/module/kvm_pvm"));
    }

    /** For tests: the three host facts the decision reads. */
    AcceleratorProbe(Path devKvm, Path cpuinfo, Path pvmModule) {
        this.devKvm = devKvm;
        this.cpuinfo = cpuinfo;
        this.pvmModule = pvmModule;
    }

    /** The accelerator to use given an optional forced choice (null = decide). Logs one line. */
    public AcceleratorChoice choose(Accelerator forced) {
        AcceleratorChoice choice = forced != null ? forcedChoice(forced) : detect();
        log.info("accelerator={} reason=\"{}\"", choice.accelerator().qemuName(), choice.reason());
        return choice;
    }

    /** Honours {@code DOPPEL_ACCEL} (kvm, tcg, auto) from the environment, else detects. */
    public AcceleratorChoice chooseFromEnvironment() {
        return choose(Accelerator.parseOrAuto(System.getenv("DOPPEL_ACCEL")));
    }

    private AcceleratorChoice forcedChoice(Accelerator forced) {
        if (forced == Accelerator.KVM && !Files.exists(devKvm)) {
            throw new IllegalStateException("--accel kvm requested but " + devKvm + " does not exist");
        }
        return new AcceleratorChoice(forced, "forced by the operator");
    }

    /** Detection from host facts only; never starts a guest, so it cannot hang. */
    public AcceleratorChoice detect() {
        if (!Files.exists(devKvm)) {
            return new AcceleratorChoice(Accelerator.TCG, "falling back to TCG: " + devKvm + " does not exist");
        }
        if (!Files.isReadable(devKvm) || !Files.isWritable(devKvm)) {
            return new AcceleratorChoice(Accelerator.TCG, "falling back to TCG: no read/write access to " + devKvm);
        }
        if (Files.isDirectory(pvmModule)) {
            return new AcceleratorChoice(Accelerator.TCG,
                    "falling back to TCG: " + devKvm + " is a PVM host (kvm_pvm loaded); ordinary guests hang under it");
        }
        String flags;
        try {
            flags = Files.readString(cpuinfo);
        } catch (IOException e) {
            return new AcceleratorChoice(Accelerator.TCG, "falling back to TCG: cannot read " + cpuinfo + ": " + e.getMessage());
        }
        if (!HW_VIRT_FLAG.matcher(flags).find()) {
            return new AcceleratorChoice(Accelerator.TCG,
                    "falling back to TCG: " + devKvm + " exists but the CPU has no vmx/svm flag (nested or PVM host)");
        }
        return new AcceleratorChoice(Accelerator.KVM, "KVM: " + devKvm + " usable and CPU has hardware virtualisation");
    }
}

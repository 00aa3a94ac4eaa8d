package dev.doppel.cli;

import dev.doppel.vm.Accelerator;
import picocli.CommandLine.Option;

/** {@code --accel kvm|tcg|auto}, shared by every command that starts a VM. */
public final class AccelOption {
    @Option(names = "--accel", defaultValue = "${env:DOPPEL_ACCEL:-auto}",
            description = "kvm, tcg or auto (default: auto = KVM only if it really runs guests here)")
    String accel;

    public Accelerator forced() {
        return Accelerator.parseOrAuto(accel);
    }
}

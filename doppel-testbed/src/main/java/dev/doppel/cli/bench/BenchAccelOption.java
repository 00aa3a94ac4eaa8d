package dev.doppel.cli.bench;

import dev.doppel.vm.Accelerator;
import picocli.CommandLine.Option;

/**
 * {@code --accel kvm|tcg|auto} for the benches: the same option as the CLI's {@code AccelOption}
 * (doppel-cli depends on this module, not the reverse, so the benches declare it themselves).
 */
public final class BenchAccelOption {
    @Option(names = "--accel", defaultValue = "${env:DOPPEL_ACCEL:-auto}",
            description = "kvm, tcg or auto (default: auto = KVM only if it really runs guests here)")
    String accel;

    public Accelerator forced() {
        return Accelerator.parseOrAuto(accel);
    }
}

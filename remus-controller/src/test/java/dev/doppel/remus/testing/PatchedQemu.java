package dev.doppel.remus.testing;

import dev.doppel.vm.QemuBinary;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.nio.file.Path;

/** The COLO-patched QEMU built by scripts/build-qemu-colo (cached: the script answers in < 1 s). */
public final class PatchedQemu {
    private static volatile VmLauncher launcher;

    private PatchedQemu() {
    }

    public static VmLauncher launcher() throws IOException, InterruptedException {
        if (launcher == null) {
            synchronized (PatchedQemu.class) {
                if (launcher == null) {
                    launcher = new VmLauncher(QemuBinary.atPrefix(prefix()), TestVms.launcher().accelerator());
                }
            }
        }
        return launcher;
    }

    private static Path prefix() throws IOException, InterruptedException {
        return dev.doppel.vm.PatchedQemuPrefix.find();
    }
}

package dev.doppel.remus.testing;

import dev.doppel.vm.QemuBinary;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

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
        Path root = Path.of("").toAbsolutePath();
        while (root != null && !Files.exists(root.resolve("scripts/build-qemu-colo"))) {
            root = root.getParent();
        }
        if (root == null) {
            throw new IllegalStateException("scripts/build-qemu-colo not found above " + Path.of("").toAbsolutePath());
        }
        Process p = new ProcessBuilder(root.resolve("scripts/build-qemu-colo").toString())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException("scripts/build-qemu-colo failed");
        }
        List<String> lines = out.lines().filter(l -> !l.isBlank()).toList();
        return Path.of(lines.get(lines.size() - 1).trim());
    }
}

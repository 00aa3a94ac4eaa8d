package dev.doppel.vm;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Where scripts/build-qemu-colo put the patched QEMU (it answers from its cache in a few seconds). */
public final class PatchedQemuPrefix {
    private PatchedQemuPrefix() {
    }

    public static Path find() throws IOException, InterruptedException {
        String root = System.getProperty("doppel.root");
        if (root == null) {
            throw new IllegalStateException("doppel.root is not set (run through bin/doppel)");
        }
        Path script = Path.of(root, "scripts", "build-qemu-colo");
        if (!Files.isExecutable(script)) {
            throw new IllegalStateException(script + " missing");
        }
        Process p = new ProcessBuilder(script.toString()).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException("scripts/build-qemu-colo failed: run ./scripts/setup");
        }
        List<String> lines = out.lines().filter(l -> !l.isBlank()).toList();
        return Path.of(lines.get(lines.size() - 1).trim());
    }
}

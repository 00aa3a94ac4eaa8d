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

    /**
     * Asks {@code scripts/build-qemu-colo} (from {@code doppel.root}, which bin/doppel sets, else the first
     * directory above the working directory that has it: a test's module directory) for the prefix.
     */
    public static Path find() throws IOException, InterruptedException {
        Path script = script();
        Process p = new ProcessBuilder(script.toString()).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException("scripts/build-qemu-colo failed: run ./scripts/setup");
        }
        List<String> lines = out.lines().filter(l -> !l.isBlank()).toList();
        return Path.of(lines.get(lines.size() - 1).trim());
    }

    private static Path script() {
        String root = System.getProperty("doppel.root");
        if (root != null) {
            Path script = Path.of(root, "scripts", "build-qemu-colo");
            if (!Files.isExecutable(script)) {
                throw new IllegalStateException(script + " missing");
            }
            return script;
        }
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isExecutable(dir.resolve("scripts/build-qemu-colo"))) {
                return dir.resolve("scripts/build-qemu-colo");
            }
        }
        throw new IllegalStateException("doppel.root is not set (run through bin/doppel) and no scripts/build-qemu-colo above "
                + Path.of("").toAbsolutePath());
    }
}

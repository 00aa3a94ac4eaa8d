package dev.doppel.vm;

import dev.doppel.qmp.QemuVersion;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One {@code qemu-system-x86_64} executable: where it is, which version it is, and the firmware
 * directories it needs ({@code -L}) when it is a locally built (patched) binary whose compiled-in
 * data directory holds no firmware.
 */
public final class QemuBinary {
    /** Debian's firmware locations; a patched build under a private prefix needs them via -L. */
    private static final List<Path> DEBIAN_FIRMWARE_DIRS =
            List.of(Path.of("/usr/share/qemu"), Path.of("/usr/share/seabios"), Path.of("/usr/lib/ipxe/qemu"));

    private final Path executable;
    private final List<Path> firmwareDirs;
    private static final java.util.regex.Pattern VERSION_LINE =
            java.util.regex.Pattern.compile("QEMU emulator version (\\d+)\\.(\\d+)\\.(\\d+)\\s*(?:\\((.*)\\))?");

    private volatile QemuVersion version;

    private QemuBinary(Path executable, List<Path> firmwareDirs) {
        this.executable = executable;
        this.firmwareDirs = List.copyOf(firmwareDirs);
    }

    /** The stock binary: {@code $DOPPEL_QEMU} if set, else {@code qemu-system-x86_64} from PATH. */
    public static QemuBinary stock() {
        String override = System.getenv("DOPPEL_QEMU");
        if (override != null && !override.isBlank()) {
            return new QemuBinary(Path.of(override), List.of());
        }
        return new QemuBinary(findOnPath("qemu-system-x86_64"), List.of());
    }

    /** A binary built under a private prefix (e.g. the patched COLO build): firmware from Debian's dirs. */
    public static QemuBinary atPrefix(Path prefix) {
        Path exe = prefix.resolve("bin/qemu-system-x86_64");
        if (!Files.isExecutable(exe)) {
            throw new IllegalStateException("no QEMU at " + exe + " (run ./scripts/setup)");
        }
        return new QemuBinary(exe, DEBIAN_FIRMWARE_DIRS.stream().filter(Files::isDirectory).toList());
    }

    private static Path findOnPath(String name) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : path.split(":")) {
            Path candidate = Path.of(dir, name);
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        throw new IllegalStateException(name + " not found on PATH: run ./scripts/setup (installs QEMU 10 from bookworm-backports)");
    }

    public Path executable() {
        return executable;
    }

    public List<Path> firmwareDirs() {
        return firmwareDirs;
    }

    /** Runs {@code --version} once (cached). */
    public QemuVersion version() {
        QemuVersion v = version;
        if (v == null) {
            v = parseVersionOutput(runVersion());
            version = v;
        }
        return v;
    }

    /** Parses the first line of {@code qemu-system-x86_64 --version}. */
    static QemuVersion parseVersionOutput(String output) {
        java.util.regex.Matcher m = VERSION_LINE.matcher(output);
        if (!m.find()) {
            throw new IllegalArgumentException("not a QEMU --version output: '" + output.lines().findFirst().orElse("") + "'");
        }
        return new QemuVersion(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)),
                m.group(4) == null ? "" : m.group(4));
    }

    private String runVersion() {
        try {
            Process p = new ProcessBuilder(executable.toString(), "--version").redirectErrorStream(true).start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException(executable + " --version did not finish in 10 s");
            }
            return new String(out, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + executable + " --version: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running " + executable + " --version", e);
        }
    }

    /** Arguments that precede everything else on the command line: the executable and -L dirs. */
    List<String> leadingArguments() {
        List<String> args = new ArrayList<>();
        args.add(executable.toString());
        for (Path dir : firmwareDirs) {
            args.add("-L");
            args.add(dir.toString());
        }
        return args;
    }

    @Override
    public String toString() {
        return executable.toString();
    }
}

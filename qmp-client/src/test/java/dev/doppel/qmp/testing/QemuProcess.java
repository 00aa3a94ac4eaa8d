package dev.doppel.qmp.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real QEMU for integration tests and transcript recording: no guest, stopped ({@code -S}), 64 MiB, TCG,
 * QMP on a unix socket in a test directory. Always {@link #close()} it (kills the process).
 */
public final class QemuProcess implements AutoCloseable {

    public static final String BINARY = System.getProperty("doppel.qemu", "qemu-system-x86_64");
    private static Boolean available;

    private final Process process;
    private final Path qmpSocket;
    private final Path log;
    private final List<String> commandLine;

    private QemuProcess(Process process, Path qmpSocket, Path log, List<String> commandLine) {
        this.process = process;
        this.qmpSocket = qmpSocket;
        this.log = log;
        this.commandLine = commandLine;
    }

    /** The standard command line used for tests and recordings ({@code SOCKET} is replaced). */
    public static List<String> standardArgs(Path socket) {
        return List.of(BINARY, "-machine", "pc-i440fx-10.0", "-accel", "tcg", "-nodefaults", "-no-user-config",
                "-display", "none", "-S", "-m", "64", "-qmp", "unix:" + socket + ",server=on,wait=off");
    }

    /** True if the QEMU binary runs ({@code --version}); cached. */
    public static synchronized boolean available() {
        if (available == null) {
            try {
                Process p = new ProcessBuilder(BINARY, "--version").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                available = p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
            } catch (IOException | InterruptedException e) {
                available = false;
            }
        }
        return available;
    }

    /** Starts QEMU with {@link #standardArgs} plus {@code extra}; the socket is {@code dir/qmp.sock}. */
    public static QemuProcess start(Path dir, String... extra) throws IOException {
        Files.createDirectories(dir);
        Path sock = dir.resolve("qmp.sock");
        Path log = dir.resolve("qemu.log");
        List<String> cmd = new ArrayList<>(standardArgs(sock));
        cmd.addAll(List.of(extra));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new QemuProcess(p, sock, log, cmd);
    }

    public Path qmpSocket() {
        return qmpSocket;
    }

    public Process process() {
        return process;
    }

    public List<String> commandLine() {
        return commandLine;
    }

    /** QEMU's stdout+stderr so far. */
    public String output() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** Waits for QEMU to exit by itself (e.g. after quit). */
    public boolean waitForExit(Duration d) throws InterruptedException {
        return process.waitFor(d.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Kills QEMU (SIGKILL) and waits for it. */
    @Override
    public void close() {
        process.destroyForcibly();
        try {
            process.waitFor(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

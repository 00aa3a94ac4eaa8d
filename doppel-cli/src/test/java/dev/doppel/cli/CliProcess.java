package dev.doppel.cli;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * {@code bin/doppel ARGS} as a child JVM with the test's class path, its output (stdout and stderr)
 * collected line by line. Closing it sends SIGTERM (the CLI cleans up) and SIGKILL after a minute.
 */
final class CliProcess implements AutoCloseable {
    private final Process process;
    private final List<String> output = new CopyOnWriteArrayList<>();
    private final String label;
    private final Thread reader;

    private CliProcess(String label, Process process) {
        this.label = label;
        this.process = process;
        this.reader = new Thread(this::readOutput, "cli-output-" + label);
        reader.setDaemon(true);
        reader.start();
    }

    static CliProcess start(String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                "-Ddoppel.guest.dir=" + System.getProperty("doppel.guest.dir"), "-Ddoppel.root=" + projectRoot(),
                DoppelCli.class.getName()));
        command.addAll(List.of(args));
        return new CliProcess(args[0] + (args.length > 1 ? " " + args[1] : ""),
                new ProcessBuilder(command).redirectErrorStream(true).start());
    }

    /** Runs a CLI command to its end; fails the test unless it exits 0 within {@code seconds}. */
    static List<String> run(int seconds, String... args) throws IOException, InterruptedException {
        try (CliProcess p = start(args)) {
            if (!p.process.waitFor(seconds, TimeUnit.SECONDS)) {
                fail("'doppel " + String.join(" ", args) + "' did not end within " + seconds + " s: " + p.tail());
            }
            p.reader.join(5000);   // the reader takes the last lines
            if (p.process.exitValue() != 0) {
                fail("'doppel " + String.join(" ", args) + "' exited " + p.process.exitValue() + ": " + p.tail());
            }
            return List.copyOf(p.output);
        }
    }

    /** The checkout this test runs in (Maven runs a module's tests in the module's directory). */
    private static Path projectRoot() {
        Path dir = Path.of(System.getProperty("user.dir")).toAbsolutePath();
        return java.nio.file.Files.exists(dir.resolve("bin/doppel")) ? dir : dir.getParent();
    }

    Process process() {
        return process;
    }

    List<String> output() {
        return output;
    }

    boolean printed(Pattern line) {
        return output.stream().anyMatch(l -> line.matcher(l).find());
    }

    /** Waits for a line containing {@code text}; fails if the CLI ends first or the time is up. */
    void awaitOutput(String text, int seconds) throws InterruptedException {
        awaitOutput(Pattern.compile(Pattern.quote(text)), seconds);
    }

    void awaitOutput(Pattern line, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (printed(line)) {
                return;
            }
            if (!process.isAlive()) {
                fail("'" + label + "' ended (" + process.exitValue() + ") before printing /" + line + "/: " + tail());
            }
            Thread.sleep(100);
        }
        fail("no /" + line + "/ from '" + label + "' within " + seconds + " s: " + tail());
    }

    String tail() {
        int n = output.size();
        return "\n" + String.join("\n", output.subList(Math.max(0, n - 25), n));
    }

    private void readOutput() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                output.add(line);
            }
        } catch (IOException ignored) {
            // the CLI ended
        }
    }

    /** Stops the CLI, and keeps its whole output in target/cli-logs/ for the reader of a failure. */
    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroy();
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
        reader.join(5000);
        try {
            Path logs = java.nio.file.Files.createDirectories(Path.of("target", "cli-logs"));
            java.nio.file.Files.write(logs.resolve(label.replace(' ', '-') + "-" + process.pid() + ".log"), output);
        } catch (IOException e) {
            System.err.println("cannot keep the output of '" + label + "': " + e.getMessage());
        }
    }
}

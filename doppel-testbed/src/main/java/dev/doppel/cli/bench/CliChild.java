package dev.doppel.cli.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * This CLI run as a child JVM ({@code doppel ARGS}), for benches that measure the product the way an
 * operator runs it: separate {@code vm start}, {@code backup serve} and {@code protect} processes. Its
 * output is collected line by line; {@link #close} sends SIGTERM (the child cleans up) and SIGKILL
 * after a minute.
 */
public final class CliChild implements AutoCloseable {
    /** bin/doppel's main class, by name: doppel-cli depends on this module, not the reverse. */
    private static final String CLI_MAIN = "dev.doppel.cli.DoppelCli";

    private final String label;
    private final Process process;
    private final List<String> output = new CopyOnWriteArrayList<>();
    private final Thread reader;
    private volatile Path keepIn;

    private CliChild(String label, Process process) {
        this.label = label;
        this.process = process;
        this.reader = new Thread(this::read, "cli-child-" + label);
        reader.setDaemon(true);
        reader.start();
    }

    public static CliChild start(String... args) throws IOException {
        return startWithEnvironment(java.util.Map.of(), args);
    }

    /** As {@link #start}, with extra environment variables (e.g. DOPPEL_RUN_DIR: another "host"'s run directories). */
    public static CliChild startWithEnvironment(java.util.Map<String, String> env, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                // under Maven's test runner, the test class path it was given
                "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                "-Ddoppel.guest.dir=" + System.getProperty("doppel.guest.dir"), "-Ddoppel.root=" + projectRoot(),
                CLI_MAIN));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().putAll(env);
        return new CliChild(String.join(" ", List.of(args).subList(0, Math.min(2, args.length))), pb.start());
    }

    /** Runs a command to its end; fails unless it exits 0 within {@code timeout}. */
    public static List<String> run(Duration timeout, String... args) throws IOException, InterruptedException {
        try (CliChild c = start(args)) {
            if (!c.process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new IOException("'doppel " + String.join(" ", args) + "' did not end within " + timeout + ": " + c.tail());
            }
            c.reader.join(5000);
            if (c.process.exitValue() != 0) {
                throw new IOException("'doppel " + String.join(" ", args) + "' exited " + c.process.exitValue() + ": " + c.tail());
            }
            return List.copyOf(c.output);
        }
    }

    /** bin/doppel's checkout: the property it sets, else (tests run in a module's directory) found from here. */
    private static Path projectRoot() {
        String root = System.getProperty("doppel.root");
        if (root != null) {
            return Path.of(root);
        }
        Path dir = Path.of(System.getProperty("user.dir")).toAbsolutePath();
        return java.nio.file.Files.exists(dir.resolve("bin/doppel")) ? dir : dir.getParent();
    }

    public Process process() {
        return process;
    }

    /** Every line so far (stdout and stderr). */
    public List<String> output() {
        return output;
    }

    public boolean printed(Pattern line) {
        return count(line) > 0;
    }

    /** Waits for a line matching {@code line}. */
    public void awaitLine(Pattern line, Duration timeout) throws IOException, InterruptedException {
        awaitCount(line, 1, timeout);
    }

    /** Waits for a line containing {@code text}. */
    public void awaitLine(String text, Duration timeout) throws IOException, InterruptedException {
        awaitCount(Pattern.compile(Pattern.quote(text)), 1, timeout);
    }

    /** On {@link #close}, the whole output is also written to {@code dir} (for the reader of a failure). */
    public CliChild keepOutputIn(Path dir) {
        this.keepIn = dir;
        return this;
    }

    public long count(Pattern line) {
        return output.stream().filter(l -> line.matcher(l).find()).count();
    }

    /** The last line matching, or "" if none. */
    public String last(Pattern line) {
        List<String> hits = output.stream().filter(l -> line.matcher(l).find()).toList();
        return hits.isEmpty() ? "" : hits.get(hits.size() - 1);
    }

    /** Waits until {@code n} lines match; fails if the child ends first or the time is up. */
    public void awaitCount(Pattern line, long n, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (count(line) < n) {
            if (!process.isAlive()) {
                throw new IOException("'" + label + "' ended (" + process.exitValue() + ") before /" + line + "/: " + tail());
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("no /" + line + "/ from '" + label + "' within " + timeout + ": " + tail());
            }
            Thread.sleep(100);
        }
    }

    public String tail() {
        int n = output.size();
        return String.join(" | ", output.subList(Math.max(0, n - 8), n));
    }

    private void read() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                output.add(line);
            }
        } catch (IOException ignored) {
            // the child ended
        }
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroy();
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
        Path dir = keepIn;
        if (dir != null) {
            reader.join(5000);
            try {
                java.nio.file.Files.createDirectories(dir);
                java.nio.file.Files.write(dir.resolve(label.replace(' ', '-') + "-" + process.pid() + ".log"), output);
            } catch (IOException e) {
                System.err.println("cannot keep the output of '" + label + "': " + e.getMessage());
            }
        }
    }
}

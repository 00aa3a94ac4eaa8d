package dev.doppel.vm;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A guest's serial console as a stream of lines, read by tailing the console log file QEMU writes.
 * Tests and benchmarks wait on it for lines such as {@code tick 3} or the dirtier's status lines.
 * A log without a file ({@link #history}) is fed by others: a VM that moves between QEMU processes
 * (fork, reshare, failover) keeps one continuous console that way.
 */
public final class ConsoleLog implements AutoCloseable {
    private static final int MAX_LINES = 200_000;
    private static final long POLL_MS = 10;

    private final String vmName;
    private final Path file;
    private final List<String> lines = new ArrayList<>();
    private final List<Consumer<ConsoleLine>> listeners = new CopyOnWriteArrayList<>();
    private final Thread tailer;   // null for a history fed by append()
    private int dropped;
    private volatile boolean closed;

    public ConsoleLog(String vmName, Path file) {
        this.vmName = vmName;
        this.file = file;
        this.tailer = new Thread(this::tail, "console-" + vmName);
        tailer.setDaemon(true);
        tailer.start();
    }

    private ConsoleLog(String vmName) {
        this.vmName = vmName;
        this.file = null;
        this.tailer = null;
    }

    /** A console fed by {@link #append} (e.g. from the consoles of the processes a VM runs in). */
    public static ConsoleLog history(String vmName) {
        return new ConsoleLog(vmName);
    }

    /** Forwards every line of this console, past and future, to {@code target}. */
    public void feed(ConsoleLog target) {
        addListener(line -> target.append(line.text()), true);
    }

    public Path file() {
        return file;
    }

    /** Called for every new line, on the tailer thread; keep it short. */
    public void addListener(Consumer<ConsoleLine> listener) {
        listeners.add(listener);
    }

    /** Like {@link #addListener(Consumer)}, first replaying the lines already seen (no gap, no repeat). */
    public synchronized void addListener(Consumer<ConsoleLine> listener, boolean replay) {
        if (replay) {
            for (int i = 0; i < lines.size(); i++) {
                listener.accept(new ConsoleLine(dropped + i, lines.get(i)));
            }
        }
        listeners.add(listener);
    }

    /** Index the next line will get; pass it to {@link #awaitLine(Pattern, int, Duration)} to wait for new lines. */
    public synchronized int mark() {
        return dropped + lines.size();
    }

    /** All lines seen so far (older ones beyond the retention limit are gone). */
    public synchronized List<String> lines() {
        return List.copyOf(lines);
    }

    /** The first line at index ≥ {@code from} matching {@code pattern}; waits up to {@code timeout}. */
    public ConsoleLine awaitLine(Pattern pattern, int from, Duration timeout) throws TimeoutException {
        return awaitLine(s -> pattern.matcher(s).find(), from, timeout, pattern.pattern());
    }

    /** The first line anywhere in the history matching {@code pattern}. */
    public ConsoleLine awaitLine(Pattern pattern, Duration timeout) throws TimeoutException {
        return awaitLine(pattern, 0, timeout);
    }

    /** Like {@link #awaitLine(Pattern, int, Duration)} returning the match, for extracting groups. */
    public Matcher awaitMatch(Pattern pattern, int from, Duration timeout) throws TimeoutException {
        ConsoleLine line = awaitLine(pattern, from, timeout);
        Matcher m = pattern.matcher(line.text());
        if (!m.find()) {
            throw new IllegalStateException("line matched once but not twice: " + line);
        }
        return m;
    }

    public synchronized ConsoleLine awaitLine(Predicate<String> test, int from, Duration timeout, String what)
            throws TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int next = Math.max(from, dropped);
        while (true) {
            for (; next < dropped + lines.size(); next++) {
                String text = lines.get(next - dropped);
                if (test.test(text)) {
                    return new ConsoleLine(next, text);
                }
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new TimeoutException("VM '" + vmName + "': no console line matching '" + what + "' within "
                        + timeout.toMillis() + " ms; last lines: " + tail(5));
            }
            try {
                wait(Math.max(1, left / 1_000_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new TimeoutException("interrupted while waiting for console of VM '" + vmName + "'");
            }
        }
    }

    /** The last {@code n} lines, for error messages. */
    public synchronized List<String> tail(int n) {
        return List.copyOf(lines.subList(Math.max(0, lines.size() - n), lines.size()));
    }

    private void tail() {
        long position = 0;
        StringBuilder partial = new StringBuilder();
        byte[] buf = new byte[65536];
        while (!closed) {
            try {
                if (Files.exists(file)) {
                    try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "r")) {
                        raf.seek(position);
                        int n;
                        while ((n = raf.read(buf)) > 0) {
                            position += n;
                            partial.append(new String(buf, 0, n, StandardCharsets.UTF_8));
                            publishCompleteLines(partial);
                        }
                    }
                }
                Thread.sleep(POLL_MS);
            } catch (IOException e) {
                sleepQuietly();
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private void publishCompleteLines(StringBuilder partial) {
        int nl;
        while ((nl = partial.indexOf("\n")) >= 0) {
            String line = partial.substring(0, nl).replace("\r", "");
            partial.delete(0, nl + 1);
            append(line);
        }
    }

    /**
     * Adds a line and tells the listeners. Listeners run under this log's lock, so one registered
     * with replay sees every line exactly once and in order.
     */
    public synchronized void append(String line) {
        lines.add(line);
        if (lines.size() > MAX_LINES) {
            lines.remove(0);
            dropped++;
        }
        ConsoleLine added = new ConsoleLine(dropped + lines.size() - 1, line);
        notifyAll();
        for (Consumer<ConsoleLine> l : listeners) {
            l.accept(added);
        }
    }

    private static void sleepQuietly() {
        try {
            Thread.sleep(POLL_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        closed = true;
        if (tailer != null) {
            tailer.interrupt();
        }
    }
}

package dev.doppel.remus.fencing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Whether a QEMU process is gone. Polls {@code /proc} every 10 ms rather than using {@code onExit()}:
 * for a process that is not this JVM's child (one started by {@code vm start}) the JDK noticed its
 * exit only after ~1.4 s here, and every ms of it delays the failover. A zombie (exited, not yet
 * reaped by its parent) counts as dead: it runs no guest and holds no output.
 */
public final class ProcessDeath {
    private ProcessDeath() {
    }

    public static boolean gone(ProcessHandle p) {
        return !p.isAlive() || zombie(p.pid());
    }

    /** Waits up to {@code wait} for the process to be gone. */
    public static boolean await(ProcessHandle p, Duration wait) {
        long deadline = System.nanoTime() + wait.toNanos();
        while (!gone(p)) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return !p.isAlive();
            }
        }
        return true;
    }

    /** Whether {@code /proc/PID/stat} says the process has exited and waits to be reaped (state Z). */
    public static boolean zombie(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            int close = stat.lastIndexOf(')');
            return close > 0 && close + 2 < stat.length() && stat.charAt(close + 2) == 'Z';
        } catch (IOException e) {
            return true;    // no /proc entry: gone
        }
    }
}

package dev.doppel.qmp.testing;

import java.time.Duration;

/** Thread assertions: no reader left behind. */
public final class Threads {

    private Threads() {
    }

    /** True if a live thread has exactly this name. */
    public static boolean alive(String name) {
        return Thread.getAllStackTraces().keySet().stream().anyMatch(t -> t.isAlive() && t.getName().equals(name));
    }

    /** Waits up to {@code timeout} for the named thread to end; fails otherwise. */
    public static void assertGone(String name, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (alive(name)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("thread " + name + " still alive after " + timeout);
            }
            Thread.sleep(10);
        }
    }
}

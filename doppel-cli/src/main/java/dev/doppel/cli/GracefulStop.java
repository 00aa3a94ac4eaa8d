package dev.doppel.cli;

import dev.doppel.vm.ConsoleLine;
import dev.doppel.vm.ConsoleLog;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;

/**
 * Turns SIGTERM/SIGINT into a stop request for a long-running command, and holds the JVM's exit until the
 * command has cleaned up (bounded). Without the second half, the JVM exits as soon as its shutdown hooks
 * return, so a {@code kill} left VMs a command owned running, or their run directories behind.
 */
final class GracefulStop implements AutoCloseable {

    private static final Duration SLICE = Duration.ofMillis(250);

    private final CountDownLatch requested = new CountDownLatch(1);
    private final CountDownLatch cleanedUp = new CountDownLatch(1);
    private final Thread hook;

    GracefulStop(String command, Duration cleanupLimit) {
        hook = new Thread(() -> {
            requested.countDown();
            try {
                cleanedUp.await(cleanupLimit.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, command + "-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
    }

    boolean requested() {
        return requested.getCount() == 0;
    }

    /** Waits up to {@code limit} for a stop request; true if one came. */
    boolean await(Duration limit) throws InterruptedException {
        return requested.await(limit.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * Like {@link ConsoleLog#awaitLine(Pattern, Duration)}, but gives up with {@link Requested} as soon as a
     * stop is requested, so that a command waiting for its guest still cleans up on Ctrl-C.
     */
    ConsoleLine awaitLine(ConsoleLog console, Pattern pattern, Duration timeout) throws TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            if (requested()) {
                throw new Requested();
            }
            long left = deadline - System.nanoTime();
            try {
                return console.awaitLine(pattern, Duration.ofNanos(Math.max(1, Math.min(left, SLICE.toNanos()))));
            } catch (TimeoutException e) {
                if (System.nanoTime() - deadline >= 0) {
                    throw e;
                }
            }
        }
    }

    /** A stop was requested while the command waited; the command cleans up and ends. */
    static final class Requested extends RuntimeException {
        Requested() {
            super("stopped by a signal", null, false, false);
        }
    }

    /** The command has cleaned up: a pending exit may go on. */
    @Override
    public void close() {
        cleanedUp.countDown();
        if (!requested()) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException alreadyExiting) {
                // the JVM is exiting for another reason; the hook returns at once now
            }
        }
    }
}

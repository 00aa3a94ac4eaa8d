package dev.doppel.vm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Owner of last resort for every external process Doppel starts (QEMU, helpers).
 *
 * <p>Two nets catch a process whose Java owner failed to stop it: a JVM shutdown hook kills every
 * registered process on normal exit or SIGTERM, and processes that must not outlive the JVM even
 * on SIGKILL are started under {@code setpriv --pdeathsig KILL}. The kernel sends that signal when
 * the <em>thread</em> that forked the child exits, not the process, so all such children are
 * spawned from one long-lived thread here rather than from whichever pool thread asked.
 */
public final class ChildProcesses {
    private static final Logger log = LoggerFactory.getLogger(ChildProcesses.class);
    private static final Map<Process, String> LIVE = new ConcurrentHashMap<>();
    private static final ExecutorService SPAWNER = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "doppel-process-spawner");
        t.setDaemon(true);
        return t;
    });

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(ChildProcesses::killAll, "doppel-process-reaper"));
    }

    private ChildProcesses() {
    }

    /**
     * Starts a process with stdout and stderr appended to {@code log}.
     *
     * @param dieWithJvm also kill it when the JVM dies by SIGKILL (false for VMs that the CLI
     *                   starts in the background and that must outlive it)
     */
    public static Process start(List<String> argv, Path logFile, String description, boolean dieWithJvm) {
        List<String> command = new ArrayList<>();
        if (dieWithJvm) {
            command.addAll(List.of("setpriv", "--pdeathsig", "KILL", "--"));
        }
        command.addAll(argv);
        ProcessBuilder pb = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        try {
            Process p = SPAWNER.submit(pb::start).get();
            if (dieWithJvm) {
                LIVE.put(p, description);
            }
            log.debug("started pid={} what=\"{}\"", p.pid(), description);
            return p;
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw new UncheckedIOException("cannot start " + description + ": " + io.getMessage(), io);
            }
            throw new IllegalStateException("cannot start " + description, cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting " + description, e);
        }
    }

    /** The owner stopped the process itself; forget it. */
    public static void released(Process p) {
        LIVE.remove(p);
    }

    /** Number of processes still owned (tests assert this returns to zero). */
    public static int liveCount() {
        LIVE.keySet().removeIf(p -> !p.isAlive());
        return LIVE.size();
    }

    static void killAll() {
        LIVE.forEach((p, what) -> {
            if (p.isAlive()) {
                log.warn("killing leftover process pid={} what=\"{}\" at JVM exit", p.pid(), what);
                p.destroyForcibly();
            }
        });
        LIVE.forEach((p, what) -> {
            try {
                p.waitFor(2, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
    }
}

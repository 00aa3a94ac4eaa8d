package dev.doppel.hostnet;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Runs short host commands (ip, tc, qemu-img) with a deadline and turns failures into clear errors. */
public final class HostCommand {
    private static final Logger log = LoggerFactory.getLogger(HostCommand.class);
    private static final long DEFAULT_TIMEOUT_S = 30;

    private HostCommand() {
    }

    /** Runs the command; returns stdout; throws with the command and its stderr on a non-zero exit. */
    public static String run(String... argv) {
        return run(List.of(argv));
    }

    public static String run(List<String> argv) {
        Result r = tryRun(argv);
        if (r.exitCode() != 0) {
            throw new HostCommandException("'" + String.join(" ", argv) + "' failed with status " + r.exitCode()
                    + ": " + r.stderr().strip());
        }
        return r.stdout();
    }

    /** Runs the command and returns its result whatever the exit status. */
    public static Result tryRun(List<String> argv) {
        log.debug("run {}", argv);
        try {
            Process p = new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            // Small outputs only: read both streams after exit would risk a full-pipe deadlock, so drain stderr on a thread.
            var err = new java.util.concurrent.CompletableFuture<String>();
            Thread t = new Thread(() -> {
                try {
                    err.complete(new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
                } catch (IOException e) {
                    err.complete("");
                }
            }, "stderr-" + argv.get(0));
            t.setDaemon(true);
            t.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(DEFAULT_TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new HostCommandException("'" + String.join(" ", argv) + "' did not finish in " + DEFAULT_TIMEOUT_S + " s");
            }
            return new Result(p.exitValue(), out, err.get(5, TimeUnit.SECONDS));
        } catch (IOException e) {
            throw new HostCommandException("cannot run '" + String.join(" ", argv) + "': " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HostCommandException("interrupted running '" + String.join(" ", argv) + "'", e);
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            throw new HostCommandException("reading stderr of '" + String.join(" ", argv) + "'", e);
        }
    }

    /** argv prefixed to run inside a network namespace (null = the host's). */
    public static List<String> inNamespace(String netns, List<String> argv) {
        if (netns == null) {
            return argv;
        }
        List<String> a = new ArrayList<>(List.of("ip", "netns", "exec", netns));
        a.addAll(argv);
        return a;
    }

    /** Exit status and output of a finished command. */
    public record Result(int exitCode, String stdout, String stderr) {
    }
}

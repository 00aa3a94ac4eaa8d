package dev.doppel.remus.guard;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.tls.PeerTls;
import dev.doppel.vm.ChildProcesses;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Starts the guard of a VM as a process of its own, or finds the one that already runs (a controller
 * that crashed and came back re-attaches to it). The guard's socket is {@code guard.sock} in the VM's run
 * directory; its log is where the caller says (the CLI: {@code guard.log} beside it).
 *
 * <p>The guard runs in its own session ({@code setsid}): Ctrl-C in the controller's terminal must not
 * reach it (its death would kill the guest). It runs in the VM's network namespace, so that a host
 * cut off from the coordination service is cut off for the guard too.
 */
public final class GuardProcess {
    private static final Logger log = LoggerFactory.getLogger(GuardProcess.class);
    private static final Duration START_MARGIN = Duration.ofSeconds(30);

    /**
     * @param log           the guard's log file (its dead man's goes beside it)
     * @param netns         the VM's network namespace (null: this one)
     * @param coordinator   an ensemble's connect string, or null to embed one server at {@code embedAt}
     * @param tls           the host's identity for the ZooKeeper sessions (and the embedded server), or insecure
     * @param verdictWait   see {@link VmGuard.Config#verdictWait()}
     * @param dieWithCaller also end the guard (and so the VM) when the calling JVM dies: for tests and
     *                      benches whose QEMUs die with them; a CLI controller passes false
     */
    public record Spec(String vm, long qemuPid, String holder, Path runDir, Path log, String netns, String coordinator,
                       InetSocketAddress embedAt, PeerTls tls, Duration session, Duration claimWait, boolean dieWithCaller,
                       Duration verdictWait) {
        public Spec(String vm, long qemuPid, String holder, Path runDir, Path log, String netns, String coordinator,
                    InetSocketAddress embedAt, PeerTls tls, Duration session, Duration claimWait, boolean dieWithCaller) {
            this(vm, qemuPid, holder, runDir, log, netns, coordinator, embedAt, tls, session, claimWait, dieWithCaller, Duration.ZERO);
        }

        /** The same guard, keeping the lease up to {@code wait} after its QEMU's exit for the controller's verdict. */
        public Spec withVerdictWait(Duration wait) {
            return new Spec(vm, qemuPid, holder, runDir, log, netns, coordinator, embedAt, tls, session, claimWait, dieWithCaller, wait);
        }

        Path socket() {
            return runDir.resolve("guard.sock");
        }
    }

    private GuardProcess() {
    }

    /** The running guard of the VM whose run directory is {@code runDir}, if one answers. */
    public static Optional<GuardClient> attach(String vm, Path runDir, long qemuPid) {
        Path socket = runDir.resolve("guard.sock");
        if (!Files.exists(socket)) {
            return Optional.empty();
        }
        GuardClient c = new GuardClient(vm, socket, qemuPid);
        try {
            GuardReply r = c.status();
            if (!vm.equals(r.vm()) || r.qemuPid() != qemuPid) {
                throw new IllegalStateException("the guard at " + socket + " guards VM '" + r.vm() + "' (QEMU pid "
                        + r.qemuPid() + "), not '" + vm + "' (QEMU pid " + qemuPid + ")");
            }
            return Optional.of(c);
        } catch (IOException e) {
            log.info("vm={} event=stale-guard-socket socket={} cause=\"{}\"", vm, socket, e.getMessage());
            return Optional.empty();
        }
    }

    /** Re-attaches to the VM's guard, or starts one (which takes the lease) and waits until it serves. */
    public static GuardClient attachOrStart(Spec s) throws IOException {
        Optional<GuardClient> running = attach(s.vm(), s.runDir(), s.qemuPid());
        if (running.isPresent()) {
            GuardReply r = running.get().status();
            log.info("vm={} event=guard-reattached guard_pid={} token={} holder={}", s.vm(), r.guardPid(), r.token(), r.holder());
            return running.get().reattached(true);
        }
        return start(s);
    }

    private static GuardClient start(Spec s) throws IOException {
        Files.deleteIfExists(s.socket());
        Files.createDirectories(s.log().getParent());
        Path logFile = s.log();
        // nice -10: the guard holds a lease with a 2 s session. Beside busy TCG QEMUs on few cores (measured:
        // 9 guests booting on 2 cores) a guard at the guests' priority went unscheduled for over 1.3 s, its
        // session expired and it fenced a healthy primary; the lease holder must not lose to its own guests
        // (as cluster managers run their membership daemons at a raised priority). Unprivileged, nice only warns.
        List<String> argv = new ArrayList<>(List.of("setsid", "--", "nice", "-n", "-10", javaBinary(), "-Xmx96m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-cp", classPath(), GuardMain.class.getName(),
                "--vm", s.vm(), "--qemu-pid", Long.toString(s.qemuPid()), "--holder", s.holder(),
                "--socket", s.socket().toString(), "--dead-man-log", logFile.resolveSibling(logFile.getFileName() + ".deadman").toString(),
                "--session-ms", Long.toString(s.session().toMillis()), "--claim-wait-ms", Long.toString(s.claimWait().toMillis()),
                "--verdict-wait-ms", Long.toString(s.verdictWait().toMillis())));
        if (s.tls().secure()) {
            argv.addAll(List.of("--tls", s.tls().directory().toString()));
        }
        if (s.coordinator() != null) {
            argv.addAll(List.of("--coordinator", s.coordinator()));
        } else {
            argv.addAll(List.of("--embed", s.embedAt().getHostString() + ":" + s.embedAt().getPort(),
                    "--zk-dir", s.runDir().resolve("guard-zk").toString()));
        }
        Process p = ChildProcesses.start(HostCommand.inNamespace(s.netns(), argv), logFile, "guard of VM '" + s.vm() + "'",
                s.dieWithCaller());
        GuardClient client = new GuardClient(s.vm(), s.socket(), s.qemuPid());
        long deadline = System.nanoTime() + s.claimWait().plus(START_MARGIN).toNanos();
        IOException last = null;
        while (System.nanoTime() < deadline) {
            if (!p.isAlive()) {
                throw new IOException("VM '" + s.vm() + "': the guard exited (" + p.exitValue() + ") without guarding: "
                        + tail(logFile));
            }
            if (Files.exists(s.socket())) {
                try {
                    GuardReply r = client.status();
                    log.info("vm={} event=guard-started guard_pid={} token={} coordinator={}", s.vm(), r.guardPid(), r.token(),
                            r.coordinator());
                    return client;
                } catch (IOException e) {
                    last = e;
                }
            }
            sleep(50);
        }
        p.destroyForcibly();
        throw new IOException("VM '" + s.vm() + "': the guard did not answer within " + s.claimWait().plus(START_MARGIN).toSeconds()
                + " s" + (last == null ? "" : " (" + last.getMessage() + ")") + ": " + tail(logFile));
    }

    private static String javaBinary() {
        return ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    /** This JVM's class path (under Maven's test runner, the test class path it was given). */
    private static String classPath() {
        return System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    }

    private static String tail(Path logFile) {
        try {
            List<String> lines = Files.readAllLines(logFile);
            return String.join(" | ", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting a guard", e);
        }
    }
}

package dev.doppel.vm;

import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One running QEMU process and everything it owns: the process, its QMP connection, its console
 * and its run directory. {@link #close()} stops all of it, whatever state it is in; every code path
 * that starts a VM holds it in a try-with-resources or hands it to an owner that does.
 */
public final class VmProcess implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VmProcess.class);

    private final VmSpec spec;
    private final VmRunDir runDir;
    /** The QEMU process; {@link #child} is the same process when this JVM started it (null when adopted). */
    private final ProcessHandle process;
    private final Process child;
    private final Accelerator accelerator;
    private final ConsoleLog console;
    private final boolean keepRunDir;
    private volatile QmpClient qmp;
    private volatile boolean closed;

    private VmProcess(VmSpec spec, VmRunDir runDir, Process child, ProcessHandle process, Accelerator accelerator,
                      boolean keepRunDir) {
        this.spec = spec;
        this.runDir = runDir;
        this.child = child;
        this.process = process;
        this.accelerator = accelerator;
        this.keepRunDir = keepRunDir;
        this.console = new ConsoleLog(spec.name(), runDir.consoleLog());
    }

    /** Options for {@link #start}. */
    public record StartOptions(Duration qmpDeadline, boolean dieWithJvm, boolean keepRunDir) {
        public static StartOptions defaults() {
            return new StartOptions(Duration.ofSeconds(30), true, false);
        }

        /** For VMs the CLI starts in the background: they outlive the CLI process. */
        public static StartOptions detached() {
            return new StartOptions(Duration.ofSeconds(30), false, true);
        }
    }

    public static VmProcess start(VmSpec spec, QemuBinary qemu, Accelerator accel) {
        return start(spec, qemu, accel, StartOptions.defaults());
    }

    /**
     * Starts QEMU and connects to its QMP socket.
     *
     * @throws VmStartException if QEMU exits early or QMP does not come up before the deadline;
     *                          the process is killed and the run directory removed
     */
    public static VmProcess start(VmSpec spec, QemuBinary qemu, Accelerator accel, StartOptions options) {
        VmRunDir dir = VmRunDir.create(spec.name());
        List<String> argv = QemuCommandLine.build(qemu, accel, spec, dir);
        Process p;
        try {
            p = ChildProcesses.start(dev.doppel.hostnet.HostCommand.inNamespace(spec.netns(), argv), dir.qemuLog(), "QEMU of VM '" + spec.name() + "'", options.dieWithJvm());
        } catch (RuntimeException e) {
            dir.delete();
            throw new VmStartException("VM '" + spec.name() + "': cannot start QEMU: " + e.getMessage(), e);
        }
        new VmRecord(spec.name(), p.pid(), accel.qemuName(), qemu.toString(), argv, System.currentTimeMillis()).writeTo(dir);
        VmProcess vm = new VmProcess(spec, dir, p, p.toHandle(), accel, options.keepRunDir());
        log.info("vm={} event=starting pid={} accel={} mem={}MiB", spec.name(), p.pid(), accel.qemuName(), spec.memoryMiB());
        try {
            vm.connectQmp(options.qmpDeadline());
        } catch (RuntimeException e) {
            String qemuSaid = vm.qemuLogTail();
            vm.close();
            throw new VmStartException("VM '" + spec.name() + "': QEMU did not come up: " + e.getMessage()
                    + (qemuSaid.isBlank() ? "" : "; QEMU said: " + qemuSaid), e);
        }
        return vm;
    }

    /**
     * Takes over a QEMU that another process started detached and left running (a daemon that died):
     * the process found by its run directory's record, and a new QMP connection (QEMU serves one
     * client per socket; the dead owner's connection is gone). {@code spec} describes it as its
     * starter did. Stopping it works as for a started VM; only its exit status is unknown (it is not
     * this JVM's child: {@link #awaitExit} says 0 once it is gone).
     *
     * @throws VmStartException if the recorded process does not run or its monitor does not answer
     */
    public static VmProcess adopt(VmSpec spec, VmRunDir dir, Accelerator accel, StartOptions options) {
        VmRecord record = VmRecord.readFrom(dir);
        ProcessHandle h = ProcessHandle.of(record.pid()).filter(ProcessHandle::isAlive)
                .orElseThrow(() -> new VmStartException("VM '" + spec.name() + "': its QEMU (pid " + record.pid() + ") is gone"));
        if (!record.alive()) {
            throw new VmStartException("VM '" + spec.name() + "': pid " + record.pid() + " is no longer its QEMU");
        }
        VmProcess vm = new VmProcess(spec, dir, null, h, accel, options.keepRunDir());
        try {
            vm.connectQmp(options.qmpDeadline());
        } catch (RuntimeException e) {
            vm.console.close();
            throw new VmStartException("VM '" + spec.name() + "': cannot reconnect to its monitor: " + e.getMessage(), e);
        }
        log.info("vm={} event=adopted pid={}", spec.name(), record.pid());
        return vm;
    }

    /** Completes when the QEMU process has exited (for whatever reason). */
    public java.util.concurrent.CompletableFuture<ProcessHandle> onExit() {
        return process.onExit();
    }

    private void connectQmp(Duration deadline) {
        long end = System.nanoTime() + deadline.toNanos();
        Path sock = runDir.qmpSocket();
        while (!Files.exists(sock)) {
            if (!process.isAlive()) {
                throw new VmStartException("QEMU exited" + (child == null ? "" : " with status " + child.exitValue())
                        + " before creating its QMP socket");
            }
            if (System.nanoTime() > end) {
                throw new VmStartException("no QMP socket after " + deadline.toMillis() + " ms");
            }
            sleep(5);
        }
        restrictToOwner(sock);
        long leftMs = Math.max(1000, (end - System.nanoTime()) / 1_000_000);
        qmp = QmpClient.connectUnix(sock, spec.name(), Duration.ofMillis(leftMs));
    }

    private static void restrictToOwner(Path sock) {
        try {
            Files.setPosixFilePermissions(sock, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            // The 0700 run directory already keeps others out; the mode is belt and braces.
            log.debug("cannot chmod {}: {}", sock, e.getMessage());
        }
    }

    public String name() {
        return spec.name();
    }

    public VmSpec spec() {
        return spec;
    }

    public VmRunDir runDir() {
        return runDir;
    }

    public Accelerator accelerator() {
        return accelerator;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** The QMP connection (one per QEMU: QEMU serves one client at a time on a socket). */
    public QmpClient qmp() {
        QmpClient c = qmp;
        if (c == null) {
            throw new IllegalStateException("VM '" + spec.name() + "' has no QMP connection");
        }
        return c;
    }

    public ConsoleLog console() {
        return console;
    }

    /** Blocks until QEMU exits; returns its exit status (0 for an adopted QEMU), or -1 on timeout. */
    public int awaitExit(Duration timeout) {
        try {
            if (child != null) {
                return child.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) ? child.exitValue() : -1;
            }
            // Not our child: no exit status to read; 0 once it is gone.
            process.onExit().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            return 0;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            return -1;
        }
    }

    /** SIGKILL, as a crashed host would; for failover tests and for stopping a hung QEMU. */
    public void kill() {
        process.destroyForcibly();
        awaitExit(Duration.ofSeconds(10));
        log.info("vm={} event=killed pid={}", spec.name(), process.pid());
    }

    /**
     * Lets go of the QMP connection so that another program may use the VM's monitor (QEMU serves one
     * client per socket): a VM this process started but someone else controls from now on, e.g. a
     * failed-over VM that {@code doppel protect} protects again. {@link #stop} then asks QEMU to quit
     * with SIGTERM instead.
     */
    public void releaseQmp() {
        QmpClient c = qmp;
        qmp = null;
        if (c != null) {
            c.close();
            log.info("vm={} event=qmp-released note=\"the monitor is free for another controller\"", spec.name());
        }
    }

    /** Graceful stop: QMP {@code quit} (SIGTERM once QMP was released), then SIGKILL after {@code grace}. Idempotent. */
    public void stop(Duration grace) {
        if (process.isAlive() && qmp == null) {
            process.destroy();   // SIGTERM: QEMU shuts down as on quit
        }
        if (process.isAlive() && qmp != null && qmp.isConnected()) {
            try {
                qmp.execute("quit", null, Duration.ofSeconds(2));
            } catch (QmpException e) {
                // A QEMU that quits may close the socket before replying; the exit below decides.
                log.debug("vm={} quit: {}", spec.name(), e.getMessage());
            }
        }
        if (awaitExit(grace) < 0 && process.isAlive()) {
            log.warn("vm={} event=stop-timeout grace={}ms action=SIGKILL", spec.name(), grace.toMillis());
            process.destroyForcibly();
            awaitExit(Duration.ofSeconds(10));
        }
    }

    /**
     * Lets go of a detached QEMU without stopping it (its owner stops, the VM runs on and a successor
     * {@link #adopt}s it): the QMP connection and console reader close, the process and its run
     * directory stay. {@link #close} does nothing afterwards.
     */
    public void detach() {
        if (closed) {
            return;
        }
        closed = true;
        releaseQmp();
        console.close();
        log.info("vm={} event=detached pid={}", spec.name(), process.pid());
    }

    /** The last lines QEMU wrote to stderr/stdout (for error messages). */
    public String qemuLogTail() {
        try {
            List<String> all = Files.readAllLines(runDir.qemuLog());
            return String.join(" | ", all.subList(Math.max(0, all.size() - 5), all.size()));
        } catch (IOException e) {
            return "";
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            stop(Duration.ofSeconds(5));
        } finally {
            if (qmp != null) {
                qmp.close();
            }
            console.close();
            if (child != null) {
                ChildProcesses.released(child);
            }
            if (!keepRunDir) {
                runDir.delete();
            }
            log.info("vm={} event=stopped", spec.name());
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new VmStartException("interrupted");
        }
    }
}

package dev.doppel.remus.guard;

import dev.doppel.vm.ChildProcesses;
import java.nio.file.Path;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A dead man's switch between the guard and its QEMU: a tiny child process of the guard that kills
 * the QEMU when the guard dies, however it dies (SIGKILL and OOM included).
 *
 * <p>The guard cannot be the QEMU's parent (the VM was started before it, by {@code vm start}, and
 * later by libvirt), so the kernel's parent-death signal cannot be put on the QEMU itself. It is put
 * on this child instead ({@code setpriv --pdeathsig TERM}): when the guard's spawner thread ends —
 * the guard process is gone — the kernel sends the child SIGTERM, and its trap SIGKILLs the QEMU.
 * Written as a shell one-liner because all it does is wait and send one signal; no Java is needed
 * in it, and it must not depend on the guard's JVM.
 *
 * <p>Disarming (the guard releases the VM or the QEMU exited) SIGKILLs the child, whose trap then
 * never runs. If the child is killed by someone else while armed, it is started again.
 */
final class DeadMan implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DeadMan.class);
    private static final String SCRIPT = "trap 'kill -KILL \"$1\" 2>/dev/null; kill \"$!\" 2>/dev/null; exit 0' TERM; "
            + "while :; do sleep 3600 & wait \"$!\"; done";

    private final String vm;
    private final long qemuPid;
    private final Path logFile;
    private volatile Process child;
    private volatile boolean armed;

    private DeadMan(String vm, long qemuPid, Path logFile) {
        this.vm = vm;
        this.qemuPid = qemuPid;
        this.logFile = logFile;
    }

    static DeadMan arm(String vm, long qemuPid, Path logFile) {
        DeadMan d = new DeadMan(vm, qemuPid, logFile);
        d.armed = true;
        d.spawn();
        return d;
    }

    private void spawn() {
        // Not ChildProcesses' own die-with-JVM wrapper: that one sends SIGKILL, which the trap cannot catch.
        Process p = ChildProcesses.start(List.of("setpriv", "--pdeathsig", "TERM", "--", "sh", "-c", SCRIPT, "doppel-deadman",
                Long.toString(qemuPid)), logFile, "dead man of VM '" + vm + "'", false);
        child = p;
        log.info("vm={} event=dead-man-armed pid={} qemu_pid={}", vm, p.pid(), qemuPid);
        p.onExit().thenRun(() -> {
            if (armed && child == p) {
                log.warn("vm={} event=dead-man-died pid={} action=\"started again\"", vm, p.pid());
                spawn();
            }
        });
    }

    long pid() {
        return child.pid();
    }

    /** The guard lets the QEMU go (released or already dead): the child ends without touching it. */
    @Override
    public void close() {
        armed = false;
        Process p = child;
        if (p != null) {
            // Its sleep child would linger until the hour is up: it gets the same end (found before
            // the shell dies, while it is still the shell's child).
            var sleeps = p.descendants().toList();
            p.destroyForcibly();
            sleeps.forEach(ProcessHandle::destroyForcibly);
        }
    }
}

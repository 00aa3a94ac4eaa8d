package dev.doppel.clone;

import dev.doppel.clone.net.CloneAddress;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.ConsoleLog;
import dev.doppel.vm.GuestAgentClient;
import java.io.IOException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A VM of a fork family — the root, a parent that forked, or a clone — as one stable handle over the
 * QEMU processes it runs in over time (a fork moves the parent into a new process; a reshare moves a
 * VM onto a fresh shared memory file). Its console is the current process's console.
 */
public final class ForkableVm {
    private static final Logger log = LoggerFactory.getLogger(ForkableVm.class);

    private final ForkFamily family;
    private final String name;
    private final CloneAddress address;
    private final ForkableVm parent;
    private final int cloneId;
    private final List<ForkableVm> children = new CopyOnWriteArrayList<>();
    private final CompletableFuture<Integer> exit = new CompletableFuture<>();
    /** Completes once the VM has its own identity (a clone: MAC, IP, hostname, entropy; the root at once). */
    private final CompletableFuture<Void> identity = new CompletableFuture<>();
    /** One fork, reshare or stop at a time per VM. */
    final ReentrantLock lifecycle = new ReentrantLock();
    private volatile MemberProcess process;
    /** One console across all the processes this VM runs in over time. */
    private final ConsoleLog console;
    private volatile CompletableFuture<Void> reshare = CompletableFuture.completedFuture(null);
    private volatile GuestCalls guestCalls;
    private volatile boolean lettingGo;
    /** The guest agent session; follows the VM from process to process (see GuestAgentClient#reconnect). */
    private GuestAgentClient agent;

    ForkableVm(ForkFamily family, String name, CloneAddress address, ForkableVm parent, int cloneId, MemberProcess process) {
        this.family = family;
        this.name = name;
        this.address = address;
        this.parent = parent;
        this.cloneId = cloneId;
        this.process = process;
        this.console = ConsoleLog.history(name);
        process.vm.console().feed(console);
        watchExit(process);
    }

    /** A QEMU that exits while it is still this VM's process ended the VM (a crash, or killed from outside). */
    private void watchExit(MemberProcess p) {
        p.vm.onExit().thenRunAsync(() -> {
            if (process == p && !exit.isDone() && !lettingGo) {
                log.warn("vm={} event=qemu-exited pid={} note=\"its QEMU ended without Doppel asking\"", name, p.vm.pid());
                exit(-1);
            }
        }, family.background());
    }

    public String name() {
        return name;
    }

    public ForkFamily family() {
        return family;
    }

    /** 0 for the root, k for clone k of the fork that made it. */
    public int cloneId() {
        return cloneId;
    }

    public CloneAddress address() {
        return address;
    }

    public ForkableVm parent() {
        return parent;
    }

    public List<ForkableVm> children() {
        return List.copyOf(children);
    }

    void addChild(ForkableVm child) {
        children.add(child);
    }

    MemberProcess process() {
        MemberProcess p = process;
        if (p == null) {
            throw new ForkException(name, "VM has ended");
        }
        return p;
    }

    void replaceProcess(MemberProcess next) {
        next.vm.console().feed(console);
        this.process = next;
        watchExit(next);
        family.persist();
    }

    /** The current process, or null once the VM ended. */
    MemberProcess currentProcess() {
        return process;
    }

    /** The network namespace of the other host this VM runs on (a remote clone), or null on this host. */
    public String remoteHost() {
        MemberProcess p = process;
        return p == null ? null : p.remoteHost();
    }

    /** Lets go of the VM without stopping it (see {@link ForkFamily#letGo}). */
    void letGo() {
        lettingGo = true;
        synchronized (this) {
            if (agent != null) {
                agent.close();
                agent = null;
            }
        }
        MemberProcess p = process;
        if (p != null) {
            p.vm.detach();
        }
    }

    /** QMP of the current process. Do not keep it across a fork: the parent changes process. */
    public QmpClient qmp() {
        return process().vm.qmp();
    }

    /**
     * The VM's console: every line of every process it ran in, in order (a clone's console starts
     * at its fork; the parent's goes on across forks and reshares).
     */
    public ConsoleLog console() {
        return console;
    }

    public long pid() {
        return process().vm.pid();
    }

    public boolean isRunning() {
        MemberProcess p = process;
        return p != null && p.vm.isAlive() && !exit.isDone();
    }

    /** Whether the VM currently maps its own shared memory file (a fork needs no reshare first). */
    public boolean hasSharedMemory() {
        MemberProcess p = process;
        return p != null && p.sharedMemory;
    }

    /**
     * Completes when the VM carries its own identity and is on the clone network. A clone starts
     * with its parent's addresses; the guest agent gives it its own shortly after the fork.
     * Completes exceptionally if the agent did not answer (the clone then stays off the network).
     */
    public CompletableFuture<Void> identity() {
        return identity;
    }

    /** Completes with the VM's exit code (vmexit CODE, or -1 when killed or stopped by the host). */
    public CompletableFuture<Integer> exitCode() {
        return exit;
    }

    CompletableFuture<Void> reshareInFlight() {
        return reshare;
    }

    void reshareStarted(CompletableFuture<Void> f) {
        this.reshare = f;
    }

    /**
     * The current process's socket of the standard QEMU guest agent (real guests). It changes when the
     * VM changes process (a fork moves the parent), so connect anew after a fork.
     */
    public java.nio.file.Path qgaSocket() {
        return process().vm.runDir().qgaSocket();
    }

    /** The guest agent session (connected on first use; it follows the VM across processes). */
    public synchronized GuestAgentClient agent() throws IOException {
        if (agent == null) {
            agent = GuestAgentClient.connect(name, process().vm.runDir().agentSocket());
            GuestCalls calls = guestCalls;
            if (calls != null) {
                agent.onCall(calls::handle);
            }
        }
        return agent;
    }

    /** Points the agent session at the current process (after a fork or reshare moved the VM). */
    synchronized void connectAgent() throws IOException {
        if (agent == null) {
            agent();
        } else {
            agent.reconnect(process().vm.runDir().agentSocket());
        }
    }

    synchronized void routeGuestCalls(GuestCalls calls) throws IOException {
        this.guestCalls = calls;
        agent().onCall(calls::handle);
    }

    void routeGuestCallsQuietly(GuestCalls calls) {
        try {
            routeGuestCalls(calls);
        } catch (IOException e) {
            log.warn("vm={} event=agent-connect-failed cause=\"{}\"", name, e.getMessage());
        }
    }

    /** Waits for all children (of every fork) to end; returns clone id → exit code, in fork order. */
    public Map<String, Integer> waitChildren(Duration timeout) throws TimeoutException {
        Map<String, Integer> codes = new LinkedHashMap<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        for (ForkableVm c : children()) {
            try {
                long left = Math.max(1, deadline - System.nanoTime());
                codes.put(Integer.toString(c.cloneId()), c.exit.get(left, TimeUnit.NANOSECONDS));
            } catch (java.util.concurrent.ExecutionException e) {
                codes.put(Integer.toString(c.cloneId()), -1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new TimeoutException("interrupted");
            }
        }
        return codes;
    }

    /** Ends the VM with an exit code: stops its process and releases everything it held. */
    public void exit(int code) {
        lifecycle.lock();
        try {
            MemberProcess p = process;
            process = null;
            synchronized (this) {
                if (agent != null) {
                    agent.close();
                }
            }
            if (p != null) {
                p.close();
            }
        } finally {
            lifecycle.unlock();
            if (exit.complete(code)) {
                log.info("vm={} event=exited code={}", name, code);
            }
            family.memberEnded(this);
        }
    }

    /** Kills the VM (host side); its exit code is -1. */
    public void kill() {
        exit(-1);
    }

    /** Stops the VM; the same as kill, named for the family's shutdown. */
    public void stop() {
        exit(-1);
    }

    @Override
    public String toString() {
        return name + " (" + address.ip() + ")";
    }
}

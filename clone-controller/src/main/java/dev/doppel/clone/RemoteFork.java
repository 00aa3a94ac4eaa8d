package dev.doppel.clone;

import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.ClonePageSession;
import dev.doppel.clone.pageserver.PageServer;
import dev.doppel.clone.pageserver.PageServerException;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SessionStats;
import dev.doppel.clone.pageserver.SnapshotPages;
import dev.doppel.clone.pageserver.multicast.MulticastDistribution;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The remote half of one fork: the clones on other hosts, the page server that feeds them, and the
 * guard that keeps a clone from hanging when its page server goes away.
 *
 * <p>Why a guard: a postcopy destination that loses its source waits in {@code postcopy-paused}
 * forever, and every vCPU that touches a missing page freezes. The guard polls each clone's session;
 * when one is cut it checks the clone really paused, and then either resumes it from a live page
 * server ({@code migrate-recover} on the clone, RECV_BITMAP / POSTCOPY_RESUME from the server) or,
 * when no page server is there within {@code recoverTimeout}, reports the clone failed and stops
 * it. A session that failed on a protocol error (a bad page request) is not retried: that clone is
 * reported failed and stopped at once. The parent and the other clones are not touched in any case.
 */
public final class RemoteFork implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RemoteFork.class);
    private static final Duration GUARD_PERIOD = Duration.ofMillis(100);

    /** Where a remote clone stands. */
    public enum CloneStatus { RUNNING, RECOVERING, INDEPENDENT, FAILED, ENDED }

    private final String name;
    private final SnapshotPages snapshot;
    private final GenerationFile generation;
    private final PageServerOptions options;
    private final Duration recoverTimeout;
    private final Map<String, Remote> clones = new ConcurrentHashMap<>();
    private final ScheduledExecutorService guard;
    private volatile PageServer server;
    /** With multicast distribution: each host's own page server serves its clones (null: unicast from here). */
    private final MulticastDistribution multicast;
    private volatile boolean closed;

    /** One remote clone and what the guard knows about it. */
    private static final class Remote {
        final String name;
        final RemoteHost host;
        volatile ForkableVm vm;
        volatile MemberProcess process;
        volatile CloneStatus status = CloneStatus.RUNNING;
        volatile long pausedSinceNanos;
        volatile String failure;
        /**
         * The clone's migration status from its MIGRATION events. Not from query-migrate: a clone whose
         * vCPU faulted on a missing page inside device emulation holds the BQL, and in-band QMP then
         * hangs until the page arrives; events and out-of-band commands are served by the monitor's
         * own thread.
         */
        volatile String migrationStatus = "unknown";
        /** System.nanoTime() when the clone's guest first ran (0 before). */
        volatile long runningSinceNanos;
        final List<ClonePageSession> sessions = new CopyOnWriteArrayList<>();
        final CompletableFuture<Void> outcome = new CompletableFuture<>();
        /** With mutual TLS: the handshakes the clone's QEMU refused on its incoming port (null when insecure). */
        volatile IncomingTls.Rejections rejections;
        final List<String> rejectedPeers = new CopyOnWriteArrayList<>();

        Remote(String name, RemoteHost host) {
            this.name = name;
            this.host = host;
        }
    }

    RemoteFork(String name, SnapshotPages snapshot, GenerationFile generation, PageServerOptions options, Duration recoverTimeout) {
        this(name, snapshot, generation, options, recoverTimeout, null);
    }

    RemoteFork(String name, SnapshotPages snapshot, GenerationFile generation, PageServerOptions options, Duration recoverTimeout,
               MulticastDistribution multicast) {
        this.multicast = multicast;
        this.name = name;
        this.snapshot = snapshot;
        this.generation = generation;
        this.options = options;
        this.recoverTimeout = recoverTimeout;
        this.server = new PageServer(name, snapshot, options);
        this.guard = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "remote-fork-guard-" + name);
            t.setDaemon(true);
            return t;
        });
    }

    public String name() {
        return name;
    }

    /** Whether the fork's page servers are closed (its figures stay readable). */
    public boolean isClosed() {
        return closed;
    }

    /** The page server now serving this fork (a new one after {@link #restartPageServer()}). */
    public PageServer pageServer() {
        return server;
    }

    void expect(String clone, RemoteHost host, MemberProcess p) {
        Remote r = new Remote(clone, host);
        r.process = p;
        if (options.tls().secure()) {
            r.rejections = new IncomingTls.Rejections(p.vm.runDir().qemuLog());
        }
        p.vm.qmp().addEventListener(e -> {
            if (e.name().equals("MIGRATION")) {
                r.migrationStatus = e.dataText("status");
            }
        });
        clones.put(clone, r);
    }

    /** Sends the fork's state to a pre-started clone listening on {@code port} of its host. */
    ClonePageSession serve(String clone, int port) {
        Remote r = remote(clone);
        ClonePageSession s = serverOf(r).serve(clone, new InetSocketAddress(r.host.address(), port));
        r.sessions.add(s);
        return s;
    }

    void markRunning(String clone) {
        remote(clone).runningSinceNanos = System.nanoTime();
    }

    /** {@link System#nanoTime()} at which the clone's guest started to run (after its device state loaded). */
    public long runningSinceNanos(String clone) {
        return remote(clone).runningSinceNanos;
    }

    /** The clones run: start guarding them. */
    void adopt(List<ForkableVm> vms) {
        for (ForkableVm vm : vms) {
            Remote r = remote(vm.name());
            r.vm = vm;
            vm.exitCode().whenComplete((code, err) -> {
                if (r.status != CloneStatus.FAILED) {
                    r.status = CloneStatus.ENDED;
                }
                r.outcome.complete(null);
                if (clones.values().stream().allMatch(c -> c.outcome.isDone())) {
                    // The last remote clone is gone: nobody needs the pages (or the generation) any more.
                    CompletableFuture.runAsync(this::close);
                }
            });
        }
        guard.scheduleWithFixedDelay(this::check, GUARD_PERIOD.toMillis(), GUARD_PERIOD.toMillis(), TimeUnit.MILLISECONDS);
    }

    public List<String> clones() {
        return List.copyOf(clones.keySet());
    }

    public CloneStatus status(String clone) {
        return remote(clone).status;
    }

    /** The clone's incoming migration status as its last MIGRATION event said (e.g. postcopy-paused). */
    public String migrationStatus(String clone) {
        return remote(clone).migrationStatus;
    }

    /**
     * QEMU's reason for each peer the clone refused on its incoming port for want of a certificate of
     * the installation's CA, oldest first (as far as the guard has read the clone's log; none without TLS).
     */
    public List<String> rejectedPeers(String clone) {
        return List.copyOf(remote(clone).rejectedPeers);
    }

    /** Why the clone was reported failed, or null. */
    public String failure(String clone) {
        return remote(clone).failure;
    }

    /** Completes when the clone ended: stopped, exited, or failed and stopped by the guard. */
    public CompletableFuture<Void> ended(String clone) {
        return remote(clone).outcome;
    }

    /** What the clone fetched, summed over every page server session it had. */
    public SessionStats stats(String clone) {
        long req = 0, pr = 0, ps = 0, z = 0, push = 0, bytes = 0;
        for (ClonePageSession s : remote(clone).sessions) {
            SessionStats st = s.stats();
            req += st.requests();
            pr += st.pagesRequested();
            ps += st.pagesSent();
            z += st.zeroPagesSent();
            push += st.pagesPushed();
            bytes += st.bytesOnWire();
        }
        return new SessionStats(req, pr, ps, z, push, bytes);
    }

    public long totalPages() {
        return snapshot.totalPages();
    }

    /**
     * Makes the clone independent of the page server: every unsent non-zero page is pushed, then
     * END, EOF, and the clone's SHUT. Completes when the clone reported the migration done.
     */
    public CompletableFuture<Void> finish(String clone) {
        ClonePageSession s = serverOf(remote(clone)).session(clone);
        if (s == null) {
            return CompletableFuture.failedFuture(new IllegalStateException("clone " + clone + " has no page server session"));
        }
        return s.finish().thenRun(() -> becameIndependent(remote(clone)));
    }

    /** Cuts every clone's connection without an end, as a crashed page server would. */
    public void killPageServer() {
        server.kill();
    }

    /**
     * A new page server on the same snapshot; the guard resumes every paused clone from it. (In a
     * deployment a supervisor restarts the server process; the snapshot files outlive it.)
     */
    public synchronized PageServer restartPageServer() {
        if (!server.isClosed()) {
            server.kill();
        }
        server = new PageServer(name, snapshot, options);
        log.info("fork={} event=page-server-restarted", name);
        return server;
    }

    // ---- guard ----

    private void check() {
        if (closed) {
            return;
        }
        for (Remote r : clones.values()) {
            try {
                reportRejectedPeers(r);
                checkOne(r);
            } catch (RuntimeException e) {
                log.warn("fork={} clone={} guard check failed: {}", name, r.name, e.getMessage());
            }
        }
    }

    private void checkOne(Remote r) {
        if (r.status == CloneStatus.FAILED || r.status == CloneStatus.ENDED || r.status == CloneStatus.INDEPENDENT
                || r.vm == null || !r.vm.isRunning()) {
            return;
        }
        ClonePageSession s = r.sessions.isEmpty() ? null : r.sessions.get(r.sessions.size() - 1);
        if (s == null) {
            return;
        }
        switch (s.state()) {
            case STARTING, SERVING, FINISHING -> {
                if (r.status == CloneStatus.RECOVERING && s.state() == ClonePageSession.State.SERVING) {
                    log.info("fork={} clone={} event=recovered paused_ms={}", name, r.name,
                            (System.nanoTime() - r.pausedSinceNanos) / 1_000_000);
                    r.status = CloneStatus.RUNNING;
                    r.pausedSinceNanos = 0;
                }
            }
            case COMPLETED -> becameIndependent(r);
            case FAILED -> failAndStop(r, s.failure().getMessage());
            case DISCONNECTED -> handleCut(r, s);
        }
    }

    /** The clone has every page: it no longer needs a page server, and its family's record says so. */
    private void becameIndependent(Remote r) {
        if (r.status == CloneStatus.INDEPENDENT) {
            return;
        }
        r.status = CloneStatus.INDEPENDENT;
        r.process.waitsForPages = false;
        ForkableVm vm = r.vm;
        if (vm != null) {
            vm.family().persist();
        }
    }

    /** Logs each peer the clone's QEMU refused since the last check (it does not know the peer's address). */
    private void reportRejectedPeers(Remote r) {
        IncomingTls.Rejections w = r.rejections;
        if (w == null) {
            return;
        }
        for (String why : w.poll()) {
            r.rejectedPeers.add(why);
            log.warn("fork={} clone={} event=tls-peer-rejected link=\"incoming migration of {}\" end=server cause=\"{}\"",
                    name, r.name, r.name, why);
        }
    }

    /** The clone's page server connection is gone: resume it from a live server, or give up in time. */
    private void handleCut(Remote r, ClonePageSession cut) {
        long now = System.nanoTime();
        if (r.pausedSinceNanos == 0) {
            r.pausedSinceNanos = now;
            r.status = CloneStatus.RECOVERING;
            log.warn("fork={} clone={} event=page-server-lost cause=\"{}\"", name, r.name,
                    cut.failure() == null ? "?" : cut.failure().getMessage());
        }
        PageServer live = server;
        String migration = r.migrationStatus;
        if (!live.isClosed() && migration.equals("postcopy-paused")) {
            int port = r.host.nextPort();
            String uri = "tcp:" + r.host.address() + ":" + port;
            try {
                // Out of band: in-band QMP may be stuck behind a vCPU waiting for a page (see Remote).
                r.vm.qmp().executeOob("migrate-recover", Map.of("uri", uri), Duration.ofSeconds(5));
                ClonePageSession s = live.resume(r.name, new InetSocketAddress(r.host.address(), port));
                r.sessions.add(s);
                log.info("fork={} clone={} event=recovering uri={}", name, r.name, uri);
            } catch (RuntimeException e) {
                log.warn("fork={} clone={} event=recover-attempt-failed cause=\"{}\"", name, r.name, e.getMessage());
            }
            return;
        }
        if (now - r.pausedSinceNanos > recoverTimeout.toNanos()) {
            failAndStop(r, new PageServerException(r.name, "recovery", "no page server came back within "
                    + recoverTimeout.toMillis() + " ms (clone migration " + migration + ")", null).getMessage());
        }
    }

    private void failAndStop(Remote r, String why) {
        r.failure = why;
        r.status = CloneStatus.FAILED;
        log.error("fork={} clone={} event=remote-clone-failed cause=\"{}\" action=stop", name, r.name, why);
        // SIGKILL first: a clone waiting for pages cannot answer a graceful quit (its BQL may be held).
        r.process.vm.kill();
        r.vm.kill();
        r.outcome.complete(null);
    }

    /** The page server a clone gets its pages from: its host's (multicast) or this host's. */
    private PageServer serverOf(Remote r) {
        return multicast != null ? multicast.serverFor(r.host) : server;
    }

    /** The multicast distribution of this fork, or null when every clone is served by unicast from here. */
    public MulticastDistribution multicast() {
        return multicast;
    }

    private Remote remote(String clone) {
        Remote r = clones.get(clone);
        if (r == null) {
            throw new IllegalArgumentException("fork " + name + " has no remote clone '" + clone + "'");
        }
        return r;
    }

    /** Stops guarding, cuts what is still connected, releases the snapshot (and the generation file). */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        guard.shutdownNow();
        server.close();
        if (multicast != null) {
            multicast.close();
        }
        try {
            snapshot.close();
        } catch (IOException e) {
            log.warn("fork={} cannot close the snapshot: {}", name, e.getMessage());
        }
        generation.release();
        log.info("fork={} event=remote-fork-closed", name);
    }
}

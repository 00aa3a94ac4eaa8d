package dev.doppel.daemon.fork;

import dev.doppel.clone.CloneController;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.ForkResult;
import dev.doppel.clone.ForkableVm;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.daemon.ApiException;
import dev.doppel.daemon.events.EventHub;
import dev.doppel.daemon.metrics.DoppelMeters;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.FileTrees;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The daemon's fork families (SnowFlock-style): a forkable parent VM, booted by the daemon, and the
 * clones each fork makes of it. Each clone's exit is reported on the event stream. Families outlive
 * the daemon: their QEMUs start detached, the fork controller records each family
 * ({@link dev.doppel.clone.FamilyRecord}) beside the request that started it, and the next daemon
 * adopts them ({@link #adoptLeftovers}).
 */
public final class ForkFamilies implements AutoCloseable {
    /** The request that started a family, kept in its disk directory so that a successor can rebuild its spec. */
    private static final String REQUEST_FILE = "request.json";
    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    private final CloneController controller;
    private final EventHub events;
    private final DoppelMeters meters;
    /** Members that ended, with their exit codes (a wait after the exit still gets the code); the last 4,096. */
    private final Map<String, Integer> ended = java.util.Collections.synchronizedMap(new java.util.LinkedHashMap<>() {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Integer> eldest) {
            return size() > 4096;
        }
    });

    /**
     * One family member as the API lists it; {@code forkReady}: it runs on a shared memory file, so a
     * fork needs no reshare first (false for a while after each fork, while it moves back onto one).
     */
    public record Member(String name, long pid, String ip, String mac, int cloneId, String host, boolean running, boolean forkReady,
                         Integer exitCode, List<Member> children) {
    }

    /** A fork request: {@code hosts} (optional) puts the clones round-robin on those other hosts. */
    public record ForkRequest(Integer clones, List<String> hosts) {
    }

    /** How to boot a family's parent: Doppel's guest (workload {@code run}) or a disk image with qemu-guest-agent. */
    public record ParentRequest(String name, long memMiB, String run, Path image) {
    }

    /** A parent's spec and the disk it starts on. */
    private record ParentSpec(VmSpec spec, Path disk, String format) {
    }

    private final Path memoryDir;
    private final Path diskDir;

    /**
     * @param memoryDir the families' generation files (tmpfs), one directory per family
     * @param diskDir   the families' disks (a Doppel guest's base disk, overlays) and records, one directory per family
     */
    /**
     * @param pageServerTls how remote clones and the page servers check each other (mutual TLS with this
     *                      host's certificates, or plain TCP)
     * @param hostPrefix    the prefix of the namespaces of this daemon's other hosts (unique per daemon)
     */
    public ForkFamilies(VmLauncher launcher, EventHub events, DoppelMeters meters, Path memoryDir, Path diskDir,
                        dev.doppel.tls.PeerTls pageServerTls, String hostPrefix) {
        ForkOptions d = ForkOptions.defaults();
        this.controller = new CloneController(launcher, new ForkOptions(d.maxClones(), memoryDir, diskDir, d.reshareAfterFork(),
                d.keepOverlays(), d.cloneTcgCacheMiB(), d.stepTimeout())
                .withPageServer(PageServerOptions.defaults().withMulticast(true).withTls(pageServerTls)),
                new dev.doppel.vm.VmProcess.StartOptions(Duration.ofSeconds(30), false, false));
        this.events = events;
        this.meters = meters;
        this.memoryDir = memoryDir;
        this.diskDir = diskDir;
        this.hosts = new CloneHosts(hostPrefix);
        meters.pageServers(pageServers);
    }

    private final CloneHosts hosts;
    private final PageServerTotals pageServers = new PageServerTotals();
    /** Remote clones still fetching pages (their page server lives in this daemon), until independent. */
    private final java.util.Set<java.util.concurrent.CompletableFuture<Void>> becomingIndependent =
            java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * Finds the families a previous daemon left and adopts them: each living member's QEMU is taken
     * over with its QMP and agent connections, and what was only being prepared for a fork is removed
     * ({@code family-adopted}, with what was found). A family that cannot be adopted — no record, its
     * clone network or every member gone — is removed with all its files and processes and reported
     * ({@code family-lost}). Returns the families found.
     */
    public List<String> adoptLeftovers() {
        java.util.Set<String> names = new java.util.TreeSet<>();
        for (Path dir : List.of(memoryDir, diskDir)) {
            if (Files.isDirectory(dir)) {
                try (var l = Files.list(dir)) {
                    l.filter(Files::isDirectory).forEach(p -> names.add(p.getFileName().toString()));
                }  catch (IOException e) {
                    events.publish("family-cleanup-failed", null, -1, e.getMessage(), Map.of("dir", dir.toString()));
                }
            }
        }
        for (String family : names) {
            List<String> found = new ArrayList<>();
            String cause;
            try {
                List<ForkableVm> living = adopt(family, found::add);
                if (!living.isEmpty()) {
                    living.forEach(this::watch);
                    events.publish("family-adopted", family, -1, null, Map.of("members",
                            living.stream().map(v -> Map.of("name", v.name(), "pid", v.pid())).toList(), "found", found));
                    continue;
                }
                cause = "none of its VMs runs any more";
            } catch (RuntimeException e) {
                cause = e.getMessage();
            }
            found.addAll(removeRemains(family));
            events.publish("family-lost", family, -1, cause + "; its files were removed", Map.of("removed", found));
        }
        // Other hosts no adopted family has clones on (also those of lost families) are removed.
        hosts.removeLeftovers();
        return List.copyOf(names);
    }

    private List<ForkableVm> adopt(String family, java.util.function.Consumer<String> report) {
        Path dir = diskDir.resolve(family);
        dev.doppel.clone.FamilyRecord record = dev.doppel.clone.FamilyRecord.readFrom(dir);
        if (record == null || !Files.exists(dir.resolve(REQUEST_FILE))) {
            throw new IllegalStateException("family '" + family + "' left no record (its daemon died while starting it)");
        }
        if (!dev.doppel.hostnet.NetNamespace.exists(dev.doppel.clone.net.CloneNetwork.namespaceOf(family))) {
            throw new IllegalStateException("family '" + family + "' has no clone network any more");
        }
        ParentRequest req;
        try {
            req = JSON.readValue(dir.resolve(REQUEST_FILE).toFile(), ParentRequest.class);
        } catch (IOException e) {
            throw new IllegalStateException("family '" + family + "': unreadable " + REQUEST_FILE + ": " + e.getMessage(), e);
        }
        return controller.adopt(parentSpec(req, dir).spec(), record, hosts::existing, report);
    }

    /** Everything a family that cannot be adopted left: its QEMUs, clone network, files and run directories. */
    private List<String> removeRemains(String family) {
        List<String> removed = new ArrayList<>();
        dev.doppel.clone.ForkFamily.removeProcesses(family, java.util.Set.of(), removed::add);
        String ns = dev.doppel.clone.net.CloneNetwork.namespaceOf(family);
        if (dev.doppel.hostnet.NetNamespace.exists(ns)) {
            HostCommand.tryRun(List.of("ip", "netns", "del", ns));
            removed.add("network " + ns);
        }
        for (Path dir : List.of(memoryDir.resolve(family), diskDir.resolve(family))) {
            if (Files.exists(dir)) {
                FileTrees.deleteRecursively(dir);
                removed.add(dir.toString());
            }
        }
        return removed;
    }

    /** Boots a forkable parent (its RAM on a shared file, its NIC on the family's isolated network). */
    public Member startParent(ParentRequest req) throws IOException {
        if (req.name() == null || !req.name().matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")) {
            throw new ApiException(400, req.name(), "bad family name '" + req.name() + "'");
        }
        if (controller.list().stream().anyMatch(v -> v.name().equals(req.name())) || Files.exists(diskDir.resolve(req.name()))) {
            throw new ApiException(409, req.name(), "a fork family named '" + req.name() + "' already exists");
        }
        Path dir = Files.createDirectories(diskDir.resolve(req.name()));
        ParentSpec p;
        try {
            JSON.writeValue(dir.resolve(REQUEST_FILE).toFile(), req);
            p = parentSpec(req, dir);
            if (req.image() == null) {
                HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", p.disk().toString(), "64M");
            }
        } catch (IOException | RuntimeException e) {
            FileTrees.deleteRecursively(dir);
            throw e;
        }
        ForkableVm parent;
        try {
            parent = controller.start(p.spec(), p.disk(), p.format());
        } catch (IllegalArgumentException e) {
            FileTrees.deleteRecursively(dir);
            throw new ApiException(409, req.name(), e.getMessage());
        }
        watch(parent);
        events.publish("family-started", parent.name(), -1, null, Map.of("pid", parent.pid(), "ip", parent.address().ip()));
        return member(parent);
    }

    /** The parent's spec; a Doppel guest's base disk lives in the family's directory (removed with the family). */
    private static ParentSpec parentSpec(ParentRequest req, Path familyDir) {
        if (req.image() != null) {
            Path disk = req.image().toAbsolutePath();
            String format = DiskImageVm.format(disk);
            return new ParentSpec(DiskImageVm.spec(req.name(), disk, format).memoryMiB(req.memMiB() > 0 ? req.memMiB() : 1024).build(),
                    disk, format);
        }
        VmSpec spec = VmLauncher.guestSpec(req.name(), GuestImage.locate(), req.run() == null ? "dirtier" : req.run(),
                Map.of("doppel.dirty_rate", "2000")).memoryMiB(req.memMiB() > 0 ? req.memMiB() : 256).build();
        return new ParentSpec(spec, familyDir.resolve("base.qcow2"), "qcow2");
    }

    /** Forks a family member into {@code n} clones on this host. */
    public List<Member> fork(String vm, int n) {
        return fork(vm, n, List.of());
    }

    /**
     * Forks a family member into {@code n} clones, on this host or (with {@code hostNames}) round-robin
     * on those other hosts. Remote clones start at once and fetch pages on first touch from this
     * daemon's page server (by multicast between the hosts); each is then made independent in the
     * background (every remaining page pushed), so that it outlives this daemon like any guest.
     */
    public List<Member> fork(String vm, int n, List<String> hostNames) {
        if (n < 1 || n > 64) {
            throw new ApiException(400, vm, "clones must be 1..64, got " + n);
        }
        ForkableVm v = find(vm);
        ForkResult r;
        if (hostNames == null || hostNames.isEmpty()) {
            r = controller.fork(v, n);
        } else {
            dev.doppel.clone.RemoteForkService.RemoteForkResult rr;
            try {
                rr = controller.forkRemote(v, n, hosts.acquire(vm, hostNames));
            } finally {
                hosts.removeIdle();   // a host made for a fork that failed
            }
            pageServers.add(rr.remote());
            r = rr.fork();
            for (ForkableVm c : r.clones()) {
                makeIndependent(rr.remote(), c);
            }
        }
        meters.forked(vm, n, r.forkMs(), r.parentPauseMs());
        List<Member> out = new ArrayList<>();
        for (ForkableVm c : r.clones()) {
            watch(c);
            out.add(member(c));
        }
        events.publish("fork", vm, r.forkNumber(), null, Map.of("clones", r.clones().stream().map(ForkableVm::name).toList(),
                "forkMs", r.forkMs(), "parentPauseMs", r.parentPauseMs()));
        return out;
    }

    /** Pushes a remote clone every page it has not fetched, so that it no longer needs this daemon's page server. */
    private void makeIndependent(dev.doppel.clone.RemoteFork remote, ForkableVm clone) {
        long start = System.nanoTime();
        java.util.concurrent.CompletableFuture<Void> done = remote.finish(clone.name());
        becomingIndependent.add(done);
        done.whenComplete((x, e) -> {
            becomingIndependent.remove(done);
            if (e == null) {
                events.publish("clone-independent", clone.name(), -1, null, Map.of("host", hostName(clone),
                        "ms", (System.nanoTime() - start) / 1_000_000, "pages", remote.stats(clone.name()).pagesSent()));
            } else if (clone.isRunning()) {
                events.publish("clone-not-independent", clone.name(), -1, unwrap(e).getMessage(),
                        Map.of("host", hostName(clone)));
            }
        });
    }

    private static Throwable unwrap(Throwable e) {
        return e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
    }

    /** The other hosts' names as the API takes them, with whether a family has clones on each. */
    public Map<String, Boolean> hosts() {
        return hosts.inUse();
    }

    /** The families as trees (roots with their clones). */
    public List<Member> families() {
        return controller.list().stream().filter(v -> v.parent() == null).map(this::member).toList();
    }

    public long clonesAlive() {
        return controller.list().stream().filter(v -> v.parent() != null && v.isRunning()).count();
    }

    /** Whether {@code vm} is a member of one of the daemon's families (its run directory is the fork controller's). */
    public boolean isMember(String vm) {
        return controller.list().stream().anyMatch(v -> v.name().equals(vm));
    }

    /**
     * Whether a run directory is a family member's current process's (a member changes process at a
     * fork, so its run directory is named after the process, e.g. {@code fam1.8}).
     */
    public boolean ownsRunDir(Path runDir) {
        return controller.list().stream().anyMatch(v -> v.qgaSocket().getParent().equals(runDir));
    }

    /** The last lines of a family member's console. */
    public List<String> console(String vm, int lines) {
        List<String> all = find(vm).console().lines();
        return all.subList(Math.max(0, all.size() - lines), all.size());
    }

    /** Kills one VM of a family (a clone, or a root with its family). */
    public void kill(String vm) {
        ForkableVm v = find(vm);
        if (v.cloneId() == 0) {
            v.family().close();   // the root: the whole family (clones share its memory files and network)
            hosts.removeIdle();
        } else {
            v.kill();
        }
    }

    /** Waits for a VM's exit; its exit code (vmexit CODE, -1 when killed). */
    public int await(String vm, Duration timeout) {
        Integer code = ended.get(vm);
        if (code != null) {
            return code;
        }
        try {
            return find(vm).exitCode().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new ApiException(408, vm, "VM '" + vm + "' still runs after " + timeout.toMillis() + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiException(503, vm, "interrupted");
        } catch (ExecutionException e) {
            throw new ApiException(500, vm, e.getCause().getMessage());
        }
    }

    private ForkableVm find(String vm) {
        try {
            return controller.find(vm);
        } catch (IllegalArgumentException e) {
            throw new ApiException(404, vm, e.getMessage());
        }
    }

    private void watch(ForkableVm v) {
        v.exitCode().thenAccept(code -> ended.put(v.name(), code));
        v.exitCode().thenAccept(code -> events.publish(v.parent() == null ? "family-ended" : "clone-exited", v.name(), -1,
                code == -1 ? "killed or stopped by the host" : "vmexit " + code, Map.of("exitCode", code,
                        "parent", v.parent() == null ? "" : v.parent().name())));
        if (v.parent() == null) {
            // The family ends with its root: the other hosts it used may now be idle.
            v.exitCode().thenRunAsync(hosts::removeIdle);
        }
    }

    private Member member(ForkableVm v) {
        Integer code = v.exitCode().isDone() ? v.exitCode().getNow(null) : null;
        return new Member(v.name(), v.pid(), v.address().ip(), v.address().mac(), v.cloneId(), hostName(v), v.isRunning(),
                v.isRunning() && v.hasSharedMemory(), code,
                v.children().stream().map(this::member).toList());
    }

    private String hostName(ForkableVm v) {
        return hosts.nameOf(v.remoteHost());
    }

    /**
     * The daemon stops: the families' VMs run on (a successor adopts them); only the connections close.
     * Remote clones still fetching pages get them all first (their page server ends with this daemon).
     */
    @Override
    public void close() {
        try {
            java.util.concurrent.CompletableFuture.allOf(becomingIndependent.toArray(java.util.concurrent.CompletableFuture[]::new))
                    .get(2, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            // reported per clone (clone-not-independent); the next daemon reports such a clone lost
        }
        controller.letGo();
        hosts.close();
        for (Path dir : List.of(memoryDir, diskDir)) {
            try {
                Files.deleteIfExists(dir);   // only when no family lives in it
            } catch (IOException e) {
                // a family lives on in it
            }
        }
    }
}

package dev.doppel.daemon.fork;

import dev.doppel.clone.CloneController;
import dev.doppel.clone.ForkOptions;
import dev.doppel.clone.ForkResult;
import dev.doppel.clone.ForkableVm;
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
 * clones each fork makes of it. Each clone's exit is reported on the event stream. A family lives as
 * long as the daemon: its VMs share the parent's memory file and clone network, which the fork
 * controller owns in this process (see docs/daemon.md: re-adopting families is not done).
 */
public final class ForkFamilies implements AutoCloseable {
    private final CloneController controller;
    private final EventHub events;
    private final DoppelMeters meters;
    private final Path work;
    /** Members that ended, with their exit codes (a wait after the exit still gets the code); the last 4,096. */
    private final Map<String, Integer> ended = java.util.Collections.synchronizedMap(new java.util.LinkedHashMap<>() {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Integer> eldest) {
            return size() > 4096;
        }
    });

    /** One family member as the API lists it. */
    public record Member(String name, long pid, String ip, String mac, int cloneId, boolean running, Integer exitCode,
                         List<Member> children) {
    }

    /** How to boot a family's parent: Doppel's guest (workload {@code run}) or a disk image with qemu-guest-agent. */
    public record ParentRequest(String name, long memMiB, String run, Path image) {
    }

    private final Path memoryDir;
    private final Path diskDir;

    /**
     * @param work      the families' base disks
     * @param memoryDir the families' generation files (tmpfs), one directory per family
     * @param diskDir   the families' disk overlays, one directory per family
     */
    public ForkFamilies(VmLauncher launcher, EventHub events, DoppelMeters meters, Path work, Path memoryDir, Path diskDir)
            throws IOException {
        ForkOptions d = ForkOptions.defaults();
        this.controller = new CloneController(launcher, new ForkOptions(d.maxClones(), memoryDir, diskDir, d.reshareAfterFork(),
                d.keepOverlays(), d.cloneTcgCacheMiB(), d.stepTimeout()));
        this.events = events;
        this.meters = meters;
        this.work = Files.createDirectories(work);
        this.memoryDir = memoryDir;
        this.diskDir = diskDir;
    }

    /**
     * Finds the families a previous daemon left when it died: their VMs died with it (a family's
     * clones map its generation files and sit on its network, both owned by the fork controller in the
     * daemon's process, so they are not re-adopted); their generation files, overlays, base disks,
     * clone network and the run directories of their dead members are removed, and each is reported
     * ({@code family-lost}). Returns the families found.
     */
    public List<String> adoptLeftovers(java.util.function.Predicate<Path> deadRunDir) {
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
            List<String> removed = new ArrayList<>();
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
            try {
                Files.deleteIfExists(work.resolve(family + ".qcow2"));
            } catch (IOException e) {
                removed.add("(base disk not removed: " + e.getMessage() + ")");
            }
            for (dev.doppel.vm.VmRunDir rd : dev.doppel.vm.VmRunDir.all()) {
                String n = rd.path().getFileName().toString();
                if ((n.startsWith(family + ".") || n.startsWith(family + "-f")) && deadRunDir.test(rd.path())) {
                    rd.delete();
                    removed.add("run directory " + n);
                }
            }
            events.publish("family-lost", family, -1, "its VMs died with the previous daemon; its files were removed",
                    Map.of("removed", removed));
        }
        return List.copyOf(names);
    }

    /** Boots a forkable parent (its RAM on a shared file, its NIC on the family's isolated network). */
    public Member startParent(ParentRequest req) throws IOException {
        if (req.name() == null || !req.name().matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")) {
            throw new ApiException(400, req.name(), "bad family name '" + req.name() + "'");
        }
        VmSpec spec;
        Path disk;
        String format;
        if (req.image() != null) {
            disk = req.image().toAbsolutePath();
            format = DiskImageVm.format(disk);
            spec = DiskImageVm.spec(req.name(), disk, format).memoryMiB(req.memMiB() > 0 ? req.memMiB() : 1024).build();
        } else {
            disk = work.resolve(req.name() + ".qcow2");
            format = "qcow2";
            HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
            spec = VmLauncher.guestSpec(req.name(), GuestImage.locate(), req.run() == null ? "dirtier" : req.run(),
                    Map.of("doppel.dirty_rate", "2000")).memoryMiB(req.memMiB() > 0 ? req.memMiB() : 256).build();
        }
        ForkableVm parent;
        try {
            parent = controller.start(spec, disk, format);
        } catch (IllegalArgumentException e) {
            throw new ApiException(409, req.name(), e.getMessage());
        }
        watch(parent);
        events.publish("family-started", parent.name(), -1, null, Map.of("pid", parent.pid(), "ip", parent.address().ip()));
        return member(parent);
    }

    /** Forks a family member into {@code n} clones. */
    public List<Member> fork(String vm, int n) {
        if (n < 1 || n > 64) {
            throw new ApiException(400, vm, "clones must be 1..64, got " + n);
        }
        ForkableVm v = find(vm);
        ForkResult r = controller.fork(v, n);
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
        find(vm).kill();
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
    }

    private Member member(ForkableVm v) {
        Integer code = v.exitCode().isDone() ? v.exitCode().getNow(null) : null;
        return new Member(v.name(), v.pid(), v.address().ip(), v.address().mac(), v.cloneId(), v.isRunning(), code,
                v.children().stream().map(this::member).toList());
    }

    @Override
    public void close() {
        controller.close();
        for (Path dir : List.of(work, memoryDir, diskDir)) {
            try {
                FileTrees.deleteRecursively(dir);
            } catch (RuntimeException e) {
                events.publish("family-cleanup-failed", null, -1, e.getMessage(), Map.of("dir", dir.toString()));
            }
        }
    }
}

package dev.doppel.daemon.vms;

import dev.doppel.daemon.ApiException;
import dev.doppel.daemon.events.EventHub;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.QemuBinary;
import dev.doppel.vm.VmDefinition;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's VMs, found in their run directories (the one truth: a VM outlives the daemon, and a
 * restarted daemon finds it there again). Starts them detached, stops them, tails their consoles,
 * and reports a VM whose QEMU exits.
 */
public final class HostVms {
    private static final Logger log = LoggerFactory.getLogger(HostVms.class);
    /** In a restored VM's run directory: where it came from (vm=, epoch=, store=). */
    public static final String RESTORED_FROM = "restored-from";

    private final VmLauncher stock;
    private final VmLauncher patched;
    private final EventHub events;
    /** VMs whose exit is watched (so each exit is reported once). */
    private final Set<String> watched = ConcurrentHashMap.newKeySet();
    /** Names of VMs that are being stopped on request (their exit is not news). */
    private final Set<String> stopping = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    public HostVms(VmLauncher stock, Path patchedQemuPrefix, EventHub events) {
        this.stock = stock;
        this.patched = patchedQemuPrefix == null ? null : new VmLauncher(QemuBinary.atPrefix(patchedQemuPrefix), stock.accelerator());
        this.events = events;
    }

    /** The launcher whose QEMU can be a COLO primary (and runs restored VMs). */
    public VmLauncher patchedLauncher() {
        if (patched == null) {
            throw new ApiException(503, null, "this daemon has no COLO-patched QEMU (run ./scripts/setup)");
        }
        return patched;
    }

    /** Starts a VM detached; it is this host's until stopped, whatever happens to the daemon. */
    public VmView start(VmDefinition def) throws IOException {
        if (Files.exists(VmRunDir.of(def.name()).specFile()) && VmRecord.readFrom(VmRunDir.of(def.name())).alive()) {
            throw new ApiException(409, def.name(), "VM '" + def.name() + "' is already running");
        }
        VmDefinition.Started s = def.start(def.colo() ? patchedLauncher() : stock);
        // The daemon does not keep the VM's monitor: QEMU serves one QMP client, and protection takes it.
        s.vm().releaseQmp();
        s.vm().console().close();
        events.publish("vm-started", def.name(), -1, null, Map.of("pid", s.vm().pid(), "colo", def.colo(),
                "image", def.image() == null ? "" : def.image().toString()));
        watch(def.name(), s.vm().pid());
        return view(VmRunDir.of(def.name()), null);
    }

    /** Every VM with a run directory on this host. */
    public List<VmView> list(java.util.function.Function<String, dev.doppel.remus.primary.ProtectionStatus> protection) {
        List<VmView> out = new ArrayList<>();
        for (VmRunDir dir : VmRunDir.all()) {
            try {
                out.add(view(dir, protection.apply(dir.path().getFileName().toString())));
            } catch (RuntimeException e) {
                log.warn("rundir={} event=unreadable-run-dir cause=\"{}\"", dir.path(), e.getMessage());
            }
        }
        return out;
    }

    public VmView get(String name, dev.doppel.remus.primary.ProtectionStatus protection) {
        return view(existing(name), protection);
    }

    private static VmView view(VmRunDir dir, dev.doppel.remus.primary.ProtectionStatus protection) {
        VmRecord rec = VmRecord.readFrom(dir);
        String origin = Files.exists(dir.path().resolve(RESTORED_FROM)) ? "restored" : "started";
        return new VmView(rec.name(), rec.pid(), rec.alive() ? "running" : "dead", rec.accelerator(), dir.path().toString(),
                origin, protection);
    }

    /** The run directory of a VM, or a 404. */
    public static VmRunDir existing(String name) {
        VmRunDir dir = VmRunDir.of(name);
        if (!Files.exists(dir.specFile())) {
            throw new ApiException(404, name, "no VM '" + name + "' on this host");
        }
        return dir;
    }

    /** Stops a VM (QMP quit, SIGKILL after the grace period) and removes its run directory and overlay. */
    public void stop(String name, Duration grace) {
        VmRunDir dir = existing(name);
        VmRecord rec = VmRecord.readFrom(dir);
        stopping.add(name);
        try {
            if (rec.alive()) {
                try (QmpClient qmp = QmpClient.connectUnix(dir.qmpSocket(), name, Duration.ofSeconds(5))) {
                    qmp.execute("quit", null, Duration.ofSeconds(2));
                } catch (RuntimeException e) {
                    log.warn("vm={} event=quit-failed cause=\"{}\" action=kill", name, e.getMessage());
                }
                ProcessHandle.of(rec.pid()).ifPresent(h -> {
                    try {
                        h.onExit().get(grace.toMillis(), TimeUnit.MILLISECONDS);
                    } catch (Exception e) {
                        h.destroyForcibly();
                    }
                });
            }
            Path store = restoredStore(dir);
            dir.delete();
            if (store != null) {
                dev.doppel.vm.FileTrees.deleteRecursively(store);
            }
            try {
                Files.deleteIfExists(DiskImageVm.overlayFor(name));
            } catch (IOException e) {
                log.warn("vm={} event=overlay-not-deleted cause=\"{}\"", name, e.getMessage());
            }
            events.publish("vm-stopped", name, -1, "stopped on request", Map.of("pid", rec.pid()));
        } finally {
            stopping.remove(name);
        }
    }

    /** The backup store a restored VM ran on (its RAM file), or null. */
    private static Path restoredStore(VmRunDir dir) {
        try {
            Path f = dir.path().resolve(RESTORED_FROM);
            if (!Files.exists(f)) {
                return null;
            }
            for (String line : Files.readAllLines(f)) {
                if (line.startsWith("store=") && line.length() > 6) {
                    Path store = Path.of(line.substring(6));
                    return Files.exists(store.resolve(dev.doppel.remus.backup.BackupStore.LIVE_FILE)) ? store : null;
                }
            }
        } catch (IOException e) {
            log.warn("rundir={} event=restored-from-unreadable cause=\"{}\"", dir.path(), e.getMessage());
        }
        return null;
    }

    /** The last {@code lines} lines of the VM's serial console. */
    public List<String> console(String name, int lines) throws IOException {
        Path log = existing(name).consoleLog();
        if (!Files.exists(log)) {
            return List.of();
        }
        List<String> all = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
        return all.subList(Math.max(0, all.size() - lines), all.size()).stream()
                .map(l -> l.replaceAll("\\e\\[[0-9;?]*[A-Za-z]|[\\x00-\\x08\\x0b-\\x1f]", "")).toList();
    }

    /**
     * Finds the VMs a previous daemon (or the CLI) left running, reports them, and watches their exits;
     * run directories {@code owned} by others (fork families' processes) are not VMs of this list.
     */
    public List<VmView> adopt(java.util.function.Predicate<Path> owned) {
        List<VmView> found = list(n -> null).stream().filter(v -> !owned.test(Path.of(v.runDir()))).toList();
        for (VmView v : found) {
            events.publish("vm-adopted", v.name(), -1, null, Map.of("pid", v.pid(), "state", v.state(), "origin", v.origin()));
            if (v.state().equals("running")) {
                watch(v.name(), v.pid());
            }
        }
        return found;
    }

    /** Reports the VM's exit once (also of VMs that other code, e.g. a failover, started here). */
    public void watch(String name, long pid) {
        if (!watched.add(name + "/" + pid)) {
            return;
        }
        ProcessHandle.of(pid).ifPresentOrElse(h -> h.onExit().thenRun(() -> {
            watched.remove(name + "/" + pid);
            if (!closed && !stopping.contains(name)) {
                events.publish("vm-exited", name, -1, "its QEMU process (pid " + pid + ") exited", Map.of("pid", pid));
            }
        }), () -> watched.remove(name + "/" + pid));
    }

    public void close() {
        closed = true;
    }
}

package dev.doppel.clone;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The host API of VM fork: start forkable VMs, fork them by name, find, kill and wait for clones.
 * Guest calls (vmfork, vmwait, vmexit, vmkill) are routed here too. Owns every family it started.
 */
public final class CloneController implements AutoCloseable {
    private final VmLauncher launcher;
    private final ForkOptions options;
    private final ForkService forks = new ForkService();
    private final RemoteForkService remoteForks;
    private volatile List<RemoteHost> guestForkHosts = List.of();
    private final Map<String, ForkFamily> families = new ConcurrentHashMap<>();
    private final ExecutorService guestCallExecutor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "guest-calls");
        t.setDaemon(true);
        return t;
    });

    /** How the families' processes start: tied to this JVM (default), or detached (a daemon's, see {@link #adopt}). */
    private final dev.doppel.vm.VmProcess.StartOptions memberStart;

    public CloneController(VmLauncher launcher, ForkOptions options) {
        this(launcher, options, dev.doppel.vm.VmProcess.StartOptions.defaults());
    }

    /**
     * @param memberStart how family processes start; detached ones outlive this controller, which
     *                    then records each family so that a successor can {@link #adopt} it
     */
    public CloneController(VmLauncher launcher, ForkOptions options, dev.doppel.vm.VmProcess.StartOptions memberStart) {
        this.launcher = launcher;
        this.options = options;
        this.memberStart = memberStart;
        this.remoteForks = new RemoteForkService(forks, options.pageServer(), options.remoteRecoverTimeout());
    }

    /** Boots a VM that can fork (RAM on a shared tmpfs file, NIC on its own isolated network). */
    public ForkableVm start(VmSpec spec, Path disk, String diskFormat) {
        families.values().removeIf(ForkFamily::isClosed);   // an ended family's name is free again
        if (families.containsKey(spec.name())) {
            throw new IllegalArgumentException("a fork family named '" + spec.name() + "' already exists");
        }
        ForkableVm root = ForkFamily.startRoot(launcher, options, spec, disk, diskFormat, memberStart);
        families.put(spec.name(), root.family());
        try {
            root.routeGuestCalls(new GuestCalls(this::forkForGuest, root, guestCallExecutor));
        } catch (IOException e) {
            root.family().close();
            families.remove(spec.name());
            throw new ForkException(spec.name(), "guest agent link failed", e);
        }
        return root;
    }

    /**
     * Takes over a family a dead controller left running ({@link ForkFamily#adopt}); guest calls of
     * its members are routed here again. Returns its living members, or an empty list (the family was
     * gone and its remains are removed).
     *
     * @param spec the root's spec, as {@link #start} was given it
     */
    public List<ForkableVm> adopt(VmSpec spec, FamilyRecord record, java.util.function.Consumer<String> report) {
        return adopt(spec, record, host -> {
            throw new IllegalStateException("no other host is known to this controller");
        }, report);
    }

    /** As above, for a family with clones on other hosts: {@code hosts} finds each by its namespace name. */
    public List<ForkableVm> adopt(VmSpec spec, FamilyRecord record, java.util.function.Function<String, RemoteHost> hosts,
                                  java.util.function.Consumer<String> report) {
        families.values().removeIf(ForkFamily::isClosed);
        if (families.containsKey(record.name())) {
            throw new IllegalArgumentException("a fork family named '" + record.name() + "' already exists");
        }
        ForkFamily family = ForkFamily.adopt(launcher, options, spec, memberStart, record, hosts, report);
        if (family == null) {
            return List.of();
        }
        families.put(record.name(), family);
        for (ForkableVm m : family.members()) {
            m.routeGuestCallsQuietly(new GuestCalls(this::forkForGuest, m, guestCallExecutor));
        }
        return List.copyOf(family.members());
    }

    /**
     * Lets every family go without stopping its VMs (their processes outlive this controller; a
     * successor adopts them); families tied to this JVM are stopped as by {@link #close}.
     */
    public void letGo() {
        for (ForkFamily f : families.values()) {
            if (f.isClosed()) {
                continue;
            }
            if (f.outlivesController()) {
                f.letGo();
            } else {
                f.close();
            }
        }
        families.clear();
        guestCallExecutor.shutdownNow();
    }

    /** Host-initiated fork of the VM with that name (root or clone). */
    public ForkResult fork(String vmName, int n) {
        return fork(find(vmName), n);
    }

    public ForkResult fork(ForkableVm vm, int n) {
        ForkResult r = forks.fork(vm, n);
        for (ForkableVm clone : r.clones()) {
            clone.routeGuestCallsQuietly(new GuestCalls(this::forkForGuest, clone, guestCallExecutor));
        }
        return r;
    }

    /**
     * Forks {@code vm} into {@code n} clones on other hosts ({@link RemoteForkService}); they fetch
     * memory from the fork's page server on first touch.
     */
    public RemoteForkService.RemoteForkResult forkRemote(ForkableVm vm, int n, List<RemoteHost> hosts) {
        RemoteForkService.RemoteForkResult r = remoteForks.fork(vm, n, hosts);
        for (ForkableVm clone : r.clones()) {
            clone.routeGuestCallsQuietly(new GuestCalls(this::forkForGuest, clone, guestCallExecutor));
        }
        return r;
    }

    /**
     * Where forks called from inside guests ({@code vmfork}) put their clones: on these hosts, fed by
     * a page server, or (empty list, the default) on this host.
     */
    public void placeGuestForksOn(List<RemoteHost> hosts) {
        this.guestForkHosts = List.copyOf(hosts);
    }

    private ForkResult forkForGuest(ForkableVm vm, int n) {
        List<RemoteHost> hosts = guestForkHosts;
        return hosts.isEmpty() ? forks.fork(vm, n) : remoteForks.fork(vm, n, hosts).fork();
    }

    /** Pre-starts the processes of the next fork of {@code vm} into n clones; returns ms spent. */
    public double prepare(ForkableVm vm, int n) {
        return forks.prepare(vm, n);
    }

    /**
     * Pre-starts the processes of the next {@link #forkRemote} of {@code vm} into n clones on
     * {@code hosts}; returns ms spent.
     */
    public double prepareRemote(ForkableVm vm, int n, List<RemoteHost> hosts) {
        return remoteForks.prepare(vm, n, hosts);
    }

    public ForkService forkService() {
        return forks;
    }

    /** Any live VM of any family by name. */
    public ForkableVm find(String vmName) {
        for (ForkFamily f : families.values()) {
            for (ForkableVm m : f.members()) {
                if (m.name().equals(vmName)) {
                    return m;
                }
            }
        }
        throw new IllegalArgumentException("unknown VM '" + vmName + "' (not a running forkable VM or clone)");
    }

    public List<ForkableVm> list() {
        return families.values().stream().flatMap(f -> f.members().stream()).toList();
    }

    @Override
    public void close() {
        families.values().forEach(ForkFamily::close);
        families.clear();
        guestCallExecutor.shutdownNow();
    }
}

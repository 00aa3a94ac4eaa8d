package dev.doppel.clone;

import dev.doppel.clone.disk.DiskImage;
import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.memory.GenerationStore;
import dev.doppel.clone.net.CloneAddress;
import dev.doppel.clone.net.CloneNetwork;
import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.multicast.MulticastDistribution;
import dev.doppel.vm.FileTrees;
import dev.doppel.vm.GuestBoot;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Everything a family of forked VMs shares, and its owner: the device model (every process of every
 * member has the identical one, so device state migrates between them), the isolated clone network,
 * the generation files, the disk chain, and the members themselves. Closing the family stops every
 * member and removes every file and the namespace.
 */
public final class ForkFamily implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ForkFamily.class);

    private final String name;
    private final VmLauncher launcher;
    private final VmSpec template;
    private final ForkOptions options;
    private final CloneNetwork network;
    private final GenerationStore generations;
    private final Path familyDiskDir;
    private final AtomicInteger forkNumbers = new AtomicInteger();
    private final AtomicInteger processNumbers = new AtomicInteger();
    private final Map<String, ForkableVm> members = new ConcurrentHashMap<>();
    /** The segments on other hosts an adoption found, by host namespace (new forks get their own from the host). */
    private final Map<String, CloneNetwork> adoptedSegments = new ConcurrentHashMap<>();
    /** Closed with the family after its members: page servers and clone-network segments on other hosts. */
    private final List<AutoCloseable> attachments = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final ExecutorService background;
    /** How member processes start: tied to this JVM, or detached so that they outlive it (a daemon's). */
    private final VmProcess.StartOptions memberStart;
    private volatile boolean closing;
    private final Object recordLock = new Object();
    private volatile boolean closed;

    private ForkFamily(String name, VmLauncher launcher, VmSpec template, ForkOptions options, CloneNetwork network,
                       VmProcess.StartOptions memberStart) {
        this.name = name;
        this.memberStart = memberStart;
        this.launcher = launcher;
        this.template = template;
        this.options = options;
        this.network = network;
        this.generations = new GenerationStore(options.memoryDir().resolve(name));
        this.familyDiskDir = options.diskDir().resolve(name);
        this.background = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "fork-family-" + name);
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * Boots the root VM of a new family: RAM on a shared generation file, NIC on the family's
     * isolated network with the root address, disk {@code disk0} on {@code baseDisk} (may be null).
     *
     * @param spec the guest (boot, memory size, vCPUs); memory backend, NICs, disks and netns are the family's
     */
    public static ForkableVm startRoot(VmLauncher launcher, ForkOptions options, VmSpec spec, Path baseDisk, String baseFormat) {
        return startRoot(launcher, options, spec, baseDisk, baseFormat, VmProcess.StartOptions.defaults());
    }

    /**
     * As above; {@code memberStart} says how every process of the family starts (detached ones
     * outlive this JVM, and a successor can {@link #adopt} the family).
     */
    public static ForkableVm startRoot(VmLauncher launcher, ForkOptions options, VmSpec spec, Path baseDisk, String baseFormat,
                                       VmProcess.StartOptions memberStart) {
        CloneNetwork network = CloneNetwork.create(spec.name());
        ForkFamily family;
        try {
            family = new ForkFamily(spec.name(), launcher, template(spec, network), options, network, memberStart);
        } catch (RuntimeException e) {
            network.close();
            throw e;
        }
        try {
            Files.createDirectories(family.familyDiskDir);
            DiskImage disk;
            if (baseDisk == null) {
                disk = null;
            } else if (family.bootsFromDisk()) {
                // The user's own image is never written: the root runs on an overlay (which holds the
                // image by its real path, so a symlink moved later does not change the disk).
                disk = family.newOverlay(spec.name(), DiskImage.base(baseDisk.toRealPath(), baseFormat));
            } else {
                disk = DiskImage.base(baseDisk, baseFormat);
                disk.acquire();   // held by the root's first process
            }
            GenerationFile gen = family.generations.create();
            gen.acquire();
            MemberProcess p = family.startProcess(spec.name(), CloneAddress.ROOT, MemoryBackend.File.shared(gen.path()),
                    gen, disk, true, false, false);
            ForkableVm root = new ForkableVm(family, spec.name(), CloneAddress.ROOT, null, 0, p);
            family.members.put(root.name(), root);
            family.persist();
            root.connectAgent();
            if (family.identityThroughQga()) {
                // A stock guest asks DHCP, and the clone network has no DHCP server: its address comes through qemu-ga.
                family.background.execute(() -> RealGuestIdentities.giveRootAddress(root));
            } else {
                root.identity().complete(null);   // Doppel's guest boots with its address (doppel.ip)
            }
            return root;
        } catch (IOException | RuntimeException e) {
            family.close();
            throw new ForkException(spec.name(), "cannot start fork root", e);
        }
    }

    /**
     * Takes over a living family whose controller died (its members were started detached): the clone
     * network, generation files and disk chain are found again, each member's QEMU is re-adopted with
     * a new QMP connection, and what was only being prepared when the controller died (pre-started
     * processes, their taps and overlays, fork descriptors) is removed. A member whose QEMU is gone is
     * reported and left out. Returns null, with everything removed, if no member lives.
     *
     * <p>A remote clone (on another host, {@link FamilyRecord.Member#host}) is adopted only if it is
     * independent: its page server lived in the dead controller, so one that had not got every page
     * yet ({@link FamilyRecord.Member#waitsForPages}) would wait for the missing ones for ever; it is
     * killed and reported lost (without a QMP call: its vCPUs may hold QEMU's big lock, waiting).
     *
     * @param spec   the root's spec as the family was started with it
     * @param hosts  the other hosts remote clones run on, by namespace name
     * @param report one line per finding, for the caller's log and events
     */
    public static ForkFamily adopt(VmLauncher launcher, ForkOptions options, VmSpec spec, VmProcess.StartOptions memberStart,
                                   FamilyRecord rec, java.util.function.Function<String, RemoteHost> hosts,
                                   java.util.function.Consumer<String> report) {
        CloneNetwork network = CloneNetwork.existing(rec.name(), rec.members().stream().filter(m -> m.host() == null)
                .map(FamilyRecord.Member::tap).toList());
        ForkFamily family = new ForkFamily(rec.name(), launcher, template(spec, network), options, network, memberStart);
        family.forkNumbers.set(rec.forks());
        family.processNumbers.set(rec.processes());
        Map<Integer, GenerationFile> gens = family.generations.existing();
        Map<String, DiskImage> disks = new java.util.HashMap<>();
        for (FamilyRecord.Disk d : rec.disks()) {   // bases first
            disks.put(d.path(), d.backing() == null ? DiskImage.base(Path.of(d.path()), d.format())
                    : DiskImage.existingOverlay(Path.of(d.path()), disks.get(d.backing())));
        }
        java.util.Set<String> processes = new java.util.HashSet<>();
        for (FamilyRecord.Member m : rec.members()) {
            processes.add(m.process());
        }
        family.removeStrayProcesses(processes, report);
        for (FamilyRecord.Member m : rec.members()) {
            GenerationFile gen = gens.get(m.generation());
            DiskImage disk = m.disk() == null ? null : disks.get(m.disk());
            ForkableVm parent = m.parent() == null ? null : family.members.get(m.parent());   // null: its parent ended
            if (gen == null || (m.disk() != null && disk == null)) {
                report.accept(m.name() + ": left out (its generation file or disk is gone)");
                continue;
            }
            if (m.host() != null && m.waitsForPages()) {
                report.accept(m.name() + ": lost, killed (a remote clone whose page server ended with its controller before it"
                        + " had every page: it would wait for the missing ones for ever)");
                killLeftover(m.process(), report);
                continue;
            }
            CloneAddress address = new CloneAddress(m.forkNumber(), m.addressId());
            CloneNetwork net;
            try {
                net = m.host() == null ? network : family.segmentOn(hosts.apply(m.host()), m.tap(), rec);
            } catch (RuntimeException e) {
                report.accept(m.name() + ": lost (its host " + m.host() + ": " + e.getMessage() + ")");
                killLeftover(m.process(), report);
                continue;
            }
            MemoryBackend memory = m.host() != null ? new MemoryBackend.Anonymous()
                    : m.sharedMemory() ? MemoryBackend.File.shared(gen.path()) : MemoryBackend.File.privateReadOnly(gen.path());
            VmSpec processSpec = family.processSpec(m.process(), address, memory, m.tap(), disk, m.cloneId() != 0, net).build();
            VmProcess vm;
            try {
                vm = VmProcess.adopt(processSpec, dev.doppel.vm.VmRunDir.of(m.process()), launcher.accelerator().accelerator(),
                        memberStart);
            } catch (RuntimeException e) {
                report.accept(m.name() + ": lost (" + e.getMessage() + ")");
                killLeftover(m.process(), report);
                net.removeTap(m.tap());
                continue;
            }
            gen.acquire();
            if (disk != null) {
                disk.acquire();
            }
            if (m.host() == null) {
                resumeIfStopped(m.name(), vm, report);
            }
            MemberProcess p = new MemberProcess(vm, m.tap(), disk, gen, m.sharedMemory(), net);
            ForkableVm member = new ForkableVm(family, m.name(), address, parent, m.cloneId(), p);
            member.identity().complete(null);   // it had its identity, or never gets one: the fork that gave it is over
            if (parent != null) {
                parent.addChild(member);
            }
            family.members.put(member.name(), member);
            try {
                member.connectAgent();
            } catch (IOException e) {
                report.accept(m.name() + ": adopted, but its guest agent does not answer (" + e.getMessage() + ")");
            }
            report.accept(m.name() + ": adopted (pid " + vm.pid() + ")");
        }
        // What no adopted process holds: generations, overlays (releasing them frees their files).
        gens.values().stream().filter(g -> g.users() == 0).forEach(g -> {
            g.acquire();
            g.release();
        });
        // (An overlay's release also releases its backing; one freed that way is skipped when the loop reaches it.)
        disks.values().stream().filter(d -> d.owned() && d.users() == 0 && !d.isFreed()).forEach(d -> {
            d.acquire();
            d.release();
        });
        family.removeStrayFiles(disks.keySet());
        if (family.members.isEmpty()) {
            family.close();
            return null;
        }
        family.persist();
        return family;
    }

    /**
     * This family's segment on another host, as a dead controller left it (found by the tap of a
     * remote member on it); registered with the host, and released there when the family ends.
     */
    private CloneNetwork segmentOn(RemoteHost host, String tap, FamilyRecord rec) {
        CloneNetwork known = adoptedSegments.get(host.name());
        if (known != null) {
            return known;
        }
        List<String> taps = rec.members().stream().filter(m -> host.name().equals(m.host()) && !m.waitsForPages())
                .map(FamilyRecord.Member::tap).toList();
        CloneNetwork segment = CloneNetwork.existingSegment(host.namespace(), tap, taps);
        host.adoptSegment(network, segment);
        attach(() -> host.releaseSegment(network));
        adoptedSegments.put(host.name(), segment);
        return segment;
    }

    /** Kills the QEMU of a member that could not be adopted (nothing would own it) and removes its run directory. */
    private static void killLeftover(String process, java.util.function.Consumer<String> report) {
        dev.doppel.vm.VmRunDir rd = dev.doppel.vm.VmRunDir.of(process);
        for (ProcessHandle h : rd.qemuProcesses()) {
            h.destroyForcibly();
            h.onExit().orTimeout(10, java.util.concurrent.TimeUnit.SECONDS).exceptionally(t -> h).join();
            report.accept("QEMU " + process + " (pid " + h.pid() + "), killed: it could not be adopted");
        }
        rd.delete();
    }

    /**
     * A member whose controller died in the middle of a fork or reshare may be stopped (the fork stops
     * the parent while it saves its device state) or have migrated away to a process that is now
     * removed: its migration is cancelled and it runs on where it was. Family members are never
     * paused on purpose.
     */
    private static void resumeIfStopped(String member, VmProcess vm, java.util.function.Consumer<String> report) {
        String status = vm.qmp().execute("query-status").path("status").asText();
        if (status.equals("running")) {
            return;
        }
        try {
            vm.qmp().execute("migrate_cancel");
        } catch (RuntimeException e) {
            log.debug("vm={} migrate_cancel: {}", member, e.getMessage());
        }
        vm.qmp().execute("cont");
        report.accept(member + ": was " + status + " (its controller died during a fork or reshare), resumed");
    }

    /** Kills the family's QEMUs that no member runs in (pre-started for a fork or reshare that did not finish). */
    private void removeStrayProcesses(java.util.Set<String> memberProcesses, java.util.function.Consumer<String> report) {
        removeProcesses(name, memberProcesses, report);
    }

    /**
     * Kills every QEMU of family {@code family} whose process name is not in {@code keep} and removes
     * its run directory, also one whose record was never written (its starter died just after the start).
     */
    public static void removeProcesses(String family, java.util.Set<String> keep, java.util.function.Consumer<String> report) {
        String pattern = java.util.regex.Pattern.quote(family) + "(-f\\d+c\\d+)*\\.\\d+";
        for (dev.doppel.vm.VmRunDir rd : dev.doppel.vm.VmRunDir.allDirectories()) {
            String n = rd.path().getFileName().toString();
            if (!n.matches(pattern) || keep.contains(n)) {
                continue;
            }
            for (ProcessHandle h : rd.qemuProcesses()) {
                h.destroyForcibly();
                h.onExit().orTimeout(10, java.util.concurrent.TimeUnit.SECONDS).exceptionally(t -> h).join();
                report.accept("QEMU " + n + " (pid " + h.pid() + "), killed: no member runs in it");
            }
            rd.delete();
            report.accept("run directory " + n + " removed");
        }
    }

    /** Deletes overlays and fork descriptors that are in no record (a fork in flight when the controller died). */
    private void removeStrayFiles(java.util.Set<String> recordedDisks) {
        for (Path dir : List.of(familyDiskDir, generations.directory())) {
            try (java.util.stream.Stream<Path> files = Files.list(dir)) {
                files.filter(f -> {
                    String n = f.getFileName().toString();
                    // fork descriptors and multicast page caches: no fork's page server outlives its controller
                    return (n.endsWith(".qcow2") && !recordedDisks.contains(f.toString())) || n.endsWith(".state")
                            || n.startsWith(MulticastDistribution.CACHE_PREFIX);
                }).forEach(f -> {
                    try {
                        Files.deleteIfExists(f);
                    } catch (IOException e) {
                        log.warn("family={} cannot remove {}: {}", name, f, e.getMessage());
                    }
                });
            } catch (IOException e) {
                log.warn("family={} cannot list {}: {}", name, dir, e.getMessage());
            }
        }
    }

    /**
     * Writes the family's record (members with their current processes, the disk chain) for a successor
     * controller; only for families whose processes outlive this JVM.
     */
    void persist() {
        if (memberStart.dieWithJvm() || closing) {
            return;
        }
        // Its own lock, not the family's monitor: close() holds that while it waits for members whose
        // lifecycle (a reshare) ends with a persist.
        synchronized (recordLock) {
            try {
                writeRecord();
            } catch (RuntimeException e) {
                // The family runs on; only a successor's adoption would miss this change.
                log.warn("family={} event=record-not-written cause=\"{}\"", name, e.getMessage());
            }
        }
    }

    private void writeRecord() {
        List<ForkableVm> ordered = new java.util.ArrayList<>(members.values());
        ordered.sort(java.util.Comparator.comparingInt(ForkFamily::depth).thenComparing(ForkableVm::name));
        List<FamilyRecord.Member> ms = new java.util.ArrayList<>();
        Map<Path, FamilyRecord.Disk> chain = new java.util.LinkedHashMap<>();
        for (ForkableVm m : ordered) {
            MemberProcess p = m.currentProcess();
            if (p == null) {
                continue;
            }
            ms.add(new FamilyRecord.Member(m.name(), m.address().forkNumber(), m.address().cloneId(), m.cloneId(),
                    m.parent() == null ? null : m.parent().name(), p.vm.name(), p.tap, p.disk == null ? null : p.disk.path().toString(),
                    p.generation.number(), p.generation.isFrozen(), p.sharedMemory, p.remoteHost(), p.waitsForPages));
            addChain(chain, p.disk);
        }
        new FamilyRecord(name, forkNumbers.get(), processNumbers.get(), ms, List.copyOf(chain.values())).writeTo(familyDiskDir);
    }

    private static int depth(ForkableVm v) {
        int d = 0;
        for (ForkableVm p = v.parent(); p != null; p = p.parent()) {
            d++;
        }
        return d;
    }

    private static void addChain(Map<Path, FamilyRecord.Disk> chain, DiskImage disk) {
        if (disk == null || chain.containsKey(disk.path())) {
            return;
        }
        addChain(chain, disk.backing());
        chain.put(disk.path(), new FamilyRecord.Disk(disk.path().toString(), disk.format(),
                disk.backing() == null ? null : disk.backing().path().toString(), disk.owned()));
    }

    /**
     * Lets the family go without stopping it (a daemon that stops while its guests run on): the
     * members' QMP and agent connections close, their QEMUs run on, and the record stays for the
     * successor. Only for families whose processes outlive this JVM.
     */
    public synchronized void letGo() {
        closing = true;   // no more records, no close by a member that ends now
        for (ForkableVm m : List.copyOf(members.values())) {
            m.letGo();
        }
        members.clear();
        background.shutdown();
        log.info("family={} event=let-go note=\"its VMs run on; a successor adopts them\"", name);
    }

    /** Whether the family's processes outlive this JVM (so that {@link #letGo} is possible). */
    public boolean outlivesController() {
        return !memberStart.dieWithJvm();
    }

    /**
     * Starts one QEMU process of this family. On failure everything it took (tap, references) is
     * given back and the error names the member.
     */
    MemberProcess startProcess(String member, CloneAddress address, MemoryBackend memory, GenerationFile gen, DiskImage disk,
                               boolean tapUp, boolean incoming, boolean isClone) {
        return startProcess(member, address, memory, gen, disk, tapUp, incoming, isClone, network, incoming);
    }

    /**
     * As above, on a given part of the clone network ({@code net}: the family's own namespace, or its
     * segment on another host) and with {@code -S} only when {@code paused}: a postcopy destination
     * starts the guest itself when the source says RUN.
     */
    MemberProcess startProcess(String member, CloneAddress address, MemoryBackend memory, GenerationFile gen, DiskImage disk,
                               boolean tapUp, boolean incoming, boolean isClone, CloneNetwork net, boolean paused) {
        String processName = member + "." + processNumbers.incrementAndGet();
        String tap = net.newTap(tapUp);
        try {
            VmSpec spec = processSpec(processName, address, memory, tap, disk, isClone, net).incomingDefer(incoming)
                    .startPaused(paused).build();
            VmProcess vm = launcher.start(spec, memberStart);
            return new MemberProcess(vm, tap, disk, gen, memory instanceof MemoryBackend.File f && f.share(), net);
        } catch (RuntimeException e) {
            net.removeTap(tap);
            if (disk != null) {
                disk.release();
            }
            gen.release();
            throw new ForkException(member, "cannot start QEMU process " + processName, e);
        }
    }

    /** The device model every process of the family shares: the parent's, on the clone network. */
    private static VmSpec template(VmSpec spec, CloneNetwork network) {
        GuestBoot boot = spec.boot() == null ? null : spec.boot().withParameter("doppel.ip", CloneAddress.ROOT.cidr());
        return spec.toBuilder().boot(boot).clearNics().clearDisks().netns(network.namespace()).build();
    }

    /** One process's spec: the template with its memory, NIC and disk. */
    private VmSpec.Builder processSpec(String processName, CloneAddress address, MemoryBackend memory, String tap, DiskImage disk,
                                       boolean isClone, CloneNetwork net) {
        VmSpec.Builder b = template.toBuilder().name(processName).memory(memory)
                .netns(net.namespace())
                .nic("net0", address.mac(), new NicSpec.Netdev.Tap(tap));
        if (disk != null) {
            b.disk("disk0", disk.path(), disk.format(), false);
        }
        if (isClone && options.cloneTcgCacheMiB() > 0) {
            b.tcgCacheMiB(options.cloneTcgCacheMiB());
        }
        if (isClone) {
            b.extraArgument(options.cloneExtraArguments().toArray(String[]::new));
        }
        return b;
    }

    /** A fresh overlay for a new process of {@code member} on {@code backing}. */
    DiskImage newOverlay(String member, DiskImage backing) {
        if (backing == null) {
            return null;
        }
        Path path = familyDiskDir.resolve(member + "." + processNumbers.incrementAndGet() + ".qcow2");
        DiskImage overlay = DiskImage.overlay(path, backing);
        if (options.keepOverlays()) {
            overlay.keep();
        }
        overlay.acquire();
        return overlay;
    }

    /** The family's guests boot from their own disk (a user's image), not from Doppel's kernel. */
    boolean bootsFromDisk() {
        return template.boot() == null;   // GuestDescriptor#diskBoot
    }

    /**
     * Whether members get their identity (address; a clone also host name, MAC, SSH keys, RNG, clock)
     * through the standard QEMU guest agent rather than Doppel's agent: the device model has
     * qemu-ga's port and the guest boots from its own disk. Such a guest has Doppel's agent port too
     * (for a guest that installs Doppel's helper), but a stock distribution image does not answer on it.
     */
    public boolean identityThroughQga() {
        return template.qemuGuestAgent() && bootsFromDisk();   // GuestDescriptor#qemuGuestAgent, #diskBoot
    }

    /** Something to close with the family, after its members (a page server, a network segment). */
    void attach(AutoCloseable resource) {
        attachments.add(resource);
    }

    int nextForkNumber() {
        int n = forkNumbers.incrementAndGet();
        if (n > CloneAddress.MAX_FORKS) {
            throw new ForkException(name, "family exhausted its " + CloneAddress.MAX_FORKS + " fork numbers");
        }
        return n;
    }

    Path descriptorPath(int forkNumber) {
        return generations.directory().resolve("fork-" + forkNumber + ".state");
    }

    GenerationStore generations() {
        return generations;
    }

    void register(ForkableVm member) {
        members.put(member.name(), member);
        persist();
    }

    /** A member ended; the family closes itself when the last one is gone. */
    void memberEnded(ForkableVm member) {
        members.remove(member.name());
        persist();
        if (members.isEmpty() && !closing) {
            background.execute(this::close);
        }
    }

    ExecutorService background() {
        return background;
    }

    public String name() {
        return name;
    }

    public ForkOptions options() {
        return options;
    }

    public CloneNetwork network() {
        return network;
    }

    public Collection<ForkableVm> members() {
        return List.copyOf(members.values());
    }

    public ForkableVm member(String memberName) {
        ForkableVm vm = members.get(memberName);
        if (vm == null) {
            throw new IllegalArgumentException("unknown VM '" + memberName + "' in fork family '" + name + "'");
        }
        return vm;
    }

    /** True once close() has finished: every process stopped, every file and the namespace removed. */
    public boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void close() {
        if (closing) {
            return;
        }
        closing = true;
        for (ForkableVm m : List.copyOf(members.values())) {
            try {
                m.stop();
            } catch (RuntimeException e) {
                log.warn("family={} vm={} stop failed: {}", name, m.name(), e.getMessage());
            }
        }
        members.clear();
        List<AutoCloseable> lastFirst = new java.util.ArrayList<>(attachments);
        java.util.Collections.reverse(lastFirst);
        for (AutoCloseable a : lastFirst) {
            try {
                a.close();
            } catch (Exception e) {
                log.warn("family={} cannot close {}: {}", name, a, e.getMessage());
            }
        }
        network.close();
        deleteTree(generations.directory());
        if (!options.keepOverlays()) {
            deleteTree(familyDiskDir);
        }
        // Not shutdownNow(): close() itself may run on this executor (last member ended), and
        // interrupting it would abort the clean-up above half-way.
        background.shutdown();
        closed = true;
        log.info("family={} event=closed", name);
    }

    private static void deleteTree(Path dir) {
        try {
            FileTrees.deleteRecursively(dir);
        } catch (java.io.UncheckedIOException e) {
            log.warn("cannot remove {}: {}", dir, e.getMessage());
        }
    }

}

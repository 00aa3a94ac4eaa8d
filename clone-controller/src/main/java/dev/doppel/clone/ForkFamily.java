package dev.doppel.clone;

import dev.doppel.clone.disk.DiskImage;
import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.memory.GenerationStore;
import dev.doppel.clone.net.CloneAddress;
import dev.doppel.clone.net.CloneNetwork;
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
    /** Closed with the family after its members: page servers and clone-network segments on other hosts. */
    private final List<AutoCloseable> attachments = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final ExecutorService background;
    private volatile boolean closing;
    private volatile boolean closed;

    private ForkFamily(String name, VmLauncher launcher, VmSpec template, ForkOptions options, CloneNetwork network) {
        this.name = name;
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
        CloneNetwork network = CloneNetwork.create(spec.name());
        ForkFamily family;
        try {
            GuestBoot boot = spec.boot() == null ? null
                    : spec.boot().withParameter("doppel.ip", CloneAddress.ROOT.cidr());
            VmSpec template = spec.toBuilder().boot(boot).clearNics().clearDisks().netns(network.namespace()).build();
            family = new ForkFamily(spec.name(), launcher, template, options, network);
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
            VmSpec.Builder b = template.toBuilder().name(processName).memory(memory)
                    .netns(net.namespace())
                    .nic("net0", address.mac(), new NicSpec.Netdev.Tap(tap))
                    .incomingDefer(incoming).startPaused(paused);
            if (disk != null) {
                b.disk("disk0", disk.path(), disk.format(), false);
            }
            if (isClone && options.cloneTcgCacheMiB() > 0) {
                b.tcgCacheMiB(options.cloneTcgCacheMiB());
            }
            if (isClone) {
                b.extraArgument(options.cloneExtraArguments().toArray(String[]::new));
            }
            VmProcess vm = launcher.start(b.build());
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
    }

    /** A member ended; the family closes itself when the last one is gone. */
    void memberEnded(ForkableVm member) {
        members.remove(member.name());
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

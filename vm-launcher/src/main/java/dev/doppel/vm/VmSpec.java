package dev.doppel.vm;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Everything that determines a VM's QEMU command line. Two VMs with equal specs (apart from name,
 * memory file sharing mode, and incoming/paused flags) have identical device models, which is what
 * migration-based fork and restore need.
 *
 * @param name           the VM's name (logs, errors, QEMU's -name)
 * @param machineType    pinned machine type, e.g. {@code pc-i440fx-10.0}
 * @param memoryMiB      guest RAM
 * @param vcpus          number of vCPUs
 * @param memory         where guest RAM lives
 * @param boot           direct kernel boot, or null to boot from the first disk's own bootloader (SeaBIOS)
 * @param disks          virtio-blk disks
 * @param nics           virtio-net NICs
 * @param guestAgent     whether the virtio-serial port of Doppel's own agent exists ({@code org.doppel.agent.0})
 * @param qemuGuestAgent whether the port of the standard QEMU guest agent exists ({@code org.qemu.guest_agent.0},
 *                       {@link VmRunDir#qgaSocket()}): real guests with {@code qemu-guest-agent} installed
 * @param incomingDefer  start with {@code -incoming defer} (a fork child, a restore target)
 * @param startPaused    start with {@code -S}
 * @param tcgCacheMiB    TCG translation-cache size (0 = QEMU's default); many small clones want less
 * @param extraArguments appended verbatim (e.g. {@code -global migration.send-switchover-start=off})
 * @param netns          network namespace QEMU runs in (its taps live there), or null for the host's
 * @param freePageReporting a virtio-balloon with free page reporting: the guest reports free memory,
 *                       QEMU discards it, so it reads as zero (a snapshot then carries it for free)
 */
public record VmSpec(String name, String machineType, long memoryMiB, int vcpus, MemoryBackend memory,
                     GuestBoot boot, List<DiskSpec> disks, List<NicSpec> nics, boolean guestAgent,
                     boolean incomingDefer, boolean startPaused, int tcgCacheMiB, List<String> extraArguments,
                     String netns, boolean freePageReporting, boolean qemuGuestAgent) {

    public static final String DEFAULT_MACHINE = "pc-i440fx-10.0";

    public VmSpec {
        Objects.requireNonNull(name, "name");
        if (!name.matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")) {
            throw new IllegalArgumentException("VM name must be 1-63 chars of [A-Za-z0-9_.-]: '" + name + "'");
        }
        if (memoryMiB < 16) {
            throw new IllegalArgumentException("VM '" + name + "': memory must be at least 16 MiB");
        }
        if (vcpus < 1) {
            throw new IllegalArgumentException("VM '" + name + "': vcpus must be >= 1");
        }
        disks = List.copyOf(disks);
        nics = List.copyOf(nics);
        extraArguments = List.copyOf(extraArguments);
    }

    public static Builder builder(String name) {
        return new Builder(name);
    }

    /** A builder initialised from this spec. */
    public Builder toBuilder() {
        Builder b = new Builder(name);
        b.machineType = machineType;
        b.memoryMiB = memoryMiB;
        b.vcpus = vcpus;
        b.memory = memory;
        b.boot = boot;
        b.disks.addAll(disks);
        b.nics.addAll(nics);
        b.guestAgent = guestAgent;
        b.incomingDefer = incomingDefer;
        b.startPaused = startPaused;
        b.tcgCacheMiB = tcgCacheMiB;
        b.extraArguments.addAll(extraArguments);
        b.netns = netns;
        b.freePageReporting = freePageReporting;
        b.qemuGuestAgent = qemuGuestAgent;
        return b;
    }

    /** Fluent construction with sensible defaults: 256 MiB, 1 vCPU, anonymous RAM, agent on. */
    public static final class Builder {
        private String name;
        private String machineType = DEFAULT_MACHINE;
        private long memoryMiB = 256;
        private int vcpus = 1;
        private MemoryBackend memory = new MemoryBackend.Anonymous();
        private GuestBoot boot;
        private final List<DiskSpec> disks = new ArrayList<>();
        private final List<NicSpec> nics = new ArrayList<>();
        private boolean guestAgent = true;
        private boolean incomingDefer;
        private boolean startPaused;
        private int tcgCacheMiB;
        private final List<String> extraArguments = new ArrayList<>();
        private String netns;
        private boolean freePageReporting;
        private boolean qemuGuestAgent;

        private Builder(String name) {
            this.name = name;
        }

        public Builder name(String v) { this.name = v; return this; }
        public Builder machineType(String v) { this.machineType = v; return this; }
        public Builder memoryMiB(long v) { this.memoryMiB = v; return this; }
        public Builder vcpus(int v) { this.vcpus = v; return this; }
        public Builder memory(MemoryBackend v) { this.memory = v; return this; }
        public Builder boot(GuestBoot v) { this.boot = v; return this; }
        public Builder guestAgent(boolean v) { this.guestAgent = v; return this; }
        public Builder incomingDefer(boolean v) { this.incomingDefer = v; return this; }
        public Builder startPaused(boolean v) { this.startPaused = v; return this; }
        public Builder tcgCacheMiB(int v) { this.tcgCacheMiB = v; return this; }
        public Builder extraArgument(String... v) { this.extraArguments.addAll(List.of(v)); return this; }

        /** Adds a disk in the next free disk slot. */
        public Builder disk(String nodeName, java.nio.file.Path image, String format, boolean readOnly) {
            disks.add(new DiskSpec(nodeName, image, format, readOnly, PciSlots.FIRST_DISK + disks.size()));
            return this;
        }

        /** Adds a NIC in the next free NIC slot. */
        public Builder nic(String id, String mac, NicSpec.Netdev backend) {
            nics.add(new NicSpec(id, mac, backend, PciSlots.FIRST_NIC + nics.size()));
            return this;
        }

        public Builder netns(String v) { this.netns = v; return this; }
        public Builder freePageReporting(boolean v) { this.freePageReporting = v; return this; }
        public Builder qemuGuestAgent(boolean v) { this.qemuGuestAgent = v; return this; }
        public Builder clearNics() { nics.clear(); return this; }
        public Builder clearDisks() { disks.clear(); return this; }

        public VmSpec build() {
            return new VmSpec(name, machineType, memoryMiB, vcpus, memory, boot, disks, nics, guestAgent,
                    incomingDefer, startPaused, tcgCacheMiB, extraArguments, netns, freePageReporting, qemuGuestAgent);
        }
    }
}

package dev.doppel.vm;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What another host needs to build the identical device model of a VM: machine type, memory,
 * vCPUs, how it boots, its agent ports and the NICs' ids and MACs. The backup of a protected VM
 * restores into exactly this; the NICs' host side is the receiving host's choice.
 *
 * <p>Two kinds of guest: Doppel's own ({@code diskBoot} false: the kernel and initramfs come from
 * that host's own guest image, built from the same sources, with {@code bootParameters}), and a
 * user's disk image ({@code diskBoot} true: booted by SeaBIOS from its first disk, no -kernel, so
 * nothing but the disks is needed; a restore never boots anyway, but -kernel would add an option
 * ROM the saved device state does not have).
 *
 * @param qemuGuestAgent the VM has the standard QEMU guest agent's port (real guests)
 * @param diskBoot       the VM boots from its first disk, not Doppel's kernel
 */
public record GuestDescriptor(String machineType, long memoryMiB, int vcpus, Map<String, String> bootParameters,
                              boolean guestAgent, List<Nic> nics, List<String> disks,
                              boolean qemuGuestAgent, boolean diskBoot) {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** A NIC of the device model. */
    public record Nic(String id, String mac) {
    }

    public GuestDescriptor {
        bootParameters = bootParameters == null ? Map.of() : Map.copyOf(bootParameters);
        nics = List.copyOf(nics);
        disks = disks == null ? List.of() : List.copyOf(disks);   // descriptors written before disks were described
    }

    /** A descriptor of Doppel's own guest (as written before real guests existed). */
    public GuestDescriptor(String machineType, long memoryMiB, int vcpus, Map<String, String> bootParameters,
                           boolean guestAgent, List<Nic> nics, List<String> disks) {
        this(machineType, memoryMiB, vcpus, bootParameters, guestAgent, nics, disks, false, false);
    }

    /**
     * The descriptor of a spec. Disks are described by node name, in slot order; their images are
     * each host's own (the backup's replicas, a clone's overlay).
     */
    public static GuestDescriptor of(VmSpec spec) {
        boolean diskBoot = spec.boot() == null;
        if (diskBoot && spec.disks().isEmpty()) {
            throw new IllegalArgumentException("VM '" + spec.name() + "' has neither a kernel nor a disk to boot");
        }
        return new GuestDescriptor(spec.machineType(), spec.memoryMiB(), spec.vcpus(),
                diskBoot ? Map.of() : spec.boot().parameters(),
                spec.guestAgent(), spec.nics().stream().map(n -> new Nic(n.id(), n.mac())).toList(),
                spec.disks().stream().map(DiskSpec::nodeName).toList(), spec.qemuGuestAgent(), diskBoot);
    }

    /**
     * A spec with this device model; each NIC on {@code nicBackend}. Doppel's guest boots from this
     * host's guest image (located only then). Disks are not added: the caller adds each with its
     * own image, in {@link #disks()} order.
     */
    public VmSpec.Builder toSpec(String name, NicSpec.Netdev nicBackend) {
        return toSpec(name, diskBoot ? null : GuestImage.locate(), nicBackend);
    }

    /** As {@link #toSpec(String, NicSpec.Netdev)} with the given guest image (unused for disk boot). */
    public VmSpec.Builder toSpec(String name, GuestImage image, NicSpec.Netdev nicBackend) {
        VmSpec.Builder b = VmSpec.builder(name).machineType(machineType).memoryMiB(memoryMiB).vcpus(vcpus)
                .boot(diskBoot ? null : image.boot(bootParameters)).guestAgent(guestAgent)
                .qemuGuestAgent(qemuGuestAgent);
        for (Nic n : nics) {
            b.nic(n.id(), n.mac(), nicBackend);
        }
        return b;
    }

    public void write(Path file) throws IOException {
        MAPPER.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), this);
    }

    public static GuestDescriptor read(Path file) throws IOException {
        return MAPPER.readValue(file.toFile(), GuestDescriptor.class);
    }
}

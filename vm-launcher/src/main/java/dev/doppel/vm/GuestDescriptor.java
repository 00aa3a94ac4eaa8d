package dev.doppel.vm;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What another host needs to build the identical device model of one of Doppel's guests: machine
 * type, memory, vCPUs, boot parameters (the kernel and initramfs come from that host's own guest
 * image, built from the same sources), the agent port and the NICs' ids and MACs. The backup of a
 * protected VM restores into exactly this; the NICs' host side is the receiving host's choice.
 */
public record GuestDescriptor(String machineType, long memoryMiB, int vcpus, Map<String, String> bootParameters,
                              boolean guestAgent, List<Nic> nics, List<String> disks) {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** A NIC of the device model. */
    public record Nic(String id, String mac) {
    }

    public GuestDescriptor {
        bootParameters = Map.copyOf(bootParameters);
        nics = List.copyOf(nics);
        disks = disks == null ? List.of() : List.copyOf(disks);   // descriptors written before disks were described
    }

    /**
     * The descriptor of a spec booting Doppel's guest. Disks are described by node name, in slot
     * order; their images are each host's own (the backup's replicas, a clone's overlay).
     */
    public static GuestDescriptor of(VmSpec spec) {
        if (spec.boot() == null) {
            throw new IllegalArgumentException("VM '" + spec.name() + "' does not boot Doppel's guest image");
        }
        return new GuestDescriptor(spec.machineType(), spec.memoryMiB(), spec.vcpus(), spec.boot().parameters(),
                spec.guestAgent(), spec.nics().stream().map(n -> new Nic(n.id(), n.mac())).toList(),
                spec.disks().stream().map(DiskSpec::nodeName).toList());
    }

    /**
     * A spec with this device model on this host's guest image; each NIC on {@code nicBackend}. Disks
     * are not added: the caller adds each with its own image, in {@link #disks()} order.
     */
    public VmSpec.Builder toSpec(String name, GuestImage image, NicSpec.Netdev nicBackend) {
        VmSpec.Builder b = VmSpec.builder(name).machineType(machineType).memoryMiB(memoryMiB).vcpus(vcpus)
                .boot(image.boot(bootParameters)).guestAgent(guestAgent);
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

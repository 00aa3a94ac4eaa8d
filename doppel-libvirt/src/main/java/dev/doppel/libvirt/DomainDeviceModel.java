package dev.doppel.libvirt;

import java.util.List;

/**
 * What Doppel needs of a libvirt domain's device model, read from its live XML (see {@link DomainXml}).
 *
 * @param name      the domain's name
 * @param uuid      the domain's UUID
 * @param memoryKiB guest RAM ({@code <memory>})
 * @param emulator  the QEMU binary ({@code <emulator>})
 * @param machine   the machine type of the running domain ({@code <os><type machine=…>}, expanded by libvirt)
 * @param disks     the disks, in XML order
 * @param nics      the network interfaces, in XML order
 */
public record DomainDeviceModel(String name, String uuid, long memoryKiB, String emulator, String machine,
                                List<Disk> disks, List<Nic> nics) {

    public DomainDeviceModel {
        disks = List.copyOf(disks);
        nics = List.copyOf(nics);
    }

    /**
     * One disk.
     *
     * @param target      the guest-side name ({@code vda})
     * @param bus         {@code virtio}, {@code sata} …
     * @param source      the image file or block device, or null (e.g. an empty CD-ROM)
     * @param format      the image format ({@code <driver type>}: qcow2, raw …)
     * @param alias       libvirt's device alias, which is the QEMU device id ({@code virtio-disk0}); null for an
     *                    inactive domain
     * @param sourceIndex libvirt's index of the top image ({@code <source index>}), null for an inactive domain
     */
    public record Disk(String target, String bus, String source, String format, String alias, Integer sourceIndex) {

        /**
         * The block node QEMU's device reads from, as libvirt 9 names it with {@code -blockdev}:
         * {@code libvirt-<index>-format} (the format layer over the {@code -storage} file node). Null while the
         * domain does not run. Check it against QEMU ({@code query-block}'s {@code inserted.node-name}) before
         * relying on it: another libvirt version may name nodes differently.
         */
        public String nodeName() {
            return sourceIndex == null ? null : "libvirt-" + sourceIndex + "-format";
        }
    }

    /**
     * One network interface.
     *
     * @param type      {@code ethernet}, {@code bridge}, {@code network}, {@code user} …
     * @param mac       its MAC address
     * @param tapDevice the host's tap device ({@code <target dev>}), null if none
     * @param model     the NIC model ({@code virtio} …)
     * @param alias     libvirt's device alias, the QEMU device id ({@code net0}); null for an inactive domain
     */
    public record Nic(String type, String mac, String tapDevice, String model, String alias) {

        /**
         * The QEMU netdev (backend) id: libvirt names it {@code host} + the device alias ({@code hostnet0}).
         * Output commit holds this netdev's traffic. Null while the domain does not run.
         */
        public String netdevId() {
            return alias == null ? null : "host" + alias;
        }
    }

    /** The netdev ids of all NICs (for output commit), in XML order. */
    public List<String> netdevIds() {
        return nics.stream().map(Nic::netdevId).toList();
    }

    /** The top block node names of all disks with an image (for disk replication), in XML order. */
    public List<String> diskNodeNames() {
        return disks.stream().filter(d -> d.source() != null).map(Disk::nodeName).toList();
    }
}

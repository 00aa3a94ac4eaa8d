package dev.doppel.vm;

import java.nio.file.Path;

/**
 * A virtio-blk disk backed by a {@code -blockdev} node with a stable node name (controllers address
 * nodes by name: snapshots, mirrors, quorum children) and a fixed PCI slot (the device model of a
 * clone or a restored VM must be identical to the original's).
 *
 * @param nodeName  the format node's name, e.g. {@code disk0}; the protocol node is {@code nodeName-file}
 * @param image     the image file
 * @param format    {@code qcow2} or {@code raw}
 * @param readOnly  open read-only
 * @param pciSlot   the virtio-blk-pci slot
 */
public record DiskSpec(String nodeName, Path image, String format, boolean readOnly, int pciSlot) {
    public DiskSpec {
        if (!format.equals("qcow2") && !format.equals("raw")) {
            throw new IllegalArgumentException("disk format must be qcow2 or raw, not " + format);
        }
        PciSlots.check(pciSlot);
    }

    /** The qdev id of the virtio-blk device (stable across fork and restore). */
    public String deviceId() {
        return "vblk-" + nodeName;
    }

    /** {@code -blockdev} JSON for the format node with its file child. */
    String blockdevJson() {
        return "{\"driver\":\"" + format + "\",\"node-name\":\"" + nodeName + "\",\"read-only\":" + readOnly
                + ",\"file\":{\"driver\":\"file\",\"node-name\":\"" + nodeName + "-file\",\"filename\":"
                + JsonText.quote(image.toString()) + ",\"read-only\":" + readOnly + "}}";
    }

    String deviceArgument() {
        return "virtio-blk-pci,id=" + deviceId() + ",drive=" + nodeName + ",addr=" + PciSlots.hex(pciSlot);
    }
}

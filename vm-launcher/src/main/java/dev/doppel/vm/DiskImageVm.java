package dev.doppel.vm;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.hostnet.HostCommand;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A VM that boots a user's BIOS-bootable x86-64 disk image with its own bootloader (SeaBIOS, no
 * -kernel), in Doppel's fixed device model: the image (or an overlay on it) as virtio-blk
 * {@value #BOOT_DISK} in the first disk slot, virtio-net NICs in theirs, and one virtio-serial
 * device with both agent ports — the standard QEMU guest agent's {@code org.qemu.guest_agent.0}
 * (what a distribution's {@code qemu-guest-agent} opens) and Doppel's own, for guests that install
 * Doppel's helper. Everything else (machine type, slots) is as for Doppel's own guest, so a backup
 * and clones can load its device state.
 */
public final class DiskImageVm {
    /** The boot disk's node name (protect mirrors nodes by name). */
    public static final String BOOT_DISK = "disk0";
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private DiskImageVm() {
    }

    /** A spec booting {@code disk} (qcow2 or raw, as its format says). More disks follow it in slot order. */
    public static VmSpec.Builder spec(String name, Path disk, String format) {
        return VmSpec.builder(name).boot(null).disk(BOOT_DISK, disk.toAbsolutePath(), format, false)
                .guestAgent(true).qemuGuestAgent(true);
    }

    /** Where {@code doppel vm start --image} keeps a VM's overlay: {@code $DOPPEL_OVERLAY_DIR}, else /var/lib/doppel/overlays (root) or the temp dir. */
    public static Path overlayDirectory() {
        String env = System.getenv("DOPPEL_OVERLAY_DIR");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        Path lib = Path.of("/var/lib");
        return Files.isWritable(lib) ? lib.resolve("doppel").resolve("overlays")
                : Path.of(System.getProperty("java.io.tmpdir"), "doppel-overlays-" + System.getProperty("user.name"));
    }

    public static Path overlayFor(String vmName) {
        return overlayDirectory().resolve(vmName + ".qcow2");
    }

    /** The image's format as qemu-img sees it ({@code qcow2} or {@code raw}; others are refused). */
    public static String format(Path image) {
        if (!Files.isRegularFile(image)) {
            throw new IllegalArgumentException("no disk image at " + image);
        }
        String json = HostCommand.run("qemu-img", "info", "--output=json", "-U", image.toString());
        String format;
        try {
            format = MAPPER.readTree(json).path("format").asText();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read qemu-img info of " + image, e);
        }
        if (!format.equals("qcow2") && !format.equals("raw")) {
            throw new IllegalArgumentException(image + " is a " + format + " image; Doppel boots qcow2 or raw images");
        }
        return format;
    }

    /**
     * A fresh qcow2 overlay at {@code overlay} whose backing file is {@code image}: the guest writes
     * into the overlay, the image stays untouched. The backing path is the image's real path, so a
     * symlink that later points elsewhere (the cache's {@code current}) does not change the disk
     * under a running VM. An existing overlay is replaced.
     */
    public static Path createOverlay(Path image, Path overlay) {
        String format = format(image);
        try {
            image = image.toRealPath();
            Files.createDirectories(overlay.toAbsolutePath().getParent());
            Files.deleteIfExists(overlay);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare " + overlay, e);
        }
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", "-F", format,
                "-b", image.toAbsolutePath().toString(), overlay.toString());
        return overlay;
    }
}

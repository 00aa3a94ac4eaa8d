package dev.doppel.vm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What an operator asks for when starting a VM ({@code doppel vm start} options, or the daemon's
 * {@code POST /api/v1/vms} body): Doppel's own guest, or a BIOS-bootable disk image on a fresh
 * overlay. {@link #start} turns it into a running, detached QEMU with its guest description written,
 * the one path both the CLI and the daemon take.
 *
 * @param image      boot this disk image instead of Doppel's guest (null: Doppel's guest)
 * @param writeImage with an image: the guest writes the image itself (no overlay)
 * @param memMiB     RAM (0: 256 MiB for Doppel's guest, 1 GiB for an image)
 * @param run        Doppel's guest's workload (ticker, dirtier, kv, none)
 * @param params     Doppel's guest's extra doppel.* boot parameters
 * @param memFile    back RAM by this file (share=on), or null
 * @param disk       an extra qcow2 data disk, or null
 * @param forwards   host port forwards of the user-mode NIC (QEMU hostfwd syntax)
 * @param taps       NICs on these existing tap devices
 * @param colo       run on the COLO-patched QEMU (to be protected)
 */
public record VmDefinition(String name, Path image, boolean writeImage, long memMiB, int cpus, String run,
                           Map<String, String> params, Path memFile, Path disk, boolean userNet, List<String> forwards,
                           List<String> taps, boolean colo) {
    public VmDefinition {
        if (name == null || !name.matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")) {
            throw new IllegalArgumentException("bad VM name '" + name + "': letters, digits, '.', '_', '-', at most 63");
        }
        params = params == null ? Map.of() : Map.copyOf(params);
        forwards = forwards == null ? List.of() : List.copyOf(forwards);
        taps = taps == null ? List.of() : List.copyOf(taps);
        run = run == null ? "ticker" : run;
        cpus = cpus <= 0 ? 1 : cpus;
        if (writeImage && image == null) {
            throw new IllegalArgumentException("writeImage needs an image");
        }
        if (!forwards.isEmpty() && !userNet) {
            throw new IllegalArgumentException("port forwards need the user-mode NIC");
        }
    }

    /** A started VM: its process and, for an image, the overlay it runs on (null if none). */
    public record Started(VmProcess vm, VmSpec spec, Path overlay) {
    }

    /**
     * Starts the VM detached (it outlives this JVM) and writes its guest description; only our QMP
     * connection and console tailer stay open (close them with {@link VmProcess#releaseQmp()} and the console).
     *
     * @param launcher the launcher; with {@code colo}, one on the COLO-patched QEMU
     */
    public Started start(VmLauncher launcher) throws IOException {
        VmSpec.Builder spec;
        Path overlay = null;
        if (image != null) {
            refuseIfRunning();   // before the overlay of a running VM of that name is replaced
            if (writeImage) {
                spec = DiskImageVm.spec(name, image, DiskImageVm.format(image));
            } else {
                overlay = DiskImageVm.createOverlay(image, DiskImageVm.overlayFor(name));
                spec = DiskImageVm.spec(name, overlay, "qcow2");
            }
            spec.memoryMiB(memMiB > 0 ? memMiB : 1024);
        } else {
            spec = VmLauncher.guestSpec(name, GuestImage.locate(), run, params).memoryMiB(memMiB > 0 ? memMiB : 256);
        }
        spec.vcpus(cpus);
        if (memFile != null) {
            spec.memory(MemoryBackend.File.shared(memFile));
        }
        if (disk != null) {
            spec.disk(image != null ? "disk1" : "disk0", disk, "qcow2", false);
        }
        int nicNo = 1;
        if (userNet) {
            spec.nic("net0", String.format("52:54:00:00:00:%02x", nicNo++), new NicSpec.Netdev.User(forwards));
        }
        for (String tap : taps) {
            spec.nic("net" + (nicNo - 1), String.format("52:54:00:00:00:%02x", nicNo++), new NicSpec.Netdev.Tap(tap));
        }
        VmSpec built = spec.build();
        VmProcess vm;
        try {
            vm = launcher.start(built, VmProcess.StartOptions.detached());
        } catch (RuntimeException e) {
            if (overlay != null) {
                Files.deleteIfExists(overlay);
            }
            throw e;
        }
        GuestDescriptor.of(built).write(vm.runDir().guestFile());
        return new Started(vm, built, overlay);
    }

    private void refuseIfRunning() {
        VmRunDir dir = VmRunDir.of(name);
        if (Files.exists(dir.specFile()) && VmRecord.readFrom(dir).alive()) {
            throw new IllegalStateException("VM '" + name + "' is running; stop it first");
        }
    }
}

package dev.doppel.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.hostnet.HostCommand;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device model of a user's disk image VM, its descriptor, and its overlay. */
class DiskImageVmTest {
    @TempDir Path tmp;

    private static List<String> argv(VmSpec spec) {
        return QemuCommandLine.build(QemuBinary.stock(), Accelerator.TCG, spec, new VmRunDir(Path.of("/run/x")));
    }

    private static VmSpec imageVm() {
        return DiskImageVm.spec("pg", Path.of("/img/overlay.qcow2"), "qcow2").memoryMiB(2048).vcpus(2)
                .nic("net0", "52:54:00:00:00:01", new NicSpec.Netdev.User(List.of("tcp:127.0.0.1:15432-:5432"))).build();
    }

    @Test
    void bootsFromTheFirstDiskWithBothAgentPortsInFixedPlaces() {
        List<String> a = argv(imageVm());
        assertFalse(a.contains("-kernel") || a.contains("-initrd") || a.contains("-append"), a.toString());
        assertTrue(a.contains("virtio-blk-pci,id=vblk-disk0,drive=disk0,addr=0x18,bootindex=0"), a.toString());
        assertTrue(a.contains("virtio-serial-pci,id=vser0,addr=0x8"), a.toString());
        assertTrue(a.contains("virtserialport,id=qgaport0,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,nr=2"), a.toString());
        assertTrue(a.contains("socket,id=qga0,path=/run/x/qga.sock,server=on,wait=off"), a.toString());
        assertTrue(a.contains("virtserialport,id=agentport0,bus=vser0.0,chardev=agent0,name=org.doppel.agent.0"), a.toString());
        assertTrue(a.contains("user,id=net0,hostfwd=tcp:127.0.0.1:15432-:5432"), a.toString());
        assertTrue(a.contains("pc-i440fx-10.0,memory-backend=pc.ram"), a.toString());
    }

    @Test
    void doppelsOwnGuestKeepsItsDeviceModel() {
        VmSpec own = VmSpec.builder("own").boot(new GuestBoot(Path.of("/k"), Path.of("/i"), Map.of()))
                .disk("disk0", Path.of("/d.qcow2"), "qcow2", false).build();
        List<String> a = argv(own);
        assertTrue(a.contains("virtio-blk-pci,id=vblk-disk0,drive=disk0,addr=0x18"), "no bootindex with -kernel: " + a);
        assertFalse(a.stream().anyMatch(s -> s.contains("guest_agent")), a.toString());
    }

    @Test
    void descriptorRebuildsTheSameDeviceModelWithoutDoppelsGuestImage() throws Exception {
        VmSpec spec = imageVm();
        GuestDescriptor d = GuestDescriptor.of(spec);
        assertTrue(d.diskBoot());
        assertTrue(d.qemuGuestAgent());
        assertEquals(List.of("disk0"), d.disks());
        Path file = tmp.resolve("guest.json");
        d.write(file);
        GuestDescriptor back = GuestDescriptor.read(file);
        assertEquals(d, back);
        // what a backup does: its own NIC backend, its own disk (a replica); no GuestImage needed
        VmSpec restored = back.toSpec("pg-restored", new NicSpec.Netdev.User())
                .disk("disk0", Path.of("/img/overlay.qcow2"), "qcow2", false).build();
        List<String> original = argv(spec.toBuilder().clearNics().nic("net0", "52:54:00:00:00:01", new NicSpec.Netdev.User()).build());
        List<String> rebuilt = argv(restored);
        assertEquals(original.subList(original.indexOf("-m"), original.size()), rebuilt.subList(rebuilt.indexOf("-m"), rebuilt.size()));
    }

    @Test
    void descriptorsWrittenBeforeRealGuestsStillRead() throws Exception {
        Path file = tmp.resolve("old.json");
        Files.writeString(file, "{\"machineType\":\"pc-i440fx-10.0\",\"memoryMiB\":256,\"vcpus\":1,"
                + "\"bootParameters\":{\"doppel.run\":\"kv\"},\"guestAgent\":true,\"nics\":[],\"disks\":[\"disk0\"]}");
        GuestDescriptor d = GuestDescriptor.read(file);
        assertFalse(d.diskBoot());
        assertFalse(d.qemuGuestAgent());
        assertEquals(Map.of("doppel.run", "kv"), d.bootParameters());
    }

    @Test
    void overlayLeavesTheImageAloneAndPointsAtIt() throws Exception {
        Path image = tmp.resolve("base.qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "16M");
        Path overlay = DiskImageVm.createOverlay(image, tmp.resolve("ov/vm.qcow2"));
        var info = new ObjectMapper().readTree(HostCommand.run("qemu-img", "info", "--output=json", overlay.toString()));
        assertEquals("qcow2", info.path("format").asText());
        assertEquals(image.toRealPath().toString(), info.path("backing-filename").asText());
        assertEquals("qcow2", info.path("backing-filename-format").asText());
        assertThrows(IllegalArgumentException.class, () -> DiskImageVm.format(tmp.resolve("missing.qcow2")));
    }

    @Test
    void badForwardIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new NicSpec.Netdev.User(List.of("5432:5432")));
    }
}

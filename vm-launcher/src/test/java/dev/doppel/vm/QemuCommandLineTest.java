package dev.doppel.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The argv built from a spec: pinned machine, fixed slots, stable names. */
class QemuCommandLineTest {
    private static final QemuBinary QEMU = QemuBinary.stock();

    private static List<String> argv(VmSpec spec) {
        return QemuCommandLine.build(QEMU, Accelerator.TCG, spec, new VmRunDir(Path.of("/run/x")));
    }

    private static String after(List<String> argv, String option, String prefix) {
        for (int i = 0; i < argv.size() - 1; i++) {
            if (argv.get(i).equals(option) && argv.get(i + 1).startsWith(prefix)) {
                return argv.get(i + 1);
            }
        }
        return null;
    }

    @Test
    void pinsMachineAndRamBlockName() {
        List<String> a = argv(VmSpec.builder("vm1").memoryMiB(512).build());
        assertEquals("pc-i440fx-10.0,memory-backend=pc.ram", after(a, "-machine", "pc-"));
        assertEquals("memory-backend-ram,id=pc.ram,size=512M", after(a, "-object", "memory-backend"));
        assertTrue(a.contains("-nodefaults"));
    }

    @Test
    void forkChildMapsFrozenFilePrivateAndReadOnly() {
        VmSpec spec = VmSpec.builder("c1").memory(MemoryBackend.File.privateReadOnly(Path.of("/dev/shm/gen,1")))
                .incomingDefer(true).startPaused(true).build();
        List<String> a = argv(spec);
        // A comma in a path is doubled (QEMU option syntax).
        assertEquals("memory-backend-file,id=pc.ram,size=256M,mem-path=/dev/shm/gen,,1,share=off,readonly=on,rom=off",
                after(a, "-object", "memory-backend"));
        assertEquals("defer", after(a, "-incoming", ""));
        assertTrue(a.contains("-S"));
    }

    @Test
    void sharedReadOnlyMemoryIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> new MemoryBackend.File(Path.of("/x"), true, true));
    }

    @Test
    void devicesGetFixedSlotsAndStableIds() {
        VmSpec spec = VmSpec.builder("vm1")
                .disk("disk0", Path.of("/img/a.qcow2"), "qcow2", false)
                .disk("disk1", Path.of("/img/b.raw"), "raw", true)
                .nic("net0", "52:54:00:AA:00:01", new NicSpec.Netdev.Tap("tap0"))
                .build();
        List<String> a = argv(spec);
        // no -kernel: SeaBIOS boots the first disk (bootindex), only that one
        assertEquals("virtio-blk-pci,id=vblk-disk0,drive=disk0,addr=0x18,bootindex=0", after(a, "-device", "virtio-blk-pci,id=vblk-disk0"));
        assertEquals("virtio-blk-pci,id=vblk-disk1,drive=disk1,addr=0x19", after(a, "-device", "virtio-blk-pci,id=vblk-disk1"));
        assertEquals("virtio-net-pci,id=nic-net0,netdev=net0,mac=52:54:00:aa:00:01,addr=0x10", after(a, "-device", "virtio-net-pci"));
        assertEquals("tap,id=net0,ifname=tap0,script=no,downscript=no", after(a, "-netdev", "tap"));
        String blockdev = after(a, "-blockdev", "{\"driver\":\"raw\"");
        assertTrue(blockdev.contains("\"node-name\":\"disk1\"") && blockdev.contains("\"read-only\":true"), blockdev);
        assertEquals("virtio-serial-pci,id=vser0,addr=0x8", after(a, "-device", "virtio-serial-pci"));
    }

    @Test
    void sameSpecGivesSameDeviceModel() {
        VmSpec parent = VmSpec.builder("p").memory(MemoryBackend.File.shared(Path.of("/dev/shm/g1")))
                .nic("net0", "52:54:00:00:00:01", new NicSpec.Netdev.User()).build();
        VmSpec child = parent.toBuilder().name("c").memory(MemoryBackend.File.privateReadOnly(Path.of("/dev/shm/g1")))
                .incomingDefer(true).build();
        List<String> devicesOfParent = argv(parent).stream().filter(s -> s.contains("addr=")).toList();
        List<String> devicesOfChild = argv(child).stream().filter(s -> s.contains("addr=")).toList();
        assertEquals(devicesOfParent, devicesOfChild);
    }

    @Test
    void kernelCommandLineIsStable() {
        GuestBoot boot = new GuestBoot(Path.of("/k"), Path.of("/i"), Map.of("doppel.run", "dirtier", "doppel.dirty_mb", "16"));
        assertEquals("console=ttyS0 panic=-1 doppel.dirty_mb=16 doppel.run=dirtier", boot.commandLine());
    }

    @Test
    void rejectsBadNamesAndMacs() {
        assertThrows(IllegalArgumentException.class, () -> VmSpec.builder("bad name").build());
        assertThrows(IllegalArgumentException.class, () -> VmSpec.builder("vm").nic("n", "52:54:00", new NicSpec.Netdev.User()).build());
        assertThrows(IllegalArgumentException.class, () -> VmSpec.builder("vm").memoryMiB(1).build());
        assertFalse(argv(VmSpec.builder("vm").guestAgent(false).build()).stream().anyMatch(s -> s.contains("virtserialport")));
    }

    @Test
    void parsesQemuVersion() {
        var v = QemuBinary.parseVersionOutput("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright");
        assertEquals(10, v.major());
        assertTrue(v.atLeast(10, 0, 2));
        assertFalse(v.atLeast(10, 0, 7));
        assertThrows(IllegalArgumentException.class, () -> QemuBinary.parseVersionOutput("garbage"));
    }
}

package dev.doppel.libvirt;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DomainXmlTest {

    @Test
    void readsDisksNicsMemoryAndEmulatorOfALiveDomain() throws IOException {
        DomainDeviceModel m = DomainXml.parse(resource("domain-xml/live-two-disks.xml"));
        assertEquals("lvt1", m.name());
        assertEquals("69231be4-2191-46a3-af7a-681a89ff9ee4", m.uuid());
        assertEquals(131072, m.memoryKiB());
        assertEquals("/root/.cache/doppel/qemu-colo/10.0.2/bin/qemu-system-x86_64", m.emulator());
        assertEquals("pc-i440fx-10.0", m.machine());

        assertEquals(List.of(
                new DomainDeviceModel.Disk("vda", "virtio", "/tmp/lvexp/d/vm/disk0.qcow2", "qcow2", "virtio-disk0", 1),
                new DomainDeviceModel.Disk("sda", "sata", "/dev/vg0/data", "raw", "sata0-0-0", 2),
                new DomainDeviceModel.Disk("hdc", "ide", null, "raw", "ide0-1-0", null)), m.disks());
        // the empty CD-ROM has no node to replicate
        assertEquals(List.of("libvirt-1-format", "libvirt-2-format"), m.diskNodeNames());

        assertEquals(List.of(
                new DomainDeviceModel.Nic("ethernet", "52:54:00:aa:00:01", "lvtap0", "virtio", "net0"),
                new DomainDeviceModel.Nic("user", "52:54:00:aa:00:02", null, "e1000", "net1")), m.nics());
        assertEquals(List.of("hostnet0", "hostnet1"), m.netdevIds());
    }

    @Test
    void anInactiveDomainHasNoQemuNames() {
        DomainDeviceModel m = DomainXml.parse("""
                <domain type='qemu'><name>off</name><uuid>u</uuid><memory unit='MiB'>256</memory>
                  <devices><disk type='file'><driver type='qcow2'/><source file='/d.qcow2'/><target dev='vda' bus='virtio'/></disk>
                    <interface type='ethernet'><mac address='52:54:00:00:00:09'/></interface></devices></domain>""");
        assertEquals(256 * 1024, m.memoryKiB());
        assertNull(m.disks().get(0).nodeName());
        assertNull(m.nics().get(0).netdevId());
        assertNull(m.nics().get(0).tapDevice());
    }

    @Test
    void memoryUnitsFollowLibvirt() {
        assertEquals(976, DomainXml.parse(withMemory("1", "MB")).memoryKiB()); // 1,000,000 bytes
        assertEquals(2L * 1024 * 1024, DomainXml.parse(withMemory("2", "GiB")).memoryKiB());
        assertEquals(4, DomainXml.parse(withMemory("4", "")).memoryKiB());
    }

    @Test
    void refusesWhatIsNotADomain() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DomainXml.parse("<network/>"));
        assertTrue(e.getMessage().contains("<network>"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> DomainXml.parse("<domain><name>x"));
        assertThrows(IllegalArgumentException.class,
                () -> DomainXml.parse("<domain><name>x</name><memory unit='parsec'>1</memory></domain>"));
    }

    private static String withMemory(String value, String unit) {
        return "<domain><name>m</name><memory" + (unit.isEmpty() ? "" : " unit='" + unit + "'") + ">" + value + "</memory></domain>";
    }

    private static String resource(String path) throws IOException {
        try (InputStream in = DomainXmlTest.class.getClassLoader().getResourceAsStream(path)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}

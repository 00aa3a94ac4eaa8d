package dev.doppel.libvirt.remus;

import dev.doppel.libvirt.DomainDeviceModel;
import dev.doppel.libvirt.DomainXml;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DestinationXmlTest {
    private static final String PRIMARY = """
            <domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
              <name>web1</name>
              <uuid>05796959-766b-466c-8489-2ef085baba82</uuid>
              <memory unit='KiB'>131072</memory>
              <os><type arch='x86_64' machine='pc-i440fx-10.0'>hvm</type></os>
              <devices>
                <emulator>/opt/qemu/bin/qemu-system-x86_64</emulator>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='qcow2'/>
                  <source file='/var/lib/libvirt/images/web1.qcow2'/>
                  <backingStore type='file'><format type='qcow2'/><source file='/var/lib/libvirt/images/base.qcow2'/></backingStore>
                  <target dev='vda' bus='virtio'/>
                </disk>
                <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>
                <interface type='bridge'>
                  <mac address='52:54:00:83:00:10'/>
                  <source bridge='br0'/>
                  <target dev='vnet7'/>
                  <model type='virtio'/>
                </interface>
                <interface type='ethernet'>
                  <mac address='52:54:00:83:00:11'/>
                  <target dev='tap3' managed='no'/>
                </interface>
              </devices>
              <qemu:commandline><qemu:arg value='-L'/><qemu:arg value='/usr/share/seabios'/></qemu:commandline>
            </domain>
            """;

    @Test
    void theBackupsDestinationIsThePrimarysDomainOnItsReplicasWaitingForTheCheckpoint() {
        String xml = DestinationXml.of(PRIMARY, List.of(Path.of("/dev/shm/store/web1/1-disks/disk-libvirt-1-format.raw")));
        DomainDeviceModel m = DomainXml.parse(xml);
        assertEquals("web1", m.name());
        assertEquals("05796959-766b-466c-8489-2ef085baba82", m.uuid(), "same UUID");
        assertEquals("pc-i440fx-10.0", m.machine());
        assertEquals("/dev/shm/store/web1/1-disks/disk-libvirt-1-format.raw", m.disks().get(0).source());
        assertEquals("raw", m.disks().get(0).format());
        assertFalse(xml.contains("backingStore"), "the replica is the whole chain: " + xml);
        assertEquals(null, m.disks().get(1).source(), "the empty CD-ROM stays");
        assertEquals(null, m.nics().get(0).tapDevice(), "the bridge NIC's tap is this host's libvirt's to name");
        assertEquals("52:54:00:83:00:10", m.nics().get(0).mac());
        assertEquals("tap3", m.nics().get(1).tapDevice(), "an ethernet NIC names a tap of this host: kept");
        assertTrue(xml.matches("(?s).*<qemu:arg value=\"/usr/share/seabios\"/>\\s*<qemu:arg value=\"-incoming\"/>\\s*"
                + "<qemu:arg value=\"defer\"/>.*"), xml);
    }

    @Test
    void aDomainWithoutQemuArgumentsGetsThemAndEveryDiskMustHaveAReplica() {
        String plain = PRIMARY.replaceAll("(?s)<qemu:commandline>.*</qemu:commandline>", "")
                .replace(" xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'", "");
        String xml = DestinationXml.of(plain, List.of(Path.of("/r.raw")));
        assertTrue(xml.contains("http://libvirt.org/schemas/domain/qemu/1.0"), xml);
        assertTrue(xml.contains("value=\"-incoming\""), xml);
        String again = DestinationXml.of(xml, List.of(Path.of("/r2.raw")));
        assertEquals(1, again.split("value=\"-incoming\"", -1).length - 1, "a domain restored before gets one -incoming: " + again);
        assertTrue(again.contains("/r2.raw"), again);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DestinationXml.of(PRIMARY, List.of()));
        assertTrue(e.getMessage().contains("1 disks with an image, the backup 0 replicas"), e.getMessage());
    }
}

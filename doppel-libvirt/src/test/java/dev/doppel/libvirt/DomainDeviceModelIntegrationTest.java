package dev.doppel.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import dev.doppel.qmp.QmpClient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The device model read from libvirt's XML names exactly what QEMU itself reports. */
class DomainDeviceModelIntegrationTest {
    private static PrivateLibvirtd daemon;
    private static LibvirtConnection connection;

    @BeforeAll
    static void start() throws Exception {
        daemon = PrivateLibvirtd.start();
        connection = LibvirtConnection.open(daemon.uri());
        GuestDomains domains = new GuestDomains(daemon);
        domains.start(connection, "model1", 1);
        domains.awaitConsole("model1", "tick 1", Duration.ofSeconds(90));
    }

    @AfterAll
    static void stop() {
        if (connection != null) {
            connection.close();
        }
        if (daemon != null) {
            daemon.close();
        }
    }

    @Test
    void xmlMatchesQemusOwnAnswers() throws Exception {
        DomainDeviceModel model = DomainXml.read(connection, "model1");
        assertEquals("model1", model.name());
        assertEquals(connection.domain("model1").getUUIDString(), model.uuid());
        assertEquals(GuestDomains.patchedQemu().executable().toString(), model.emulator());
        assertEquals(1, model.disks().size(), model.toString());
        assertEquals(1, model.nics().size(), model.toString());

        try (QmpClient qmp = LibvirtQmp.connect(connection, "model1")) {
            // memory: QEMU's base RAM size
            long ramBytes = qmp.execute("query-memory-size-summary").path("base-memory").asLong();
            assertEquals(model.memoryKiB() * 1024, ramBytes);
            assertEquals(128L * 1024, model.memoryKiB());

            // disks: the device QEMU attaches the node to, the node, the file and the format
            DomainDeviceModel.Disk disk = model.disks().get(0);
            JsonNode blocks = qmp.execute("query-block");
            JsonNode block = null;
            for (JsonNode b : blocks) {
                if (b.path("qdev").asText().equals("/machine/peripheral/" + disk.alias() + "/virtio-backend")) {
                    block = b;
                }
            }
            assertNotNull(block, "QEMU has no block device for alias " + disk.alias() + ": " + blocks);
            assertEquals(disk.nodeName(), block.path("inserted").path("node-name").asText(), block.toString());
            assertEquals(disk.source(), block.path("inserted").path("file").asText());
            assertEquals(disk.format(), block.path("inserted").path("drv").asText());
            assertEquals(daemon.directory().resolve("vm/model1.qcow2").toString(), disk.source());
            assertTrue(Files.exists(Path.of(disk.source())));
            List<String> nodes = new ArrayList<>();
            qmp.execute("query-named-block-nodes", Map.of("flat", true)).forEach(n -> nodes.add(n.path("node-name").asText()));
            assertTrue(nodes.containsAll(model.diskNodeNames()), nodes + " vs " + model.diskNodeNames());

            // NICs: the device's netdev is the one the model names (what output commit holds), same MAC, same tap
            DomainDeviceModel.Nic nic = model.nics().get(0);
            String device = "/machine/peripheral/" + nic.alias();
            assertEquals(nic.netdevId(), qmp.execute("qom-get", Map.of("path", device, "property", "netdev")).asText());
            assertEquals(nic.mac(), qmp.execute("qom-get", Map.of("path", device, "property", "mac")).asText());
            assertEquals("hostnet0", nic.netdevId());
            assertEquals(daemon.tapPrefix() + "1", nic.tapDevice());
            assertTrue(Files.exists(Path.of("/sys/class/net", nic.tapDevice())), "tap " + nic.tapDevice() + " exists");
            // the netdev accepts a Remus output-commit filter under that id (as OutputHold attaches one)
            qmp.execute("object-add", Map.of("qom-type", "filter-buffer", "id", "doppel-hold-test", "netdev", nic.netdevId(),
                    "interval", 1000000, "status", "off"));
            qmp.execute("object-del", Map.of("id", "doppel-hold-test"));
        }
    }
}

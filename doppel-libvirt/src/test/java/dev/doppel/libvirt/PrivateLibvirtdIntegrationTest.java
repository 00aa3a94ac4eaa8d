package dev.doppel.libvirt;

import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tests' libvirtd leaves nothing behind: no process, no tap, no directory, nothing in the host's libvirt paths. */
class PrivateLibvirtdIntegrationTest {

    @Test
    void closingTheFixtureLeavesNothing() throws Exception {
        List<Path> hostPaths = List.of(Path.of("/run/libvirt"), Path.of("/var/lib/libvirt"), Path.of("/var/log/libvirt"),
                Path.of("/var/cache/libvirt"), Path.of("/etc/libvirt/qemu.conf"), Path.of("/etc/libvirt/libvirtd.conf"));
        List<Boolean> before = hostPaths.stream().map(Files::exists).toList();
        String passwd = Files.readString(Path.of("/etc/passwd"));
        String group = Files.readString(Path.of("/etc/group"));

        PrivateLibvirtd daemon = PrivateLibvirtd.start();
        Path dir = daemon.directory();
        ProcessHandle tini = daemon.libvirtdTree();
        List<ProcessHandle> libvirtd = tini.children().toList();
        assertEquals(1, libvirtd.size(), "tini runs libvirtd");
        assertTrue(libvirtd.get(0).info().command().orElse("").endsWith("libvirtd"), libvirtd.get(0).info().toString());
        ProcessHandle virtlogd = ProcessHandle.of(daemon.virtlogdPid()).orElseThrow();
        String tap;
        try (LibvirtConnection c = LibvirtConnection.open(daemon.uri())) {
            GuestDomains domains = new GuestDomains(daemon);
            domains.start(c, "leave1", 1);
            tap = daemon.tapPrefix() + "1";
            // a domain left running: the fixture must destroy it
            domains.awaitConsole("leave1", "tick 1", Duration.ofSeconds(90));
            assertEquals(1, daemon.qemusOfThisFixture().size());
            assertTrue(Files.exists(Path.of("/sys/class/net", tap)));
            // the daemon's state is written in the fixture's directory, not the host's
            assertTrue(Files.exists(dir.resolve("ovl/run-up/libvirt/qemu/leave1.pid")));
            assertEquals(before, hostPaths.stream().map(Files::exists).toList(), "host paths while running");
        }
        daemon.close();

        assertFalse(tini.isAlive(), "tini stopped");
        assertFalse(libvirtd.get(0).isAlive(), "libvirtd stopped");
        assertFalse(virtlogd.isAlive(), "virtlogd stopped");
        assertEquals(List.of(), daemon.qemusOfThisFixture(), "no QEMU left");
        assertFalse(Files.exists(Path.of("/sys/class/net", tap)), "tap " + tap + " removed");
        assertEquals(List.of(), daemon.leftoverTaps());
        assertFalse(Files.exists(dir), dir + " removed");
        assertEquals(before, hostPaths.stream().map(Files::exists).toList(), "host paths after");
        assertEquals(passwd, Files.readString(Path.of("/etc/passwd")));
        assertEquals(group, Files.readString(Path.of("/etc/group")));
        assertFalse(Files.readString(Path.of("/proc/self/mountinfo")).contains("doppel-libvirt"),
                "no overlay of the fixture is mounted in the host's namespace");
    }
}

package dev.doppel.remus.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.vm.GuestDescriptor;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The control channel over real sockets: messages routed by VM, hostile peers dropped alone. */
class ControlServerTest {
    private static final GuestDescriptor GUEST = new GuestDescriptor("pc-i440fx-10.0", 256, 1,
            Map.of("doppel.run", "dirtier"), true, List.of(new GuestDescriptor.Nic("net0", "52:54:00:00:00:01")), List.of());

    @Test
    void heartbeatsReachTheirVmAndHostileLinesOnlyDropTheirConnection() throws Exception {
        try (ControlServer server = new ControlServer(new InetSocketAddress("127.0.0.1", 0))) {
            LinkedBlockingQueue<ControlMessage> a = new LinkedBlockingQueue<>();
            LinkedBlockingQueue<ControlMessage> b = new LinkedBlockingQueue<>();
            server.register("a", a::add);
            server.register("b", b::add);
            InetSocketAddress addr = new InetSocketAddress("127.0.0.1", server.port());

            try (Socket bad = new Socket()) {
                bad.connect(addr);
                OutputStream out = bad.getOutputStream();
                out.write("{\"vm\":\"a\",\"type\":\"fail-over-now\"}\n".getBytes(StandardCharsets.UTF_8));   // unknown type
                out.write("garbage\n".getBytes(StandardCharsets.UTF_8));
                out.flush();
                assertEquals(-1, bad.getInputStream().read(), "a hostile connection is closed");
            }
            try (Socket big = new Socket()) {
                big.connect(addr);
                big.getOutputStream().write(new byte[ControlMessage.MAX_LINE + 10]);   // no newline, too long
                big.getOutputStream().flush();
                assertEquals(-1, big.getInputStream().read());
            }
            assertTrue(a.isEmpty(), "nothing from hostile peers may reach a VM");

            try (HeartbeatSender hb = new HeartbeatSender("b", addr, Duration.ofMillis(20), () -> true, () -> 7)) {
                ControlMessage m = b.poll(5, TimeUnit.SECONDS);
                assertEquals(ControlMessage.HEARTBEAT, m.type());
                assertEquals(7, m.epoch());
                hb.standDown("test");
                ControlMessage down = null;
                while (down == null || !down.type().equals(ControlMessage.STAND_DOWN)) {
                    down = b.poll(5, TimeUnit.SECONDS);
                }
                assertEquals("test", down.reason());
            }
            assertTrue(a.isEmpty());
        }
    }

    /**
     * A primary that is not alive by the sender's check (QMP gone) is only silent: "primary down" is
     * sent when the protector confirmed the QEMU process dead, never by the check alone.
     */
    @Test
    void aPrimaryThatIsNotAliveIsSilentUntilItsDeathIsConfirmed() throws Exception {
        try (ControlServer server = new ControlServer(new InetSocketAddress("127.0.0.1", 0))) {
            LinkedBlockingQueue<ControlMessage> q = new LinkedBlockingQueue<>();
            server.register("vm", q::add);
            try (HeartbeatSender hb = new HeartbeatSender("vm", new InetSocketAddress("127.0.0.1", server.port()),
                    Duration.ofMillis(20), () -> false, () -> 3)) {
                assertEquals(null, q.poll(500, TimeUnit.MILLISECONDS), "no message while death is unconfirmed");
                hb.primaryDown("QEMU process exited");
                ControlMessage m = q.poll(5, TimeUnit.SECONDS);
                assertEquals(ControlMessage.PRIMARY_DOWN, m.type());
                assertEquals("QEMU process exited", m.reason());
            }
        }
    }

    @Test
    void protectRequestsAreAnsweredAndRefusalsCarryTheReason() throws Exception {
        try (ControlServer server = new ControlServer(new InetSocketAddress("127.0.0.1", 0))) {
            InetSocketAddress addr = new InetSocketAddress("127.0.0.1", server.port());
            IOException refused = assertThrows(IOException.class,
                    () -> ControlClient.requestProtection(addr, "vm", GUEST, Duration.ofSeconds(5)));
            assertTrue(refused.getMessage().contains("does not accept"), refused.getMessage());

            server.onProtectRequest(r -> r.guest().memoryMiB() == 256 ? ProtectReply.ready(r.vm(), 4242, "b/1", java.util.Map.of()) : ProtectReply.error(r.vm(), "no"));
            assertEquals(4242, ControlClient.requestProtection(addr, "vm", GUEST, Duration.ofSeconds(5)));
        }
    }

    @Test
    void controlLinesAreValidated() {
        assertThrows(IOException.class, () -> ControlMessage.parse("{\"vm\":\"x\"}"));
        assertThrows(IOException.class, () -> ControlMessage.parse("{not json"));
        assertThrows(IOException.class, () -> ControlMessage.parse("x".repeat(ControlMessage.MAX_LINE + 1)));
    }

    /**
     * The one-line attack of the fencing issue against a control port with mutual TLS: a plain
     * "primary-down" and one from a host with another CA's certificate both fail the handshake and
     * reach no VM; a heartbeat from a host of the installation's CA does.
     */
    @Test
    void withTlsOnlyPeersOfTheInstallationsCaReachAVm(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) throws Exception {
        dev.doppel.tls.Pki.init(tmp.resolve("pki"), "ours");
        dev.doppel.tls.Pki.init(tmp.resolve("theirs"), "theirs");
        dev.doppel.tls.PeerTls backupTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(tmp.resolve("pki"), "127.0.0.1"));
        dev.doppel.tls.PeerTls primaryTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(tmp.resolve("pki"), "primary"));
        dev.doppel.tls.PeerTls rogueTls = dev.doppel.tls.PeerTls.load(dev.doppel.tls.Pki.issue(tmp.resolve("theirs"), "primary"));
        try (ControlServer server = new ControlServer(new InetSocketAddress("127.0.0.1", 0), dev.doppel.hostnet.HostSockets.LOCAL,
                backupTls)) {
            LinkedBlockingQueue<ControlMessage> q = new LinkedBlockingQueue<>();
            server.register("vm", q::add);
            InetSocketAddress addr = new InetSocketAddress("127.0.0.1", server.port());
            String down = new ControlMessage("vm", ControlMessage.PRIMARY_DOWN, 1, "rogue").toLine();
            try (Socket plain = new Socket()) {
                plain.connect(addr);
                plain.getOutputStream().write(down.getBytes(StandardCharsets.UTF_8));
                plain.getOutputStream().flush();
                plain.setSoTimeout(15_000);
                byte[] answer = plain.getInputStream().readAllBytes();   // until the server disconnects
                assertTrue(answer.length == 0 || answer[0] == 0x15, "a plain peer gets at most a TLS alert, then EOF");
            }
            Socket toRogue = new Socket();
            toRogue.connect(addr);
            assertThrows(java.io.IOException.class, () -> {
                try (Socket s = rogueTls.client(toRogue, "rogue")) {
                    s.getOutputStream().write(down.getBytes(StandardCharsets.UTF_8));
                    s.getOutputStream().flush();
                    s.getInputStream().read();
                }
            });
            assertEquals(null, q.poll(300, TimeUnit.MILLISECONDS), "a rogue line reached the VM's guard");
            try (HeartbeatSender hb = new HeartbeatSender("vm", addr, Duration.ofMillis(20), () -> true, () -> 5,
                    dev.doppel.hostnet.HostSockets.LOCAL, primaryTls)) {
                ControlMessage m = q.poll(10, TimeUnit.SECONDS);
                assertEquals(ControlMessage.HEARTBEAT, m.type());
            }
        }
    }
}

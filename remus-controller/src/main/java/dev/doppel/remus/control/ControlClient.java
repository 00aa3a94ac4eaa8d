package dev.doppel.remus.control;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.vm.GuestDescriptor;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/** The primary asks a backup service to protect a VM and learns where to send the replication stream. */
public final class ControlClient {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private ControlClient() {
    }

    /** Returns the port for QEMU's replication stream; throws with the backup's reason otherwise. */
    public static int requestProtection(InetSocketAddress control, String vm, GuestDescriptor guest, Duration timeout) throws IOException {
        return requestProtection(control, vm, guest, java.util.Map.of(), timeout).port();
    }

    /**
     * Asks for protection with replicated disks (node name → size); the reply names the replication
     * port and each disk's NBD port. Throws with the backup's reason if it refuses.
     */
    public static ProtectReply requestProtection(InetSocketAddress control, String vm, GuestDescriptor guest,
                                                 java.util.Map<String, Long> diskSizes, Duration timeout) throws IOException {
        return requestProtection(control, ProtectRequest.of(vm, guest, diskSizes), timeout);
    }

    /** Sends {@code request}; returns the backup's ready reply or throws with its reason. */
    public static ProtectReply requestProtection(InetSocketAddress control, ProtectRequest request, Duration timeout)
            throws IOException {
        return requestProtection(control, request, timeout, dev.doppel.tls.PeerTls.INSECURE);
    }

    /** Sends {@code request} over {@code tls}; returns the backup's ready reply or throws with its reason. */
    public static ProtectReply requestProtection(InetSocketAddress control, ProtectRequest request, Duration timeout,
                                                 dev.doppel.tls.PeerTls tls) throws IOException {
        String vm = request.vm();
        Socket plain = new Socket();
        plain.connect(control, (int) timeout.toMillis());
        plain.setSoTimeout((int) timeout.toMillis());
        try (Socket s = tls.client(plain, "control channel")) {
            OutputStream out = s.getOutputStream();
            out.write((MAPPER.writeValueAsString(request) + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            String line = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8)).readLine();
            if (line == null) {
                throw new IOException("VM '" + vm + "': backup " + control + " closed the control connection without an answer");
            }
            ProtectReply reply = MAPPER.readValue(line, ProtectReply.class);
            if (!"ready".equals(reply.type()) || reply.port() == null) {
                throw new IOException("VM '" + vm + "': backup " + control + " refused protection: " + reply.reason());
            }
            return reply;
        }
    }
}

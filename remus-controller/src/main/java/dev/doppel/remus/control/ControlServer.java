package dev.doppel.remus.control;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup's end of the control channel: accepts primaries' connections and hands each message to
 * the handler registered for its VM. A malformed line ends that connection (and only that one).
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ControlServer.class);

    private final ServerSocket server;
    private final PeerTls tls;
    private static final com.fasterxml.jackson.databind.ObjectMapper MAPPER = new com.fasterxml.jackson.databind.ObjectMapper();

    private final Map<String, Consumer<ControlMessage>> handlers = new ConcurrentHashMap<>();
    private volatile java.util.function.Function<ProtectRequest, ProtectReply> protectHandler =
            r -> ProtectReply.error(r.vm(), "this backup service does not accept new VMs");

    public ControlServer(InetSocketAddress address) throws IOException {
        this(address, HostSockets.LOCAL, PeerTls.INSECURE);
    }

    /**
     * A control server listening on {@code host}'s network; a peer must pass {@code tls} (present a
     * certificate of the installation's CA) before one line of it is read.
     */
    public ControlServer(InetSocketAddress address, HostSockets host, PeerTls tls) throws IOException {
        this.tls = tls;
        server = host.listen(address, 50);
        Thread t = new Thread(this::acceptLoop, "control-accept");
        t.setDaemon(true);
        t.start();
    }

    public int port() {
        return server.getLocalPort();
    }

    public void register(String vm, Consumer<ControlMessage> handler) {
        handlers.put(vm, handler);
    }

    public void unregister(String vm) {
        handlers.remove(vm);
    }

    /** Who answers protection requests (creates the VM's endpoint and guard). */
    public void onProtectRequest(java.util.function.Function<ProtectRequest, ProtectReply> handler) {
        this.protectHandler = handler;
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket s = server.accept();
                Thread t = new Thread(() -> serve(s), "control-" + s.getRemoteSocketAddress());
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                if (!server.isClosed()) {
                    log.warn("event=control-accept-failed cause=\"{}\"", e.getMessage());
                }
                return;
            }
        }
    }

    private void serve(Socket plain) {
        Socket s;
        try {
            s = tls.server(plain, "control channel");
        } catch (IOException e) {
            return;   // logged by PeerTls: a peer without a valid certificate changes nothing
        }
        try (s; BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = readBoundedLine(in)) != null) {
                if (line.contains("\"" + ProtectRequest.TYPE + "\"")) {
                    answerProtectRequest(s, line);
                    continue;
                }
                ControlMessage m = ControlMessage.parse(line);
                Consumer<ControlMessage> h = handlers.get(m.vm());
                if (h == null) {
                    log.warn("vm={} event=control-message-for-unknown-vm type={}", m.vm(), m.type());
                    continue;
                }
                h.accept(m);
            }
        } catch (IOException e) {
            log.warn("event=control-connection-dropped peer={} cause=\"{}\"", s.getRemoteSocketAddress(), e.getMessage());
        }
    }

    private void answerProtectRequest(Socket s, String line) throws IOException {
        ProtectRequest req;
        try {
            req = MAPPER.readValue(line, ProtectRequest.class);
        } catch (IOException e) {
            throw new IOException("malformed protect request: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (req.vm() == null || req.guest() == null || !ProtectRequest.TYPE.equals(req.type())) {
            throw new IOException("protect request without vm or guest: " + line);
        }
        ProtectReply reply;
        try {
            reply = protectHandler.apply(req);
        } catch (RuntimeException e) {
            reply = ProtectReply.error(req.vm(), e.getMessage());
        }
        s.getOutputStream().write((MAPPER.writeValueAsString(reply) + "\n").getBytes(StandardCharsets.UTF_8));
        s.getOutputStream().flush();
    }

    private static String readBoundedLine(BufferedReader in) throws IOException {
        StringBuilder sb = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0) {
            if (c == '\n') {
                return sb.toString();
            }
            if (sb.length() >= ControlMessage.MAX_LINE) {
                throw new IOException("control line exceeds " + ControlMessage.MAX_LINE + " bytes");
            }
            sb.append((char) c);
        }
        return sb.length() == 0 ? null : sb.toString();
    }

    @Override
    public void close() {
        try {
            server.close();
        } catch (IOException e) {
            log.debug("closing control server: {}", e.getMessage());
        }
    }
}

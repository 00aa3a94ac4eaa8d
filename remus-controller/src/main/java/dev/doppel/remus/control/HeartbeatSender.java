package dev.doppel.remus.control;

import dev.doppel.hostnet.HostSockets;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary's end of the control channel: a heartbeat every period while the primary VM is alive
 * (the supplied check, e.g. "QEMU runs and answers QMP"), silence when it is not, {@link #primaryDown} when
 * the protector confirmed the QEMU process dead, and
 * {@link #standDown} when the primary gives up on this backup. Reconnects on its own; a backup that
 * cannot be reached just gets no heartbeats (it then fails over only if the replication stream is
 * gone too).
 */
public final class HeartbeatSender implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(HeartbeatSender.class);

    private final String vm;
    private final InetSocketAddress backup;
    private final BooleanSupplier primaryAlive;
    private final LongSupplier epoch;
    private final HostSockets host;
    private final dev.doppel.tls.PeerTls tls;
    private final ScheduledExecutorService timer;
    private Socket socket;
    private OutputStream out;
    private boolean downSent;

    public HeartbeatSender(String vm, InetSocketAddress backup, Duration period, BooleanSupplier primaryAlive, LongSupplier epoch) {
        this(vm, backup, period, primaryAlive, epoch, HostSockets.LOCAL, dev.doppel.tls.PeerTls.INSECURE);
    }

    /** A sender whose connection leaves through {@code host}'s network (it dies with that host's link). */
    public HeartbeatSender(String vm, InetSocketAddress backup, Duration period, BooleanSupplier primaryAlive, LongSupplier epoch,
                           HostSockets host, dev.doppel.tls.PeerTls tls) {
        this.host = host;
        this.tls = tls;
        this.vm = vm;
        this.backup = backup;
        this.primaryAlive = primaryAlive;
        this.epoch = epoch;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "heartbeat-" + vm);
            t.setDaemon(true);
            return t;
        });
        timer.scheduleAtFixedRate(this::tick, 0, period.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void tick() {
        if (downSent) {
            return;
        }
        // Not alive (QMP gone): silence. "Primary down" is sent only by the protector, once the
        // QEMU process is confirmed dead and its lease given back.
        if (primaryAlive.getAsBoolean()) {
            send(ControlMessage.HEARTBEAT, null);
        }
    }

    /** The primary VM died: tell the backup to take over now rather than after a timeout. */
    public synchronized void primaryDown(String reason) {
        if (!downSent) {
            downSent = send(ControlMessage.PRIMARY_DOWN, reason);
        }
    }

    /** The primary continues without this backup: its state is stale from now on. */
    public synchronized void standDown(String reason) {
        send(ControlMessage.STAND_DOWN, reason);
    }

    private synchronized boolean send(String type, String reason) {
        byte[] line = new ControlMessage(vm, type, epoch.getAsLong(), reason).toLine().getBytes(StandardCharsets.UTF_8);
        for (int attempt = 0; attempt < 2; attempt++) {
            try {
                if (out == null) {
                    socket = tls.client(host.connect(backup, Duration.ofMillis(500)), "control channel");
                    socket.setTcpNoDelay(true);
                    out = socket.getOutputStream();
                }
                out.write(line);
                out.flush();
                return true;
            } catch (IOException e) {
                log.debug("vm={} control channel to {}: {}", vm, backup, e.getMessage());
                closeSocket();
            }
        }
        return false;
    }

    private void closeSocket() {
        try {
            if (socket != null) {
                socket.close();
            }
        } catch (IOException e) {
            log.debug("closing control socket: {}", e.getMessage());
        }
        socket = null;
        out = null;
    }

    @Override
    public synchronized void close() {
        timer.shutdownNow();
        closeSocket();
    }
}

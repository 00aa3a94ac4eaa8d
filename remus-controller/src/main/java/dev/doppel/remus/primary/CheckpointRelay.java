package dev.doppel.remus.primary;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import dev.doppel.remus.colo.ColoMessage;
import dev.doppel.vm.Closeables;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary host's end of the replication stream: QEMU migrates to this relay's unix socket and
 * the relay carries the stream to the backup over the primary host's network, unchanged. It reads
 * the backup's answers, which are only be32 COLO messages, and when the backup says an epoch is
 * committed — CHECKPOINT_READY after the initial state, VMSTATE_LOADED after each checkpoint — it
 * releases the held network output ({@link OutputHold}) <em>before</em> passing the message on.
 * At that moment the primary's guest is still stopped, waiting for exactly that message, so what
 * is released is the committed epoch's output and nothing of the next epoch.
 *
 * <p>Why a relay and not colo-compare: colo-compare (QEMU 10.0) releases at VMSTATE_RECEIVED,
 * before the backup has committed; it sends UDP/ICMP of an epoch in reverse order, drops beyond
 * 1,024 queued packets per connection and lets non-IPv4 frames through unheld. The relay costs
 * one local hop for the stream and ~2 QMP round trips per checkpoint while the guest is paused.
 */
public final class CheckpointRelay implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CheckpointRelay.class);
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);

    private final String vm;
    private final Path socketPath;
    private final ServerSocketChannel server;
    private final InetSocketAddress backup;
    private final HostSockets host;
    private final PeerTls tls;
    private final Runnable onCommitted;
    private final Thread acceptor;
    private volatile SocketChannel fromQemu;
    private volatile Socket toBackup;
    private volatile boolean closed;
    private volatile long committedEpochs;
    private volatile long releaseNanosTotal;

    private CheckpointRelay(String vm, Path socketPath, ServerSocketChannel server, InetSocketAddress backup,
                            HostSockets host, PeerTls tls, Runnable onCommitted) {
        this.tls = tls;
        this.vm = vm;
        this.socketPath = socketPath;
        this.server = server;
        this.backup = backup;
        this.host = host;
        this.onCommitted = onCommitted;
        this.acceptor = new Thread(this::acceptOne, "colo-relay-" + vm);
        acceptor.setDaemon(true);
    }

    /**
     * Listens on {@code socketPath} for QEMU's one migration connection; relays it to {@code backup}
     * through {@code host}'s network and runs {@code onCommitted} at each commit message.
     */
    public static CheckpointRelay start(String vm, Path socketPath, InetSocketAddress backup, HostSockets host, PeerTls tls,
                                        Runnable onCommitted) throws IOException {
        Files.deleteIfExists(socketPath);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            server.bind(UnixDomainSocketAddress.of(socketPath), 1);
        } catch (IOException e) {
            server.close();
            throw e;
        }
        CheckpointRelay r = new CheckpointRelay(vm, socketPath, server, backup, host, tls, onCommitted);
        r.acceptor.start();
        return r;
    }

    /** The URI to give QEMU's {@code migrate}. */
    public String migrationUri() {
        return "unix:" + socketPath;
    }

    /** Commit messages seen (the initial state counts as one). */
    public long committedEpochs() {
        return committedEpochs;
    }

    /** Mean time spent releasing output per commit, in ms (added to the guest's pause). */
    public double meanReleaseMs() {
        long n = committedEpochs;
        return n == 0 ? 0 : releaseNanosTotal / 1e6 / n;
    }

    private void acceptOne() {
        try {
            SocketChannel qemu = server.accept();
            fromQemu = qemu;
            server.close();   // one migration per relay
            Socket b;
            try {
                Socket plain = host.connect(backup, CONNECT_TIMEOUT);
                plain.setTcpNoDelay(true);
                b = tls.client(plain, "replication of VM " + vm);
            } catch (IOException e) {
                log.error("vm={} event=relay-connect-failed backup={} cause=\"{}\"", vm, backup, e.getMessage());
                close();
                return;
            }
            toBackup = b;
            if (closed) {
                close();
                return;
            }
            Thread forward = new Thread(() -> pumpToBackup(qemu, b), "colo-relay-out-" + vm);
            forward.setDaemon(true);
            forward.start();
            pumpAnswers(b, qemu);
        } catch (IOException e) {
            if (!closed) {
                log.warn("vm={} event=relay-accept-failed cause=\"{}\"", vm, e.getMessage());
            }
        } finally {
            close();
        }
    }

    /**
     * The stream itself, byte for byte. When QEMU ends its side, the backup's side is ended the same
     * way (half-close) and the answers keep flowing until the backup closes: it may still be
     * committing what it just received.
     */
    private void pumpToBackup(SocketChannel qemu, Socket b) {
        ByteBuffer buf = ByteBuffer.allocate(256 * 1024);
        try {
            OutputStream out = b.getOutputStream();
            while (true) {
                buf.clear();
                int n = qemu.read(buf);
                if (n < 0) {
                    b.shutdownOutput();
                    return;
                }
                out.write(buf.array(), 0, n);
            }
        } catch (IOException e) {
            if (!closed) {
                log.info("vm={} event=relay-stream-ended cause=\"{}\"", vm, e.getMessage());
            }
            close();
        }
    }

    /** The backup's answers: be32 COLO messages, passed on after the output of a commit is released. */
    private void pumpAnswers(Socket b, SocketChannel qemu) throws IOException {
        DataInputStream in = new DataInputStream(b.getInputStream());
        // Written with the channel's own write, not Channels.newOutputStream: that stream takes the
        // channel's blocking lock, which a stream-based reader on the same channel would hold.
        ByteBuffer msg = ByteBuffer.allocate(4);
        while (true) {
            int value;
            try {
                value = in.readInt();
            } catch (java.io.EOFException e) {
                return;
            }
            if (value == ColoMessage.CHECKPOINT_READY.code() || value == ColoMessage.VMSTATE_LOADED.code()) {
                long t0 = System.nanoTime();
                try {
                    onCommitted.run();
                } catch (RuntimeException e) {
                    // The release may have stopped half-way: a filter switched off and not yet on again.
                    // Passing the message on would resume the guest with its next epoch's output
                    // unheld, so the checkpoint is not confirmed: the relay ends, QEMU's COLO sees the
                    // backup gone, and the protector handles a lost backup (stand down, then re-protect).
                    log.error("vm={} epoch={} event=output-release-failed action=\"end the relay; the checkpoint is not"
                            + " confirmed\" cause=\"{}\"", vm, committedEpochs, e.getMessage());
                    return;
                }
                releaseNanosTotal += System.nanoTime() - t0;
                committedEpochs++;
            }
            msg.clear();
            msg.putInt(value).flip();
            while (msg.hasRemaining()) {
                qemu.write(msg);
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        Closeables.closeQuietly(log, server);
        Closeables.closeQuietly(log, fromQemu);
        Closeables.closeQuietly(log, toBackup);
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            log.debug("vm={} relay socket: {}", vm, e.toString());
        }
    }
}

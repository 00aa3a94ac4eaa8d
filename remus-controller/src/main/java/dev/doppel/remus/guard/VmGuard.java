package dev.doppel.remus.guard;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.OwnershipRecord;
import dev.doppel.remus.fencing.PrimaryFencing;
import dev.doppel.remus.fencing.ProcessDeath;
import dev.doppel.tls.PeerTls;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The guard of one VM on the primary host. It holds what must not die with a controller:
 * <ul>
 *   <li>the VM's lease and ownership record ({@link PrimaryFencing}): while the guard lives, the
 *       backup cannot take the VM over, whatever the controller does;</li>
 *   <li>the self-fencing: when the lease is lost while a backup store could take over, the guard
 *       kills the QEMU (the held output dies with it);</li>
 *   <li>the QEMU's life: a {@link DeadMan} kills it when the guard dies, so a VM is never left running
 *       without the process that keeps it from being run twice;</li>
 *   <li>with no external ensemble, the single embedded ZooKeeper server, which must outlive a
 *       controller crash just as the lease must.</li>
 * </ul>
 * The controller asks it over a unix socket in the VM's run directory ({@link GuardClient}); one JSON
 * request per line, one reply per line. When the QEMU exits the guard gives the lease back at once
 * (the backup takes it without waiting for a session to expire) and ends; an embedded server is kept
 * up until the backup has taken the VM over (or 15 s), else the backup could not.
 */
public final class VmGuard implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VmGuard.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Duration TAKEOVER_WAIT = Duration.ofSeconds(15);

    /**
     * Everything a guard is started with (the command line of {@link GuardMain}).
     *
     * @param verdictWait how long, once the QEMU is gone, the guard keeps the lease waiting for the controller's
     *                    verdict on the exit ({@link GuardClient#stoppedByOwner}, {@link GuardClient#crashed}); zero
     *                    when the VM's manager gives no cause (a VM Doppel started): the lease is given back at once
     */
    public record Config(String vm, long qemuPid, String holder, Path socket, Path deadManLog, String coordinator, InetSocketAddress embedAt,
                         Path tlsDir, Path zkDir, Duration session, Duration claimWait, Duration verdictWait) {
        public Config(String vm, long qemuPid, String holder, Path socket, Path deadManLog, String coordinator,
                      InetSocketAddress embedAt, Path tlsDir, Path zkDir, Duration session, Duration claimWait) {
            this(vm, qemuPid, holder, socket, deadManLog, coordinator, embedAt, tlsDir, zkDir, session, claimWait, Duration.ZERO);
        }

        /** The host's TLS identity for the ZooKeeper sessions and the embedded server (insecure without one). */
        PeerTls tls() throws IOException {
            return tlsDir == null ? PeerTls.INSECURE : PeerTls.load(tlsDir);
        }
    }

    private final Config config;
    private final ProcessHandle qemu;
    private final EmbeddedCoordinator embedded;
    private final Coordinator coordinator;
    private final PrimaryFencing fencing;
    private final DeadMan deadMan;
    private final ServerSocketChannel server;
    private final CountDownLatch ended = new CountDownLatch(1);
    private volatile boolean released;
    /** Counted down by the controller's verdict on the QEMU's exit (stopped by its owner, or crashed). */
    private final CountDownLatch verdict = new CountDownLatch(1);

    private VmGuard(Config config, ProcessHandle qemu, EmbeddedCoordinator embedded, Coordinator coordinator,
                    PrimaryFencing fencing, DeadMan deadMan, ServerSocketChannel server) {
        this.config = config;
        this.qemu = qemu;
        this.embedded = embedded;
        this.coordinator = coordinator;
        this.fencing = fencing;
        this.deadMan = deadMan;
        this.server = server;
    }

    /** Takes the lease, arms the dead man, and serves requests. */
    public static VmGuard start(Config c) throws IOException, FencingException {
        ProcessHandle qemu = ProcessHandle.of(c.qemuPid())
                .orElseThrow(() -> new IOException("VM '" + c.vm() + "': QEMU pid " + c.qemuPid() + " is not running"));
        EmbeddedCoordinator embedded = null;
        Coordinator coordinator = null;
        PrimaryFencing fencing = null;
        DeadMan deadMan = null;
        try {
            PeerTls tls = c.tls();
            if (c.coordinator() == null) {
                embedded = EmbeddedCoordinator.standalone(c.embedAt(), c.zkDir(), HostSockets.LOCAL, tls);
            }
            String connect = c.coordinator() != null ? c.coordinator() : embedded.connectString();
            coordinator = Coordinator.connect(connect, c.session(), HostSockets.LOCAL, Duration.ofSeconds(10), tls);
            fencing = PrimaryFencing.claim(coordinator, c.vm(), c.holder(), qemu, c.claimWait());
            deadMan = DeadMan.arm(c.vm(), c.qemuPid(), c.deadManLog());
            Files.deleteIfExists(c.socket());
            ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(c.socket()));
            // Only this host's root (the run directory's owner) may tell the guard to drop the VM.
            Files.setPosixFilePermissions(c.socket(), PosixFilePermissions.fromString("rw-------"));
            VmGuard g = new VmGuard(c, qemu, embedded, coordinator, fencing, deadMan, server);
            g.startThreads();
            log.info("vm={} event=guard-ready pid={} qemu_pid={} holder={} token={} coordinator={} socket={}", c.vm(),
                    ProcessHandle.current().pid(), c.qemuPid(), c.holder(), fencing.token(), connect, c.socket());
            return g;
        } catch (IOException | FencingException | RuntimeException e) {
            if (deadMan != null) {
                deadMan.close();
            }
            closeQuietly(fencing);
            closeQuietly(coordinator);
            closeQuietly(embedded);
            throw e;
        }
    }

    private void startThreads() {
        Thread watcher = new Thread(this::watchQemu, "guard-qemu-watch-" + config.vm());
        watcher.setDaemon(true);
        watcher.start();
        Thread acceptor = new Thread(this::acceptLoop, "guard-socket-" + config.vm());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** Blocks until the guard has ended (released, or its QEMU is gone). */
    public void awaitEnd() throws InterruptedException {
        ended.await();
    }

    public long token() {
        return fencing.token();
    }

    private void watchQemu() {
        while (ended.getCount() > 0 && !ProcessDeath.gone(qemu)) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                return;
            }
        }
        if (ended.getCount() > 0 && !released) {
            awaitVerdict();
            qemuGone();
        }
    }

    /**
     * A VM whose manager says why its QEMU ended (libvirt: {@code stopped/destroyed} by its owner, or
     * {@code stopped/failed}) hears it only after the process is gone; the controller passes it on. Until
     * then the lease stays here, so that an owner's stop can be recorded (no backup named: no failover)
     * before a backup could take the lease. Without a verdict (the controller is gone) the lease is given
     * back after the wait: a crash must still fail over. Not under the guard's lock: the verdict is a request.
     */
    private void awaitVerdict() {
        if (config.verdictWait().isZero()) {
            return;
        }
        long t0 = System.nanoTime();
        try {
            boolean heard = verdict.await(config.verdictWait().toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            log.info("vm={} event=exit-verdict heard={} waited_ms={}", config.vm(), heard,
                    java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The QEMU exited (crash, kill, self-fence, shutdown): nothing left to guard. The lease is given back
     * at once, so the backup takes it now instead of after a session timeout.
     */
    private synchronized void qemuGone() {
        log.error("vm={} event=qemu-exited pid={} fenced={} action=\"lease given back; the backup may take the VM over\"",
                config.vm(), config.qemuPid(), fencing.fencedBecause() == null ? "no" : "\"" + fencing.fencedBecause() + "\"");
        deadMan.close();
        fencing.close();
        if (embedded != null) {
            awaitTakeover();
        }
        end();
    }

    /** The embedded server lives in this process: it stays up until the backup has the VM. */
    private void awaitTakeover() {
        long deadline = System.nanoTime() + TAKEOVER_WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                OwnershipRecord r = fencing.lease().record();
                if (r != null && !r.owner().equals(config.holder())) {
                    log.info("vm={} event=taken-over owner={} token={}", config.vm(), r.owner(), r.token());
                    return;
                }
            } catch (FencingException e) {
                log.warn("vm={} event=record-unreadable cause=\"{}\"", config.vm(), e.getMessage());
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                return;
            }
        }
        log.warn("vm={} event=no-takeover within_s={}", config.vm(), TAKEOVER_WAIT.toSeconds());
    }

    private void acceptLoop() {
        while (server.isOpen()) {
            try {
                SocketChannel ch = server.accept();
                Thread t = new Thread(() -> serve(ch), "guard-request-" + config.vm());
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                if (server.isOpen()) {
                    log.warn("vm={} event=guard-accept-failed cause=\"{}\"", config.vm(), e.getMessage());
                }
            }
        }
    }

    private void serve(SocketChannel ch) {
        try (ch; BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
             OutputStream out = Channels.newOutputStream(ch)) {
            String line;
            while ((line = in.readLine()) != null) {
                GuardReply reply;
                try {
                    reply = handle(MAPPER.readValue(line, GuardRequest.class));
                } catch (com.fasterxml.jackson.core.JacksonException e) {
                    reply = reply(false, "malformed request: " + e.getOriginalMessage());
                }
                out.write((MAPPER.writeValueAsString(reply) + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
                if (released) {
                    end();
                    return;
                }
            }
        } catch (IOException e) {
            log.debug("vm={} guard connection ended: {}", config.vm(), e.getMessage());
        }
    }

    private synchronized GuardReply handle(GuardRequest r) {
        if (r.op() == null) {
            return reply(false, "request without op");
        }
        if (released || ended.getCount() == 0) {
            return reply(false, "the guard has ended");
        }
        switch (r.op()) {
            case GuardRequest.STATUS:
                return reply(true, null);
            case GuardRequest.PROTECT_WITH:
                if (r.store() == null || r.store().isBlank()) {
                    return reply(false, "protect-with needs a store");
                }
                try {
                    fencing.protectWith(r.store());
                    return reply(true, null);
                } catch (FencingException e) {
                    return reply(false, e.getMessage());
                }
            case GuardRequest.GO_UNPROTECTED:
                boolean ok = fencing.goUnprotected(r.why() == null ? "(no reason given)" : r.why());
                return reply(ok, ok ? null : "fenced: " + fencing.fencedBecause());
            case GuardRequest.FENCE:
                fencing.fence(r.why() == null ? "asked by the controller" : r.why());
                return reply(true, null);
            case GuardRequest.STOPPED_BY_OWNER:
                if (!ProcessDeath.gone(qemu)) {
                    return reply(false, "the QEMU (pid " + config.qemuPid() + ") still runs: not stopped");
                }
                boolean recorded = fencing.recordStoppedByOwner(r.why() == null ? "(no cause given)" : r.why());
                verdict.countDown();
                return reply(recorded, recorded ? null : "the record could not be written: the backup may take the VM over");
            case GuardRequest.CRASHED:
                verdict.countDown();
                return reply(true, null);
            case GuardRequest.RELEASE:
                log.info("vm={} event=guard-released action=\"lease given back; the QEMU no longer dies with the guard\"",
                        config.vm());
                released = true;
                deadMan.close();
                fencing.close();
                return reply(true, null);
            default:
                return reply(false, "unknown op '" + r.op() + "'");
        }
    }

    private GuardReply reply(boolean ok, String error) {
        return new GuardReply(ok, error, config.vm(), config.holder(), fencing.token(), fencing.fencedBecause(),
                coordinator.connectString(), config.qemuPid(), !ProcessDeath.gone(qemu), ProcessHandle.current().pid());
    }

    private void end() {
        if (ended.getCount() == 0) {
            return;
        }
        closeQuietly(server);
        try {
            Files.deleteIfExists(config.socket());
        } catch (IOException e) {
            log.warn("vm={} cannot remove {}: {}", config.vm(), config.socket(), e.getMessage());
        }
        closeQuietly(coordinator);
        closeQuietly(embedded);
        ended.countDown();
    }

    /** Stops guarding as if released (tests); the QEMU lives on. */
    @Override
    public synchronized void close() {
        released = true;
        deadMan.close();
        fencing.close();
        end();
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            log.debug("close: {}", e.getMessage());
        }
    }
}

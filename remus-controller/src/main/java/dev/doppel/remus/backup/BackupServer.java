package dev.doppel.remus.backup;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.colo.ColoSecondarySession;
import dev.doppel.remus.colo.DiskEpochs;
import dev.doppel.remus.colo.ColoSessionException;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.nbd.ReplicatedDisks;
import dev.doppel.tls.PeerTls;
import dev.doppel.vm.Closeables;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup service's listening side: one TCP port per protected VM, because QEMU connects
 * straight to the backup and speaks only the migration stream (there is no room for a hello line
 * that would say which VM is calling).
 *
 * <p>Threads, not Vert.x: a COLO session is a strict request/response exchange whose every step
 * either blocks on the primary or writes the store's files, so an event loop would hand every step
 * to a worker anyway. One acceptor and at most one session thread per protected VM keeps that
 * bounded by the number of VMs, and the blocking code reads top to bottom like the protocol.
 */
public final class BackupServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BackupServer.class);

    private final Path storeRoot;
    private final HostSockets host;
    private final PeerTls tls;
    private final Map<String, Endpoint> endpoints = new ConcurrentHashMap<>();

    /** {@code storeRoot}: a tmpfs directory; each VM gets {@code storeRoot/<vm name>}. */
    public BackupServer(Path storeRoot) {
        this(storeRoot, HostSockets.LOCAL, PeerTls.INSECURE);
    }

    /**
     * A backup server whose ports are on {@code host}'s network; a primary's replication connection
     * must pass {@code tls} (its certificate) before its session may start.
     */
    public BackupServer(Path storeRoot, HostSockets host, PeerTls tls) {
        this.storeRoot = storeRoot;
        this.host = host;
        this.tls = tls;
    }

    public HostSockets host() {
        return host;
    }

    /** Listens for {@code vmName}'s primary on all interfaces; {@code port} 0 picks a free port. */
    public Endpoint listen(String vmName, int port) throws IOException {
        return listen(ProtectedVm.named(vmName), new InetSocketAddress(port), EpochListener.NONE);
    }

    /** Listens for {@code vm}'s primary on {@code address}; events of its sessions go to {@code listener}. */
    public Endpoint listen(ProtectedVm vm, InetSocketAddress address, EpochListener listener) throws IOException {
        return listen(vm, address, listener, List.of());
    }

    /**
     * Listens for {@code vm}'s primary on {@code address} and exports {@code disks} over NBD on the
     * same address (a port each) for the primary's disk replication.
     */
    public Endpoint listen(ProtectedVm vm, InetSocketAddress address, EpochListener listener,
                           List<ReplicatedDisks.Request> disks) throws IOException {
        if (endpoints.containsKey(vm.name())) {
            throw new IllegalStateException("VM '" + vm.name() + "' already has a backup endpoint");
        }
        // Every protection gets a store of its own: the previous one may hold the only committed copy
        // (kept until the new one commits its initial state), or be the RAM of a restored VM (LIVE).
        Path vmDir = storeRoot.resolve(vm.name());
        String generation = nextGeneration(vmDir);
        BackupStore store = BackupStore.open(vmDir.resolve(generation), vm.name());
        EpochListener withPruning = EpochListener.both(pruneOlderOnInitialCommit(vmDir, generation), listener);
        ServerSocket server;
        ReplicatedDisks replicated = null;
        try {
            replicated = disks.isEmpty() ? null
                    : ReplicatedDisks.create(vm.name(), vmDir.resolve(generation + "-disks"), disks, address.getAddress(), host, tls);
            server = host.listen(address, 1);
        } catch (IOException e) {
            if (replicated != null) {
                replicated.close();
            }
            store.close();
            throw new IOException("VM '" + vm.name() + "': cannot listen on " + address + ": " + e.getMessage(), e);
        }
        Endpoint ep = new Endpoint(vm, store, server, withPruning, replicated);
        if (endpoints.putIfAbsent(vm.name(), ep) != null) {
            ep.close();
            throw new IllegalStateException("VM '" + vm.name() + "' already has a backup endpoint");
        }
        ep.start();
        log.info("vm={} event=backup-listening port={} store={}", vm.name(), ep.port(), store.directory());
        return ep;
    }

    /** The next store generation's name under {@code vmDir}: one more than the highest there. */
    private static String nextGeneration(Path vmDir) throws IOException {
        long max = 0;
        if (java.nio.file.Files.isDirectory(vmDir)) {
            try (var names = java.nio.file.Files.list(vmDir)) {
                max = names.map(p -> p.getFileName().toString()).filter(n -> n.matches("\\d+"))
                        .mapToLong(Long::parseLong).max().orElse(0);
            }
        }
        return Long.toString(max + 1);
    }

    /**
     * Once the new store holds a committed initial state, the older stores of the VM are no longer
     * the newest committed copy: they are deleted, except one a restored VM runs on.
     */
    private static EpochListener pruneOlderOnInitialCommit(Path vmDir, String generation) {
        return new EpochListener() {
            @Override
            public void epochCommitted(dev.doppel.remus.colo.EpochMetrics m) {
                if (m.epoch() == 0) {
                    deleteOlderGenerations(vmDir, Long.parseLong(generation));
                }
            }
        };
    }

    private static void deleteOlderGenerations(Path vmDir, long current) {
        try (var names = java.nio.file.Files.list(vmDir)) {
            for (Path p : names.toList()) {
                String n = p.getFileName().toString();
                String gen = n.endsWith("-disks") ? n.substring(0, n.length() - 6) : n;
                if (!gen.matches("\\d+") || Long.parseLong(gen) >= current
                        || java.nio.file.Files.exists(vmDir.resolve(gen).resolve(BackupStore.LIVE_FILE))) {
                    continue;
                }
                BackupStore.deleteAll(p);
                log.info("vm={} event=old-store-deleted store={} reason=\"store {} committed its initial state\"",
                        vmDir.getFileName(), p, current);
            }
        } catch (IOException e) {
            log.warn("vm={} event=old-store-cleanup-failed cause=\"{}\"", vmDir.getFileName(), e.getMessage());
        }
    }

    public Endpoint endpoint(String vmName) {
        return endpoints.get(vmName);
    }

    @Override
    public void close() {
        for (Endpoint ep : endpoints.values()) {
            ep.close();
        }
    }

    /** One protected VM's port, store and current session. */
    public final class Endpoint implements AutoCloseable {
        private final ProtectedVm vm;
        private final BackupStore store;
        private final ServerSocket server;
        private final EpochListener listener;
        private final ReplicatedDisks disks;
        private final Thread acceptor;
        private final AtomicBoolean sessionActive = new AtomicBoolean();
        private final CommitGate gate;
        private volatile Socket current;
        private volatile Throwable lastFailure;

        private Endpoint(ProtectedVm vm, BackupStore store, ServerSocket server, EpochListener listener,
                         ReplicatedDisks disks) {
            this.vm = vm;
            this.store = store;
            this.server = server;
            this.listener = listener;
            this.disks = disks;
            this.gate = new CommitGate(vm.name());
            this.acceptor = new Thread(this::acceptLoop, "backup-accept-" + vm.name());
            acceptor.setDaemon(true);
        }

        private void start() {
            acceptor.start();
        }

        public int port() {
            return server.getLocalPort();
        }

        public String vmName() {
            return vm.name();
        }

        public BackupStore store() {
            return store;
        }

        /** The VM's replicated disks, or null if it has none. */
        public ReplicatedDisks disks() {
            return disks;
        }

        /** Why this endpoint's state must not be resumed (a disk is stale), or null. */
        public String staleReason() {
            return disks == null ? null : disks.staleReason();
        }

        /**
         * Seals this endpoint for a failover and returns the state to restore: a commit in progress
         * (memory and disks) finishes, every later one is refused, the disks stop taking writes, and the
         * committed epoch is read as one snapshot. Nothing the old primary still sends can change the
         * store after this returns.
         */
        public BackupStore.RestoreSnapshot seal(String why) throws IOException {
            gate.seal(why);
            if (disks != null) {
                disks.stopServing();
            }
            return store.restoreSnapshot();
        }

        /** Whether a failover has sealed this endpoint's store. */
        public boolean sealed() {
            return gate.sealed();
        }

        /** Commits refused because they came after {@link #seal}. */
        public long lateCommitsRefused() {
            return gate.refused();
        }

        /** The failure that ended the last session, or null. */
        public Throwable lastFailure() {
            return lastFailure;
        }

        public boolean sessionActive() {
            return sessionActive.get();
        }

        private void acceptLoop() {
            while (!server.isClosed()) {
                Socket s;
                try {
                    s = server.accept();
                } catch (IOException e) {
                    if (!server.isClosed()) {
                        log.warn("vm={} event=accept-failed cause={}", vm.name(), e.toString());
                    }
                    return;
                }
                // The TLS handshake runs before the peer may claim the session, on a thread of its
                // own: a peer without a certificate never holds the VM's one session slot.
                Thread t = new Thread(() -> admit(s), "colo-backup-" + vm.name());
                t.setDaemon(true);
                t.start();
            }
        }

        private void admit(Socket plain) {
            Socket s;
            try {
                s = tls.server(plain, "replication of VM " + vm.name());
            } catch (IOException e) {
                return;   // logged by PeerTls; nothing of the store was touched
            }
            // One primary per VM: a second connection while a session runs is an error (or an
            // attack); dropping it keeps the committed state of the running one intact.
            if (!sessionActive.compareAndSet(false, true)) {
                log.warn("vm={} event=connection-refused peer={} reason=session-active", vm.name(), s.getRemoteSocketAddress());
                Closeables.closeQuietly(log, s);
                return;
            }
            current = s;
            runSession(s);
        }

        private void runSession(Socket s) {
            log.info("vm={} event=primary-connected peer={}", vm.name(), s.getRemoteSocketAddress());
            try (s) {
                new ColoSecondarySession(vm, store, listener, disks == null ? DiskEpochs.NONE : disks, gate).run(s);
                lastFailure = null;
            } catch (ColoSessionException e) {
                lastFailure = e;
                log.warn("vm={} event=session-failed epoch={} step='{}' cause={}", vm.name(), e.epoch(), e.step(), e.getMessage());
            } catch (IOException | RuntimeException e) {
                lastFailure = e;
                log.warn("vm={} event=session-failed cause={}", vm.name(), e.toString());
            } finally {
                current = null;
                sessionActive.set(false);
            }
        }

        @Override
        public void close() {
            endpoints.remove(vm.name(), this);
            Closeables.closeQuietly(log, server);
            Socket s = current;
            if (s != null) {
                Closeables.closeQuietly(log, s);
            }
            if (disks != null) {
                disks.close();
            }
            store.close();
        }
    }
}

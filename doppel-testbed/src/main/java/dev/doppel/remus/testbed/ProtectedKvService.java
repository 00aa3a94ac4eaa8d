package dev.doppel.remus.testbed;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.control.ControlServer;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.PrimaryFence;
import dev.doppel.remus.guard.GuardProcess;
import dev.doppel.remus.nbd.ReplicatedDisks;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.primary.ProtectionScope;
import dev.doppel.remus.primary.ProtectionTarget;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.vm.Closeables;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Remus-protected key-value service on a {@link RemusTestbed}: the guest runs {@code kvserver}
 * persisting every PUT to a qcow2 data disk; the primary QEMU (a COLO-capable binary) runs on the
 * primary host, its disk mirrored to the backup's NBD export and its NIC output held per epoch;
 * the backup store, NBD export, control port and failover guard live on the backup host; clients
 * connect from the client host; a ZooKeeper server on the coordination host decides who owns the VM
 * (the primary's and the backup's coordination sessions go over their hosts' own links). For the end-to-end tests and {@code doppel bench remus-kv}.
 */
public final class ProtectedKvService implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ProtectedKvService.class);
    public static final int KV_PORT = 7000;
    public static final String DISK = "data0";
    public static final String NETDEV = "net0";
    /** Room for 65,536 records of 4 KiB: a 20 s benchmark phase writes ~15,000. */
    private static final long DISK_BYTES = 256L << 20;

    private final RemusTestbed bed;
    private final String name;
    private final Path work;
    private final List<Long> commitNanos = new ArrayList<>();
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final VmSpec spec;
    private VmProcess primary;
    private BackupServer backupServer;
    private ControlServer control;
    private BackupServer.Endpoint endpoint;
    private BackupGuard guard;
    private PrimaryProtector protector;
    /** Frames the primary reported released at commits (its tap counters), summed over protections. */
    private final java.util.concurrent.atomic.LongAdder releasedFrames = new java.util.concurrent.atomic.LongAdder();
    private EmbeddedCoordinator zookeeper;
    private VmLauncher backupLauncher;
    private Duration detection;
    /** The ensemble's members when the testbed has several coordination hosts (else empty). */
    private final List<EmbeddedCoordinator> ensemble = new ArrayList<>();
    private Coordinator backupCoordination;
    /** The primary's lease, held by the VM's guard process in the primary host's namespace. */
    private PrimaryFence primaryFencing;
    private volatile Consumer<Long> commitHook = e -> { };
    private volatile Consumer<Long> receivedHook = e -> { };

    private ProtectedKvService(RemusTestbed bed, String name, Path work, VmSpec spec) {
        this.bed = bed;
        this.name = name;
        this.work = work;
        this.spec = spec;
    }

    /** Boots the guest on the primary host with a fresh data disk and waits for its KV server. */
    public static ProtectedKvService boot(RemusTestbed bed, String name, Path work, VmLauncher primaryLauncher,
                                          GuestImage image) throws IOException, TimeoutException {
        return boot(bed, name, work, primaryLauncher, image, null);
    }

    /** {@link #boot}, with the primary's RAM on {@code memory} (null: QEMU's default anonymous RAM). */
    public static ProtectedKvService boot(RemusTestbed bed, String name, Path work, VmLauncher primaryLauncher,
                                          GuestImage image, MemoryBackend memory) throws IOException, TimeoutException {
        Files.createDirectories(work);
        Path disk = work.resolve(name + "-data.qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), Long.toString(DISK_BYTES));
        VmSpec spec = VmLauncher.guestSpec(name, image, "kv", Map.of("doppel.kv_disk", "1", "doppel.ip", bed.guestCidr(),
                        "doppel.kv_port", Integer.toString(KV_PORT)))
                .nic(NETDEV, RemusTestbed.GUEST_MAC, new NicSpec.Netdev.Tap(RemusTestbed.TAP))
                .disk(DISK, disk, "qcow2", false)
                .netns(bed.primary().ns().name())
                .build();
        if (memory != null) {
            spec = spec.toBuilder().memory(memory).build();
        }
        ProtectedKvService s = new ProtectedKvService(bed, name, work, spec);
        try {
            s.primary = primaryLauncher.start(spec);
            s.primary.console().awaitLine(Pattern.compile("kvserver listening port=" + KV_PORT), Duration.ofSeconds(120));
        } catch (RuntimeException | TimeoutException e) {
            s.close();
            throw e;
        }
        return s;
    }

    /** The coordination service on the coordination host, and each side's session to it (once). */
    private void startCoordination() throws IOException {
        if (zookeeper != null) {
            return;
        }
        try {
            List<RemusTestbed.Host> hosts = bed.coordinators();
            if (hosts.size() == 1) {
                zookeeper = EmbeddedCoordinator.standalone(new InetSocketAddress(bed.coordinator().ip(), 2181), work.resolve("zk"),
                        bed.coordinator().sockets(), tls(bed.coordinator()));
            } else {
                List<InetSocketAddress> members = hosts.stream().map(h -> new InetSocketAddress(h.ip(), 2181)).toList();
                // One identity for all members: ZooKeeper keeps server TLS settings process-wide.
                PeerTls memberTls = tls(bed.coordinator());
                for (int i = 0; i < hosts.size(); i++) {
                    ensemble.add(EmbeddedCoordinator.member(i + 1, members, work.resolve("zk" + (i + 1)), hosts.get(i).sockets(),
                            memberTls));
                }
                zookeeper = ensemble.get(0);
            }
            backupCoordination = Coordinator.connect(zookeeper.connectString(), Coordinator.DEFAULT_SESSION,
                    bed.backup().sockets(), Duration.ofSeconds(10), tls(bed.backup()));
        } catch (FencingException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /**
     * The host's TLS identity: the testbed has a CA of its own (made on first use) and a certificate per
     * host, so the control channel, the replication stream and the ZooKeeper sessions run over mutual
     * TLS as in production.
     */
    private PeerTls tls(RemusTestbed.Host h) throws IOException {
        Path pki = work.resolve("pki");
        if (!Files.exists(pki.resolve("ca"))) {
            Pki.init(pki, "testbed " + bed.toString());
        }
        if (!Files.exists(pki.resolve(h.ip()))) {
            Pki.issue(pki, h.ip());
        }
        return PeerTls.load(pki.resolve(h.ip()));
    }

    /**
     * Where the primary's guard logs: outside the VM's run directory (removed with the VM) and, under
     * Maven, outside the test's temporary directory, so that a failed round can still be read.
     */
    public Path guardLog() {
        Path target = Path.of("target");
        Path dir = Files.isDirectory(target) ? target.resolve("guard-logs") : work;
        return dir.resolve(name + "-guard.log");
    }

    /** The primary host's holder name in the ownership record. */
    public String primaryHolder() {
        return "primary@" + bed.primary().ip();
    }

    /** The backup host's holder name in the ownership record. */
    public String backupHolder() {
        return "backup@" + bed.backup().ip();
    }

    /** Starts the backup host's services for the VM (a new store and export each time). */
    public void startBackup(VmLauncher backupLauncher, Duration detection) throws IOException {
        this.backupLauncher = backupLauncher;
        this.detection = detection;
        RemusTestbed.Host b = bed.backup();
        startCoordination();
        if (backupServer == null) {
            backupServer = new BackupServer(work.resolve("backup-store"), b.sockets(), tls(b));
            control = new ControlServer(new InetSocketAddress(b.ip(), 0), b.sockets(), tls(b));
        }
        if (endpoint != null) {
            control.unregister(name);
            guard.close();
            endpoint.close();
        }
        endpoint = backupServer.listen(new ProtectedVm(name, spec.machineType(), spec.memoryMiB() << 20,
                        Duration.ofSeconds(30), Duration.ofSeconds(30)),
                new InetSocketAddress(b.ip(), 0), new EpochListener() {
                    @Override
                    public void checkpointReceived(long epoch) {
                        receivedHook.accept(epoch);
                    }

                    @Override
                    public void beforeRelease(long epoch) {
                        synchronized (commitNanos) {
                            commitNanos.add(System.nanoTime());
                        }
                        commitHook.accept(epoch);
                    }
                }, List.of(new ReplicatedDisks.Request(DISK, DISK_BYTES)));
        VmSpec restored = spec.toBuilder().name(name + "-bk").netns(b.ns().name()).build();
        guard = new BackupGuard(backupLauncher, restored, endpoint, detection,
                BackupGuard.Fencing.of(backupCoordination, backupHolder()));
        control.register(name, guard::onControl);
    }

    /** Starts the backup's services again after {@link #killBackup} (a new store, export and guard). */
    public void restartBackup() throws IOException {
        startBackup(backupLauncher, detection);
    }

    /** The backup host's services for the VM die (their sockets close, as when the process is killed). */
    public void killBackup() {
        if (endpoint != null) {
            control.unregister(name);
            guard.close();
            endpoint.close();
        }
    }

    /** Protects the primary; returns once the first checkpoint is committed. */
    public void protect(ProtectionOptions options) throws FencingException, IOException {
        RemusTestbed.Host b = bed.backup();
        if (primaryFencing == null) {
            // A guard process of its own, as in production: the lease does not live in the controller.
            primaryFencing = GuardProcess.attachOrStart(new GuardProcess.Spec(name, primary.pid(), primaryHolder(),
                    primary.runDir().path(), guardLog(), bed.primary().ns().name(), zookeeper.connectString(), null,
                    tls(bed.primary()), Coordinator.DEFAULT_SESSION, Duration.ofSeconds(5), true));
        }
        protector = new PrimaryProtector(name, primary.qmp(),
                () -> new ProtectionTarget(new InetSocketAddress(b.ip(), liveEndpoint().port()), guard.storeId(),
                        Map.of(DISK, new InetSocketAddress(b.ip(), endpoint.disks().ports().get(DISK)))),
                new InetSocketAddress(b.ip(), control.port()), options,
                new ProtectionScope(List.of(NETDEV), List.of(DISK), bed.primary().sockets(), primary.runDir().path(),
                        tls(bed.primary())),
                primaryFencing, line -> log.info("vm={} progress: {}", name, line));
        protector.reportTo(new dev.doppel.remus.primary.ProtectionEvents() {
            @Override
            public void outputReleased(String vm, long epoch, long frames, long bytes) {
                releasedFrames.add(frames);
            }
        });
        protector.protect();
        // The primary is in COLO mode while it still waits for the backup's CHECKPOINT_READY: wait for
        // the backup's first commit, which this method promises (tests read the committed store next).
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (endpoint.store().committedEpoch() < 0) {
            if (System.nanoTime() > deadline) {
                throw new IOException("VM '" + name + "': protected, but the backup committed no epoch within 60 s");
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("VM '" + name + "': interrupted while waiting for the backup's first commit", e);
            }
        }
    }

    /**
     * The backup endpoint a protection attempt may use: like the backup service, which gives every new
     * protection a new store, the testbed never offers a store its guard has given up (STALE); the
     * test starts a new backup ({@link #startBackup}) for that.
     */
    private BackupServer.Endpoint liveEndpoint() {
        if (guard.state() == BackupGuard.State.STALE) {
            throw new IllegalStateException("VM '" + name + "': the backup's store is stale; no backup to protect to");
        }
        return endpoint;
    }

    /**
     * Hostile peers on the client host try the backup's control port, the VM's replication port and its
     * NBD export, in plain TCP and with a certificate of another CA ({@link RoguePeers}), and a peer with a
     * trusted certificate replays a stand-down and a primary-down; returns the attempts that got through
     * or changed anything (none may).
     */
    public List<String> roguePeersAttack() throws IOException {
        Path foreign = work.resolve("foreign-pki");
        if (!Files.exists(foreign.resolve("ca"))) {
            Pki.init(foreign, "a stranger's CA");
            Pki.issue(foreign, bed.client().ip());
        }
        RemusTestbed.Host b = bed.backup();
        List<String> accepted = new ArrayList<>(RoguePeers.attack(bed.client().sockets(), name,
                new InetSocketAddress(b.ip(), control.port()), new InetSocketAddress(b.ip(), endpoint.port()),
                new InetSocketAddress(b.ip(), endpoint.disks().ports().get(DISK)), PeerTls.load(foreign.resolve(bed.client().ip()))));
        RoguePeers.replayStaleControl(bed.client().sockets(), name, new InetSocketAddress(b.ip(), control.port()), tls(bed.client()));
        try {
            Thread.sleep(1000);   // the stand-down is checked against the record off the control thread
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (guard.state() == BackupGuard.State.STALE) {
            accepted.add("control: a replayed stand-down (trusted certificate) made the backup give up its store");
        }
        return accepted;
    }

    /** A client on the client host. */
    public KvClient client(String prefix, int window) {
        return new KvClient(bed.client().sockets(), new InetSocketAddress(bed.guestIp(), KV_PORT), prefix, window);
    }

    /** Frames of held output the primary reported released at commits, as its tap counted them. */
    public long releasedFrames() {
        return releasedFrames.sum();
    }

    /** Backup commit times (nanoTime, just before the primary may release the epoch's output), in order. */
    public long[] commitTimes() {
        synchronized (commitNanos) {
            return commitNanos.stream().mapToLong(Long::longValue).toArray();
        }
    }

    /** Runs on the backup after each commit while the primary is still paused (tests compare disks here). */
    public void onCommit(Consumer<Long> hook) {
        this.commitHook = hook;
    }

    /** Runs on the backup when a checkpoint's last byte has arrived, before it is committed. */
    public void onCheckpointReceived(Consumer<Long> hook) {
        this.receivedHook = hook;
    }

    public RemusTestbed testbed() {
        return bed;
    }

    public VmProcess primary() {
        return primary;
    }

    public PrimaryProtector protector() {
        return protector;
    }

    public BackupGuard guard() {
        return guard;
    }

    /** The ensemble's members (empty with a single coordination server). */
    public List<EmbeddedCoordinator> ensemble() {
        return ensemble;
    }

    /** The primary's lease and fence. */
    public PrimaryFence primaryFencing() {
        return primaryFencing;
    }

    public BackupServer.Endpoint endpoint() {
        return endpoint;
    }

    public VmSpec spec() {
        return spec;
    }

    /** Hands a resource (a restored VM) to this service's clean-up. */
    public <T extends AutoCloseable> T own(T c) {
        owned.add(c);
        return c;
    }

    @Override
    public void close() {
        List<AutoCloseable> all = new ArrayList<>();
        all.add(protector);
        all.add(guard);
        all.add(primary);
        all.addAll(owned);
        all.add(endpoint);
        all.add(control);
        all.add(backupServer);
        all.add(primaryFencing);
        if (guard != null && guard.completedFailover() != null) {
            all.add(guard.completedFailover().lease());
        }
        all.add(backupCoordination);
        if (ensemble.isEmpty()) {
            all.add(zookeeper);
        } else {
            all.addAll(ensemble);
        }
        Closeables.closeAll(log, "vm=" + name, all);
    }
}

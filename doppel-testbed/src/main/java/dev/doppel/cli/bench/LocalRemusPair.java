package dev.doppel.cli.bench;

import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.control.ControlServer;
import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.fencing.Coordinator;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.remus.fencing.PrimaryFencing;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.primary.ProtectionScope;
import dev.doppel.remus.primary.ProtectionTarget;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.vm.FileTrees;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A protected VM and its backup on this machine, for benchmarks: the patched QEMU as COLO primary,
 * the Java backup service on loopback with its guard, an embedded ZooKeeper deciding ownership, and
 * optionally mutual TLS between them (a CA made for the run), everything owned and closed here.
 */
final class LocalRemusPair implements AutoCloseable {
    final VmProcess primary;
    final BackupServer backupServer;
    final BackupServer.Endpoint endpoint;
    final ControlServer control;
    final BackupGuard guard;
    final List<EpochMetrics> epochs = Collections.synchronizedList(new ArrayList<>());
    private final Path storeRoot;
    private final EmbeddedCoordinator zookeeper;
    private final Coordinator coordination;
    private final PeerTls tls;
    private PrimaryProtector protector;
    private PrimaryFencing fencing;

    LocalRemusPair(VmLauncher stock, VmSpec spec, Duration detection) throws Exception {
        this(stock, spec, detection, false);
    }

    /** With {@code withTls}, the control channel and the replication stream run over mutual TLS (through the relay). */
    LocalRemusPair(VmLauncher stock, VmSpec spec, Duration detection, boolean withTls) throws Exception {
        storeRoot = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-bench-store");
        if (withTls) {
            Pki.init(storeRoot.resolve("pki"), "bench CA");
            tls = PeerTls.load(Pki.issue(storeRoot.resolve("pki"), "127.0.0.1"));
        } else {
            tls = PeerTls.INSECURE;
        }
        VmLauncher patched = stock.onPatchedQemu();
        primary = patched.start(spec);
        backupServer = new BackupServer(storeRoot, HostSockets.LOCAL, tls);
        endpoint = backupServer.listen(new ProtectedVm(spec.name(), null, 0, Duration.ofSeconds(30), Duration.ofSeconds(30)),
                new InetSocketAddress("127.0.0.1", 0), new EpochListener() {
                    @Override
                    public void epochCommitted(EpochMetrics m) {
                        epochs.add(m);
                    }
                });
        control = new ControlServer(new InetSocketAddress("127.0.0.1", 0), HostSockets.LOCAL, tls);
        zookeeper = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), storeRoot.resolve("zk"), HostSockets.LOCAL, tls);
        coordination = Coordinator.connect(zookeeper.connectString(), Coordinator.DEFAULT_SESSION, HostSockets.LOCAL, Duration.ofSeconds(10), tls);
        guard = new BackupGuard(stock, spec.toBuilder().name(spec.name() + "-bk").build(), endpoint, detection,
                BackupGuard.Fencing.of(coordination, "backup@local"));
        control.register(spec.name(), guard::onControl);
    }

    PrimaryProtector protect(Duration interval) throws Exception {
        fencing = PrimaryFencing.claim(coordination, primary.name(), "primary@local", ProcessHandle.of(primary.pid()).orElseThrow(),
                Duration.ofSeconds(5));
        InetSocketAddress replication = new InetSocketAddress("127.0.0.1", endpoint.port());
        protector = new PrimaryProtector(primary.name(), primary.qmp(), () -> ProtectionTarget.memoryOnly(replication, guard.storeId()),
                new InetSocketAddress("127.0.0.1", control.port()), ProtectionOptions.withInterval(interval),
                new ProtectionScope(List.of(), List.of(), HostSockets.LOCAL, primary.runDir().path(), tls),
                fencing, line -> System.err.println("[bench] " + line));
        protector.protect();
        return protector;
    }

    @Override
    public void close() {
        if (protector != null) {
            protector.close();
        }
        guard.close();
        primary.close();
        control.close();
        endpoint.close();
        if (fencing != null) {
            fencing.close();
        }
        if (guard.completedFailover() != null) {
            guard.completedFailover().lease().close();
        }
        coordination.close();
        zookeeper.close();
        FileTrees.deleteRecursively(storeRoot);
    }
}

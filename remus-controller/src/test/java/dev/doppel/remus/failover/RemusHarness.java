package dev.doppel.remus.failover;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.NetNamespace;
import dev.doppel.remus.backup.BackupServer;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.control.ControlServer;
import dev.doppel.remus.primary.PrimaryProtector;
import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.testing.PatchedQemu;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.testing.TestVms;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Two hosts for Remus tests: the primary is a network namespace (its QEMU runs inside), the backup
 * service listens on the host side of the namespace's veth link, behind a {@link FreezableProxy}.
 * Everything it starts is stopped by {@link #close()}.
 */
final class RemusHarness implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RemusHarness.class);
    private static final AtomicInteger SEQ = new AtomicInteger();
    static final Pattern DIRTIER = Pattern.compile("dirtier t=\\d+ writes=(\\d+) passes=\\d+ rate=(\\d+) corrupt=(\\d+)");

    final TestVms vms = new TestVms();
    final String name;
    final NetNamespace primaryHost;
    final String hostSideIp;
    /** The primary host's own address (inside its namespace). */
    final String primaryIp;
    final BackupServer backupServer;
    final ControlServer control;
    final FreezableProxy proxy;
    final AtomicLong committedEpochs = new AtomicLong();
    final List<EpochMetrics> epochs = java.util.Collections.synchronizedList(new ArrayList<>());
    private final String vethHostSide;
    private final List<AutoCloseable> owned = new ArrayList<>();
    final dev.doppel.remus.fencing.EmbeddedCoordinator zookeeper;
    final dev.doppel.remus.fencing.Coordinator primaryCoordination;
    final dev.doppel.remus.fencing.Coordinator backupCoordination;
    dev.doppel.remus.fencing.PrimaryFencing fencing;
    BackupServer.Endpoint endpoint;
    BackupGuard guard;
    VmProcess primary;
    PrimaryProtector protector;
    VmSpec spec;

    RemusHarness(Path storeRoot) throws Exception {
        int seq = SEQ.incrementAndGet();
        int net = (int) (ProcessHandle.current().pid() % 200) + seq;
        name = TestVms.uniqueName("remus");
        primaryHost = NetNamespace.create("dpr-" + ProcessHandle.current().pid() + "-" + seq);
        vethHostSide = "dprh" + ProcessHandle.current().pid() % 10000 + seq;
        hostSideIp = "10.81." + (net % 250) + ".1";
        HostCommand.run("ip", "link", "add", vethHostSide, "type", "veth", "peer", "name", "eth0", "netns", primaryHost.name());
        HostCommand.run("ip", "addr", "add", hostSideIp + "/24", "dev", vethHostSide);
        HostCommand.run("ip", "link", "set", vethHostSide, "up");
        primaryIp = "10.81." + (net % 250) + ".2";
        primaryHost.address("eth0", primaryIp + "/24");
        backupServer = new BackupServer(storeRoot);
        control = new ControlServer(new InetSocketAddress(hostSideIp, 0));
        proxy = new FreezableProxy(new InetSocketAddress(hostSideIp, 0), new InetSocketAddress("127.0.0.1", 1));
        // The coordination service on the host side; the primary's session goes over the primary host's link.
        zookeeper = dev.doppel.remus.fencing.EmbeddedCoordinator.standalone(new InetSocketAddress(hostSideIp, 0),
                storeRoot.resolve("zk"), dev.doppel.hostnet.HostSockets.LOCAL,
                dev.doppel.tls.PeerTls.INSECURE);
        primaryCoordination = dev.doppel.remus.fencing.Coordinator.connect(zookeeper.connectString(),
                dev.doppel.remus.fencing.Coordinator.DEFAULT_SESSION, dev.doppel.hostnet.HostSockets.inNamespace(primaryHost.name()),
                Duration.ofSeconds(10), dev.doppel.tls.PeerTls.INSECURE);
        backupCoordination = dev.doppel.remus.fencing.Coordinator.connect(zookeeper.connectString(),
                dev.doppel.remus.fencing.Coordinator.DEFAULT_SESSION, dev.doppel.hostnet.HostSockets.LOCAL, Duration.ofSeconds(10),
                dev.doppel.tls.PeerTls.INSECURE);
    }

    /** A backup endpoint (new store) for the VM, with a guard that fails over to a VM named NAME-bk. */
    void startBackup(Duration detection) throws Exception {
        endpoint = backupServer.listen(new ProtectedVm(name, null, 0, Duration.ofSeconds(30), Duration.ofSeconds(30)),
                new InetSocketAddress("127.0.0.1", 0), new EpochListener() {
                    @Override
                    public void epochCommitted(EpochMetrics m) {
                        committedEpochs.set(m.epoch());
                        if (epochs.size() < 100_000) {
                            epochs.add(m);
                        }
                    }
                });
        proxy.retarget(new InetSocketAddress("127.0.0.1", endpoint.port()));
        guard = new BackupGuard(TestVms.launcher(), spec.toBuilder().name(name + "-bk" + SEQ.incrementAndGet()).netns(null).build(),
                endpoint, detection, BackupGuard.Fencing.of(backupCoordination, "backup@" + hostSideIp));
        control.register(name, guard::onControl);
    }

    /** Boots the primary (patched QEMU) in the primary namespace running the dirtier. */
    void startPrimary(int dirtyMb, int rate) throws Exception {
        spec = vms.guestSpec("remus", "dirtier", Map.of("doppel.dirty_mb", Integer.toString(dirtyMb),
                "doppel.dirty_rate", Integer.toString(rate))).name(name).netns(primaryHost.name()).build();
        primary = PatchedQemu.launcher().start(spec);
        primary.console().awaitLine(DIRTIER, Duration.ofSeconds(120));
    }

    void protect(ProtectionOptions options) throws Exception {
        protect(options, new InetSocketAddress(hostSideIp, control.port()));
    }

    /** Protection whose control channel (heartbeats) goes to {@code controlPath}. */
    void protect(ProtectionOptions options, InetSocketAddress controlPath) throws Exception {
        if (fencing == null) {
            fencing = dev.doppel.remus.fencing.PrimaryFencing.claim(primaryCoordination, name, "primary@" + primaryIp,
                    ProcessHandle.of(primary.pid()).orElseThrow(), Duration.ofSeconds(5));
        }
        protector = new PrimaryProtector(name, primary.qmp(),
                () -> dev.doppel.remus.primary.ProtectionTarget.memoryOnly(new InetSocketAddress(hostSideIp, proxy.port()), guard.storeId()),
                controlPath, options, dev.doppel.remus.primary.ProtectionScope.memoryOnly(), fencing,
                line -> log.info("progress: {}", line));
        protector.protect();
    }

    /**
     * A relay inside the primary host (its namespace) to the backup's control port, so that the
     * controller's heartbeats travel the primary host's own link and die with it, as they would if
     * the controller ran on that host. Returns the address to send heartbeats to.
     */
    InetSocketAddress controlRelayThroughPrimaryHost(int port) throws Exception {
        Process relay = new ProcessBuilder("ip", "netns", "exec", primaryHost.name(), "socat",
                "TCP-LISTEN:" + port + ",bind=" + primaryIp + ",reuseaddr,fork", "TCP:" + hostSideIp + ":" + control.port())
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        own(() -> {
            relay.destroyForcibly();
            relay.waitFor();
        });
        for (int i = 0; i < 100; i++) {
            try (java.net.Socket s = new java.net.Socket()) {
                s.connect(new InetSocketAddress(primaryIp, port), 200);
                return new InetSocketAddress(primaryIp, port);
            } catch (java.io.IOException e) {
                Thread.sleep(20);
            }
        }
        throw new IllegalStateException("control relay in " + primaryHost.name() + " did not come up");
    }

    /**
     * The primary host stops sending to the backup's control port (a tc filter on its link drops those
     * packets): heartbeats go silent while QEMU, the controller and the coordination session live on.
     * This kernel has no gact (drop) action and no prio qdisc, so the filter sits on clsact's egress
     * hook and redirects the packets to the namespace's loopback, which is down: they are discarded.
     */
    void silenceHeartbeats() {
        primaryHost.exec("tc", "qdisc", "add", "dev", "eth0", "clsact");
        primaryHost.exec("tc", "filter", "add", "dev", "eth0", "egress", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "dport", Integer.toString(control.port()), "0xffff", "action", "mirred", "egress", "redirect", "dev", "lo");
    }

    void own(AutoCloseable c) {
        owned.add(c);
    }

    @Override
    public void close() throws Exception {
        List<AutoCloseable> all = new ArrayList<>();
        all.add(protector);
        all.add(guard);
        all.add(primary);
        all.addAll(owned);
        all.add(proxy);
        all.add(control);
        all.add(endpoint);
        all.add(vms);
        all.add(fencing);
        all.add(primaryCoordination);
        all.add(backupCoordination);
        all.add(zookeeper);
        all.add(() -> HostCommand.tryRun(List.of("ip", "link", "del", vethHostSide)));
        all.add(primaryHost);
        dev.doppel.vm.Closeables.closeAll(log, "vm=" + name, all);
    }
}

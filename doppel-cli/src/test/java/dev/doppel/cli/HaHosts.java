package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.vm.VmRunDir;
import java.time.Duration;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What the CLI-level HA tests share: a work directory on tmpfs, a CA with the host's certificate, a
 * ZooKeeper server outside every Doppel process (over TLS), backup services, and the clean-up of all
 * of it (CLI processes, the VMs they named, the files).
 */
final class HaHosts implements AutoCloseable {
    final Path work;
    final String tls;
    final EmbeddedCoordinator zk;
    private final List<AutoCloseable> cleanup = new ArrayList<>();
    private final List<String> vms = new ArrayList<>();

    HaHosts(String prefix) throws IOException {
        work = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-" + prefix + "-");
        Pki.init(work.resolve("pki"), prefix + " test CA");
        tls = Pki.issue(work.resolve("pki"), "127.0.0.1").toString();
        zk = EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), work.resolve("zk"), HostSockets.LOCAL,
                PeerTls.load(Path.of(tls)));
        cleanup.add(zk);
    }

    /** {@code backup serve} on a free port with this CA and coordinator; returns it (its port via {@link #portOf}). */
    CliChild backup(int port, String... extra) throws IOException {
        List<String> args = new ArrayList<>(List.of("backup", "serve", "--listen", "127.0.0.1:" + port, "--store",
                Files.createDirectories(work.resolve("store-" + port)).toString(), "--tls", tls, "--coordinator", zk.connectString()));
        args.addAll(List.of(extra));
        return own(CliChild.start(args.toArray(String[]::new)));
    }

    /** {@code protect VM} to the backup service on {@code backupPort}, checkpointing every {@code intervalMs}. */
    CliChild protect(String vm, int backupPort, int intervalMs) throws IOException {
        return own(CliChild.start("protect", vm, "--backup", "127.0.0.1:" + backupPort, "--tls", tls, "--coordinator",
                zk.connectString(), "--interval", Integer.toString(intervalMs)));
    }

    /** Stopped with {@code vm stop} at the end if its run directory is still there. */
    void vm(String name) {
        vms.add(name);
    }

    /** Owned until close; a CLI child's whole output is kept in target/cli-logs for the reader of a failure. */
    <T extends AutoCloseable> T own(T c) {
        if (c instanceof CliChild child) {
            child.keepOutputIn(Path.of("target", "cli-logs"));
        }
        cleanup.add(c);
        return c;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() throws Exception {
        for (String name : vms) {
            Path guardLog = VmRunDir.root().resolve("vms").resolve(name).resolve("guard.log");
            if (Files.exists(guardLog)) {
                // kept for the reader of a failure: stopping the VMs removes their run directories
                Path logs = Files.createDirectories(Path.of("target", "cli-logs"));
                Files.copy(guardLog, logs.resolve(name + "-guard.log"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
        }
        for (int i = cleanup.size() - 1; i >= 0; i--) {
            cleanup.get(i).close();
        }
        for (String name : vms) {
            if (Files.exists(VmRunDir.root().resolve("vms").resolve(name))) {
                try {
                    CliChild.run(Duration.ofSeconds(60), "vm", "stop", name);
                } catch (IOException e) {
                    System.err.println("cleanup: " + e.getMessage());
                }
            }
        }
        HostCommand.run("rm", "-rf", work.toString());
    }
}

package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.libvirt.testing.GuestDomains;
import dev.doppel.libvirt.testing.PrivateLibvirtd;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.testbed.RemusTestbed;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Two hosts with a libvirtd each ({@link PrivateLibvirtd}, both in this network namespace) whose domains' NICs are
 * plugged into one switch (the {@link RemusTestbed}'s bridge), and a client host (the testbed's {@code client}
 * namespace) that reaches the guest only over that switch: when the VM moves to the other libvirtd its address
 * moves with its MAC, and a client's TCP connection can survive. {@code doppel backup serve --libvirt} and
 * {@code doppel protect --libvirt} run as the CLI's own processes, as an operator runs them. Everything is owned
 * here and ended by {@link #close()}, also on failure: CLI processes first, then the daemons (which destroy their
 * domains and kill any QEMU left), the testbed, the files.
 */
final class LibvirtHaHosts implements AutoCloseable {
    static final String VM = "web1";
    static final int KV_PORT = 7000;
    /** The status line of {@code protect} once checkpoints are committed. */
    static final Pattern CHECKPOINTING = Pattern.compile("^" + VM + " PROTECTED +checkpoints=[1-9]");

    final Path work;
    final RemusTestbed bed;
    final PrivateLibvirtd primaryHost;
    final PrivateLibvirtd backupHost;
    final LibvirtConnection primary;
    final LibvirtConnection backup;
    private final int backupPort;
    private final List<CliChild> children = new ArrayList<>();

    private LibvirtHaHosts(Path work, RemusTestbed bed, PrivateLibvirtd primaryHost, PrivateLibvirtd backupHost,
                           LibvirtConnection primary, LibvirtConnection backup, int backupPort) {
        this.work = work;
        this.bed = bed;
        this.primaryHost = primaryHost;
        this.backupHost = backupHost;
        this.primary = primary;
        this.backup = backup;
        this.backupPort = backupPort;
    }

    /** @param id up to 6 letters/digits; @param net the testbed's 10.83.NET.0/24 (unique among concurrent tests) */
    static LibvirtHaHosts start(String id, int net) throws IOException {
        Path work = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-lvha-");
        RemusTestbed bed = null;
        PrivateLibvirtd p = null;
        PrivateLibvirtd b = null;
        LibvirtConnection pc = null;
        try {
            bed = RemusTestbed.create(id + ProcessHandle.current().pid() % 100, net);
            p = PrivateLibvirtd.start();
            b = PrivateLibvirtd.start();
            pc = LibvirtConnection.open(p.uri());
            LibvirtConnection bc = LibvirtConnection.open(b.uri());
            return new LibvirtHaHosts(work, bed, p, b, pc, bc, freePort());
        } catch (IOException | RuntimeException e) {
            if (pc != null) {
                pc.close();
            }
            for (AutoCloseable c : new AutoCloseable[] {b, p, bed}) {
                closeQuietly(c);
            }
            BackupStore.deleteAll(work);
            throw e;
        }
    }

    /**
     * Boots {@link #VM} on the primary host: Doppel's guest running {@code kvserver} at the testbed's guest address,
     * every PUT logged to its virtio disk (vda, so that disk replication matters), its NIC a bridge interface on the
     * switch. Returns once the KV server listens.
     */
    void bootKvDomain() throws IOException, InterruptedException {
        GuestDomains domains = new GuestDomains(primaryHost);
        String xml = domains.xml(VM, 0, Map.of("doppel.run", "kv", "doppel.kv_disk", "1", "doppel.ip", bed.guestCidr(),
                "doppel.kv_port", Integer.toString(KV_PORT)), 128);
        Matcher nic = Pattern.compile("<interface type='ethernet'>.*?</interface>", Pattern.DOTALL).matcher(xml);
        if (!nic.find()) {
            throw new IllegalStateException("GuestDomains' XML has no ethernet interface: " + xml);
        }
        // A bridge interface, as most libvirt hosts have: libvirt makes the tap and plugs it into the switch.
        xml = nic.replaceFirst(Matcher.quoteReplacement("""
                <interface type='bridge'>
                      <mac address='%s'/>
                      <source bridge='%s'/>
                      <target dev='%s'/>
                      <model type='virtio'/>
                    </interface>""".formatted(RemusTestbed.GUEST_MAC, bed.switchName(), primaryHost.tapPrefix() + "0")));
        try {
            primary.libvirt().domainCreateXML(xml, 0);
        } catch (org.libvirt.LibvirtException e) {
            throw new IllegalStateException("libvirt refused domain '" + VM + "': " + e.getMessage() + "\n" + xml, e);
        }
        domains.awaitConsole(VM, "kvserver listening port=" + KV_PORT, Duration.ofSeconds(180));
    }

    /** {@code doppel backup serve --libvirt BACKUP_URI}, the primary's fixture paths mapped to the backup's. */
    CliChild backupServe() throws IOException {
        return own(CliChild.startWithEnvironment(env(), "backup", "serve", "--listen", "127.0.0.1:" + backupPort,
                "--store", Files.createDirectories(work.resolve("store")).toString(), "--insecure", "--detection-ms", "1000",
                "--libvirt", backupHost.uri(),
                // The console log is under the fixture's directory, which differs per "host" (libvirt's own
                // migration would need the same path on both, or a destination XML).
                "--libvirt-map", primaryHost.directory() + "=" + backupHost.directory()));
    }

    /** {@code doppel protect --libvirt web1} with a checkpoint every 100 ms. */
    CliChild protect() throws IOException {
        return own(CliChild.startWithEnvironment(env(), "protect", "--libvirt", VM, "--libvirt-uri", primaryHost.uri(),
                "--backup", "127.0.0.1:" + backupPort, "--insecure", "--interval", "100"));
    }

    /** Doppel's run files (the guard's socket and log) under this test's directory, not /run/doppel. */
    private Map<String, String> env() {
        return Map.of("DOPPEL_RUN_DIR", work.resolve("run").toString());
    }

    /** The primary's guard log ({@code libvirt/web1/qemu-PID/guard.log}; the test has one primary QEMU), or null. */
    Path guardLog() {
        Path dir = work.resolve("run/libvirt/" + VM);
        if (!Files.isDirectory(dir)) {
            return null;
        }
        try (var qemus = Files.list(dir)) {
            return qemus.map(d -> d.resolve("guard.log")).filter(Files::exists).findFirst().orElse(null);
        } catch (IOException e) {
            return null;
        }
    }

    private CliChild own(CliChild c) {
        c.keepOutputIn(Path.of("target", "cli-logs"));
        children.add(c);
        return c;
    }

    /** virsh against one host's libvirtd: "exit N: output", whatever N is (for observations, not judgements). */
    static String virshObserved(PrivateLibvirtd host, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("virsh", "-q", "-c", host.uri()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return "hangs";
        }
        return "exit " + p.exitValue() + ": " + out;
    }

    /** virsh against one host's libvirtd: its trimmed output; fails on a non-zero exit. */
    static String virsh(PrivateLibvirtd host, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("virsh", "-q", "-c", host.uri()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("virsh " + String.join(" ", args) + " hangs");
        }
        if (p.exitValue() != 0) {
            throw new IOException("virsh " + String.join(" ", args) + " exited " + p.exitValue() + ": " + out);
        }
        return out;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() {
        for (CliChild c : children) {
            closeQuietly(c);
        }
        Path guardLog = guardLog();
        if (guardLog != null) {
            try {
                // kept for the reader of a failure
                Files.copy(guardLog, Files.createDirectories(Path.of("target", "cli-logs")).resolve("libvirt-" + VM + "-guard.log"),
                        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                System.err.println("cannot keep the guard's log: " + e.getMessage());
            }
        }
        primary.close();
        backup.close();
        closeQuietly(backupHost);
        closeQuietly(primaryHost);
        closeQuietly(bed);
        killLeftovers();
        try {
            BackupStore.deleteAll(work);
        } catch (IOException e) {
            System.err.println("cannot remove " + work + ": " + e.getMessage());
        }
    }

    /**
     * The domain's guard (and its dead man) run detached from {@code protect}, as in production, and end on their own
     * once the QEMU is gone and the backup took over or gave up (up to 18 s); a failed test must not leave them: they
     * are found by this test's directory on their command line.
     */
    private void killLeftovers() {
        String marker = work.toString();
        ProcessHandle.allProcesses().filter(h -> h.pid() != ProcessHandle.current().pid()).forEach(h -> {
            try {
                String cmd = new String(Files.readAllBytes(Path.of("/proc/" + h.pid() + "/cmdline")), StandardCharsets.UTF_8);
                if (cmd.contains(marker)) {
                    System.err.println("left over after the test, killed: pid " + h.pid() + " " + cmd.replace('\0', ' '));
                    h.destroyForcibly();
                    h.onExit().orTimeout(10, TimeUnit.SECONDS).exceptionally(t -> null).join();
                }
            } catch (IOException e) {
                // gone meanwhile
            }
        });
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            System.err.println("clean-up of " + c + " failed: " + e.getMessage());
        }
    }
}

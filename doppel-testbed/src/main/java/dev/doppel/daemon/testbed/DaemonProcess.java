package dev.doppel.daemon.testbed;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.cli.bench.CliChild;
import dev.doppel.daemon.client.DaemonClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A real {@code doppel daemon run} process standing for one host: its own run directories
 * ({@code DOPPEL_RUN_DIR}), state directory and socket, so that two of them on one machine are two
 * hosts. It can be killed with SIGKILL and started again on the same directories (what an operator's
 * crash and restart does); {@link #close} stops it and removes its directories.
 */
public final class DaemonProcess implements AutoCloseable {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String name;
    private final Path home;
    private final Path logs;
    private final java.util.List<String> extraArgs;
    private CliChild child;
    private DaemonClient client;

    private DaemonProcess(String name, Path home, Path logs, java.util.List<String> extraArgs) {
        this.name = name;
        this.home = home;
        this.logs = logs;
        this.extraArgs = extraArgs;
    }

    /**
     * Starts a daemon whose files all live under {@code home}; its output is kept in {@code logs};
     * {@code extraArgs} go to {@code daemon run} (e.g. --listen, --tls, --token-file).
     */
    public static DaemonProcess start(String name, Path home, Path logs, String... extraArgs) throws IOException, InterruptedException {
        DaemonProcess d = new DaemonProcess(name, home, logs, java.util.List.of(extraArgs));
        d.startAgain();
        return d;
    }

    public Path runDir() {
        return home.resolve("run");
    }

    public Path socket() {
        return home.resolve("sock/doppeld.sock");
    }

    /** Starts the daemon process (again) and waits until it answers. */
    public void startAgain() throws IOException, InterruptedException {
        Files.createDirectories(runDir());
        java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("daemon", "run",
                "--socket", socket().toString(), "--state-dir", home.resolve("state").toString(), "--accel", "tcg"));
        args.addAll(extraArgs);
        child = CliChild.startWithEnvironment(Map.of("DOPPEL_RUN_DIR", runDir().toString()), args.toArray(String[]::new)).keepOutputIn(logs);
        child.awaitLine(Pattern.compile("doppeld running"), Duration.ofSeconds(60));
        if (client != null) {
            client.close();
        }
        client = new DaemonClient(socket());
    }

    /** SIGKILL: the daemon dies the way a crash kills it (no shutdown hook runs). */
    public void kill9() throws InterruptedException {
        child.process().destroyForcibly();
        child.process().waitFor();
        child.close();
    }

    /** {@code daemon stop} through the API: the daemon ends what it started and exits; its VMs run on. */
    public void stopGracefully() throws IOException, InterruptedException {
        client.call("POST", "/api/v1/daemon/stop", null, 10);
        if (!child.process().waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
            throw new IOException("daemon " + name + " did not exit within 60 s of its stop");
        }
        child.close();
    }

    public long pid() {
        return child.process().pid();
    }

    /** One API call; fails with the daemon's answer unless it is 2xx. */
    public JsonNode call(String method, String path, String json) throws IOException {
        DaemonClient.Answer a = client.call(method, path, json, 900);
        if (!a.ok()) {
            throw new IOException("daemon " + name + ": " + method + " " + path + " → " + a.status() + " " + a.body().strip());
        }
        return MAPPER.readTree(a.body());
    }

    /** One API call's raw answer (for calls that are meant to fail). */
    public DaemonClient.Answer answer(String method, String path, String json) throws IOException {
        return client.call(method, path, json, 900);
    }

    /** Stops the daemon (API), waits for it, and removes its directories. */
    @Override
    public void close() throws InterruptedException {
        try {
            if (child != null && child.process().isAlive()) {
                try {
                    client.call("POST", "/api/v1/daemon/stop", null, 10);
                } catch (IOException | RuntimeException | LinkageError e) {
                    System.err.println("daemon " + name + ": stop through the API failed (" + e + "); killing it");
                }
                if (!child.process().waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                    child.process().destroyForcibly();
                }
            }
        } finally {
            if (child != null) {
                child.close();
            }
            if (client != null) {
                client.close();
            }
            killLeftVms();
            removeLeftFamilies();
            dev.doppel.vm.FileTrees.deleteRecursively(home);
        }
    }

    /** Fork families outlive their daemon too: the clone networks and memory files of any left (their QEMUs are killed above). */
    private void removeLeftFamilies() {
        Path state = home.resolve("state");
        Path families = dev.doppel.daemon.Daemon.forkDiskDir(state);
        if (Files.isDirectory(families)) {
            try (var dirs = Files.list(families)) {
                for (Path f : dirs.toList()) {
                    String ns = dev.doppel.clone.net.CloneNetwork.namespaceOf(f.getFileName().toString());
                    if (dev.doppel.hostnet.NetNamespace.exists(ns)) {
                        dev.doppel.hostnet.HostCommand.tryRun(java.util.List.of("ip", "netns", "del", ns));
                    }
                }
            } catch (IOException e) {
                System.err.println("daemon " + name + ": cannot list its families: " + e);
            }
        }
        dev.doppel.vm.FileTrees.deleteRecursively(dev.doppel.daemon.Daemon.forkMemoryDir(state));
        // The other hosts its remote clones ran on (their QEMUs are killed above; a namespace's link goes with it).
        String prefix = dev.doppel.daemon.Daemon.cloneHostPrefix(state);
        for (String line : dev.doppel.hostnet.HostCommand.run("ip", "netns", "list").lines().toList()) {
            String ns = line.split("\\s+")[0];
            if (ns.startsWith(prefix)) {
                dev.doppel.hostnet.HostCommand.tryRun(java.util.List.of("ip", "netns", "del", ns));
            }
        }
    }

    /**
     * The harness owns the VMs of its "host": any the API did not stop (the daemon was gone, e.g. after
     * Ctrl-C reached it too) are killed here; their guards follow their QEMU.
     */
    private void killLeftVms() {
        Path vms = runDir().resolve("vms");
        if (!Files.isDirectory(vms)) {
            return;
        }
        try (var dirs = Files.list(vms)) {
            for (Path d : dirs.toList()) {
                dev.doppel.vm.VmRunDir dir = new dev.doppel.vm.VmRunDir(d);
                if (Files.exists(dir.specFile())) {
                    long pid = dev.doppel.vm.VmRecord.readFrom(dir).pid();
                    ProcessHandle.of(pid).ifPresent(h -> {
                        h.destroyForcibly();
                        h.onExit().orTimeout(10, java.util.concurrent.TimeUnit.SECONDS).exceptionally(t -> h).join();
                    });
                }
            }
        } catch (IOException | RuntimeException e) {
            System.err.println("daemon " + name + ": cannot clean its VMs up: " + e.getMessage());
        }
    }
}

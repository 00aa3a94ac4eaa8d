package dev.doppel.daemon.containers;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import com.github.dockerjava.api.model.AccessMode;
import com.github.dockerjava.api.model.Bind;
import com.github.dockerjava.api.model.Capability;
import com.github.dockerjava.api.model.Device;
import com.github.dockerjava.api.model.HostConfig;
import com.github.dockerjava.api.model.Volume;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.output.OutputFrame;
import org.testcontainers.utility.DockerImageName;

/**
 * One Doppel host as a container of the image scripts/build-host-image makes: privileged but for
 * CAP_SYS_RESOURCE (see the constructor; taps, namespaces, bridges; QEMU runs with TCG, or KVM where
 * /dev/kvm works), on a shared {@link Network} under its
 * alias (also its host name, and the name its certificate carries), with docker's init as PID 1 (reaps
 * what the daemon's children leave). Bind-mounted read-only, never baked into the image:
 * <pre>
 *   /opt/qemu-colo          the patched QEMU prefix (the image's qemu-system-x86_64 runs it)
 *   /opt/doppel/doppel.jar  this checkout's doppel-cli/target/doppel.jar
 *   /opt/doppel/guest       Doppel's test guest (vmlinuz, initramfs.img)
 *   /pki                    with {@link #withPki}: the host's certificate directory and API token
 * </pre>
 * The image sets {@code JAVA_TOOL_OPTIONS=-Ddoppel.root=/opt/doppel -Ddoppel.guest.dir=/opt/doppel/guest};
 * Doppel finds the patched QEMU through {@code /opt/doppel/scripts/build-qemu-colo}, which prints
 * {@code /opt/qemu-colo}. The container's stdout/stderr (the daemon's log) go to
 * {@code target/containers/<alias>-<time>.log}; {@link #logFile()} names it.
 */
public class DoppelHostContainer extends GenericContainer<DoppelHostContainer> {
    public static final int API_PORT = 7443;
    /** The daemon command of the multi-host tests (the API contract of issue #14). */
    public static final String[] DAEMON_COMMAND = {"java", "-jar", "/opt/doppel/doppel.jar", "daemon", "run",
        "--state-dir", "/var/lib/doppel/daemon", "--listen", "0.0.0.0:" + API_PORT, "--tls", "/pki", "--token-file", "/pki/token"};
    private static final long SHM_BYTES = 2L << 30; // backup stores and memory files live on /dev/shm (docker's default: 64 MiB)

    private final String alias;
    private final List<Bind> binds = new ArrayList<>();
    private final Path logFile;
    private Writer log;

    public DoppelHostContainer(String alias, Network network) throws IOException, InterruptedException {
        this(HostArtifacts.find(), alias, network);
    }

    public DoppelHostContainer(HostArtifacts artifacts, String alias, Network network) throws IOException {
        super(DockerImageName.parse(artifacts.image()));
        this.alias = alias;
        Path dir = Path.of("target", "containers").toAbsolutePath();
        Files.createDirectories(dir);
        this.logFile = dir.resolve(alias + "-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")) + ".log");
        withNetwork(network);
        withNetworkAliases(alias);
        // Binds through the create command, not withFileSystemBind: that one first checks "file mounting"
        // by running Testcontainers' tiny image (alpine), which needs a registry this machine cannot reach.
        binds.add(readOnly(artifacts.qemuPrefix(), "/opt/qemu-colo"));
        binds.add(readOnly(artifacts.jar(), "/opt/doppel/doppel.jar"));
        binds.add(readOnly(artifacts.guestDir(), "/opt/doppel/guest"));
        withCreateContainerCmdModifier(cmd -> {
            cmd.withHostName(alias);
            HostConfig hc = cmd.getHostConfig();
            hc.withBinds(binds).withInit(true).withShmSize(SHM_BYTES);
            // "Privileged minus CAP_SYS_RESOURCE": this machine's capability bounding set lacks
            // CAP_SYS_RESOURCE, and dockerd 20.10 gives a --privileged container every capability it
            // knows, so runc fails ("unable to apply caps: operation not permitted"). All other
            // capabilities, no seccomp/AppArmor filter, the tun device (taps) and /dev/kvm where the host
            // has one: measured enough for ip netns, tuntap, bridges. Unlike --privileged, /proc/sys stays
            // read-only (the API has no "systempaths=unconfined"; Doppel writes no sysctl).
            hc.withCapAdd(Capability.ALL).withCapDrop(Capability.SYS_RESOURCE)
                    .withSecurityOpts(List.of("seccomp=unconfined", "apparmor=unconfined"))
                    .withDevices(devices());
        });
        withCommand("sleep", "infinity");
        withLogConsumer(this::logFrame);
        withStartupTimeout(Duration.ofSeconds(120));
    }

    /** Mounts a host directory from {@code doppel pki issue} (plus the API token file {@code token}) at /pki. */
    public DoppelHostContainer withPki(Path hostPkiDir) {
        binds.add(readOnly(hostPkiDir.toAbsolutePath(), "/pki"));
        return this;
    }

    private static Bind readOnly(Path hostPath, String containerPath) {
        return new Bind(hostPath.toString(), new Volume(containerPath), AccessMode.ro);
    }

    private static List<Device> devices() {
        List<Device> d = new ArrayList<>();
        for (String dev : List.of("/dev/net/tun", "/dev/kvm")) {
            if (Files.exists(Path.of(dev))) {
                d.add(new Device("rwm", dev, dev));
            }
        }
        return d;
    }

    /** Runs the Doppel daemon as the container's main process and publishes its API port. */
    public DoppelHostContainer withDaemon() {
        withExposedPorts(API_PORT);
        return withCommand(DAEMON_COMMAND);
    }

    public String alias() {
        return alias;
    }

    public Path logFile() {
        return logFile;
    }

    /** {@code sh -c script} inside the container, killed after {@code timeout}; stdout and stderr kept apart. */
    public ExecResult sh(Duration timeout, String script) throws IOException, InterruptedException {
        return execInContainer("timeout", "-s", "KILL", Long.toString(Math.max(1, timeout.toSeconds())), "sh", "-c", script);
    }

    /** The last lines of this container's log, for failure messages. */
    public String logTail(int lines) {
        try {
            synchronized (this) {
                if (log != null) {
                    log.flush();
                }
            }
            if (!Files.exists(logFile)) {
                return "(no log)";
            }
            var all = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return alias + " log (" + logFile + "), last lines:\n  "
                    + String.join("\n  ", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    private synchronized void logFrame(OutputFrame frame) {
        try {
            if (log == null) {
                log = Files.newBufferedWriter(logFile, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            }
            if (frame.getType() == OutputFrame.OutputType.END) {
                return;
            }
            log.write(frame.getUtf8String());
            log.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void stop() {
        super.stop();
        synchronized (this) {
            try {
                if (log != null) {
                    log.close();
                    log = null;
                }
            } catch (IOException ignored) {
                // the log is best effort
            }
        }
    }

    /** Waits until {@code check} answers true, polling; false after {@code timeout}. */
    public static boolean await(Duration timeout, java.util.function.BooleanSupplier check) throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < end) {
            if (check.getAsBoolean()) {
                return true;
            }
            TimeUnit.MILLISECONDS.sleep(250);
        }
        return check.getAsBoolean();
    }
}

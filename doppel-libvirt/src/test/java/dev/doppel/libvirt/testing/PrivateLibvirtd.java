package dev.doppel.libvirt.testing;

import dev.doppel.libvirt.LibvirtConnection;
import org.libvirt.Domain;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A libvirtd + virtlogd of the tests' own, started as root in a private mount namespace, so that nothing on the
 * host outside this fixture's directory changes and no other libvirtd is touched.
 *
 * <p>A privileged libvirtd's directories are compiled in (libvirt 9.0: {@code /etc/libvirt}, {@code /run/libvirt},
 * {@code /var/lib/libvirt}, {@code /var/log/libvirt}, {@code /var/cache/libvirt}); only its sockets can be moved
 * by configuration ({@code unix_sock_dir}). So the namespace (unshare) mounts, visible to the two daemons and the
 * QEMUs they start only:
 * <ul>
 *   <li>overlays on {@code /run}, {@code /var/lib}, {@code /var/log}, {@code /var/cache} whose upper (written)
 *       layers are in this fixture's directory: the host's files stay readable, everything written lands here;</li>
 *   <li>this fixture's configuration directory on {@code /etc/libvirt};</li>
 *   <li>copies of {@code /etc/passwd} and {@code /etc/group} with a {@code libvirt-qemu} user and group: libvirt
 *       resolves its compiled-in default QEMU user before it reads {@code user = "root"} from qemu.conf, and
 *       only Debian's libvirt-daemon-system (not installed: it would add them on the host) creates them.</li>
 * </ul>
 * The libvirt socket is in {@code DIR/sock}: connect with {@link #uri()}. qemu.conf runs QEMU as root with no
 * cgroups, no QEMU mount namespace, no security driver and no ownership changes of image files, so libvirt
 * touches nothing outside. {@link #close()} destroys every domain, stops both daemons, kills any QEMU whose
 * command line names this fixture's directory, deletes tap devices named with {@link #tapPrefix()} and removes
 * the directory; the namespace (and its mounts) ends with its last process.
 *
 * <p>libvirtd runs under {@code tini -s}, a child subreaper: libvirt daemonises each QEMU, so a QEMU's parent is
 * the nearest subreaper, else PID 1. libvirt reports a stopped or killed QEMU only once the process is gone
 * ({@code kill(pid, 0)} fails), i.e. once it has been reaped, and this machine's PID 1 (not an ordinary init)
 * reaps orphans only every ~1.7 s (measured: a killed orphan stayed a zombie 1,686-1,724 ms). With tini as
 * the QEMUs' reaper they are reaped at once, as an ordinary init does on a normal host.
 */
public final class PrivateLibvirtd implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PrivateLibvirtd.class);
    private static final Duration START_TIMEOUT = Duration.ofSeconds(90);

    /** Runs in the new mount namespace: mounts, then becomes virtlogd. */
    private static final String NAMESPACE_SCRIPT = """
            set -e
            D=$1
            for p in run lib log cache; do mkdir -p "$D/ovl/$p-up" "$D/ovl/$p-work"; done
            mount -t overlay doppel-libvirt -o "lowerdir=/run,upperdir=$D/ovl/run-up,workdir=$D/ovl/run-work" /run
            mount -t overlay doppel-libvirt -o "lowerdir=/var/lib,upperdir=$D/ovl/lib-up,workdir=$D/ovl/lib-work" /var/lib
            mount -t overlay doppel-libvirt -o "lowerdir=/var/log,upperdir=$D/ovl/log-up,workdir=$D/ovl/log-work" /var/log
            mount -t overlay doppel-libvirt -o "lowerdir=/var/cache,upperdir=$D/ovl/cache-up,workdir=$D/ovl/cache-work" /var/cache
            mount --bind "$D/etc" /etc/libvirt
            cp /etc/passwd "$D/passwd"; cp /etc/group "$D/group"
            grep -q '^libvirt-qemu:' "$D/passwd" || echo 'libvirt-qemu:x:0:0:Doppel test libvirtd:/nonexistent:/usr/sbin/nologin' >> "$D/passwd"
            grep -q '^libvirt-qemu:' "$D/group" || echo 'libvirt-qemu:x:0:' >> "$D/group"
            mount --bind "$D/passwd" /etc/passwd
            mount --bind "$D/group" /etc/group
            exec /usr/sbin/virtlogd --config "$D/etc/virtlogd.conf"
            """;

    private final Path dir;
    private final String tapPrefix;
    private Process virtlogd;
    private Process libvirtd;
    private boolean closed;

    private PrivateLibvirtd(Path dir) {
        this.dir = dir;
        this.tapPrefix = "dl" + Long.toHexString(ProcessHandle.current().pid() % 0xfff) + Integer.toHexString((int) (System.nanoTime() & 0xff));
    }

    /** Starts virtlogd and libvirtd and waits until libvirtd's QEMU driver answers (8-15 s here). */
    public static PrivateLibvirtd start() throws IOException {
        PrivateLibvirtd d = new PrivateLibvirtd(Files.createTempDirectory(Path.of("/tmp"), "doppel-libvirtd-"));
        try {
            d.launch();
            return d;
        } catch (IOException | RuntimeException | Error e) {
            d.close();
            throw e;
        }
    }

    private void launch() throws IOException {
        Path etc = Files.createDirectories(dir.resolve("etc"));
        Files.createDirectories(dir.resolve("sock"));
        Files.createDirectories(dir.resolve("vm"));
        Files.writeString(etc.resolve("virtlogd.conf"), "log_outputs = \"3:stderr\"\n");
        Files.writeString(etc.resolve("libvirtd.conf"), """
                unix_sock_dir = "%s"
                unix_sock_group = "root"
                unix_sock_rw_perms = "0700"
                auth_unix_rw = "none"
                auth_unix_ro = "none"
                log_outputs = "3:stderr"
                """.formatted(dir.resolve("sock")));
        // user/group root: else libvirt re-probes KVM access for its QEMU user on every start (+4 s here).
        Files.writeString(etc.resolve("qemu.conf"), """
                user = "root"
                group = "root"
                dynamic_ownership = 0
                remember_owner = 0
                security_driver = "none"
                cgroup_controllers = [ ]
                namespaces = [ ]
                """);
        long t0 = System.nanoTime();
        virtlogd = new ProcessBuilder("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", NAMESPACE_SCRIPT,
                "sh", dir.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("virtlogd.log").toFile()).start();
        Path virtlogdSocket = dir.resolve("ovl/run-up/libvirt/virtlogd-sock");
        waitFor(() -> Files.exists(virtlogdSocket), virtlogd, "virtlogd", dir.resolve("virtlogd.log"), Duration.ofSeconds(20));
        libvirtd = new ProcessBuilder("nsenter", "--mount=/proc/" + virtlogd.pid() + "/ns/mnt", "--",
                "tini", "-s", "--", "/usr/sbin/libvirtd", "--config", etc.resolve("libvirtd.conf").toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("libvirtd.log").toFile()).start();
        waitFor(this::answers, libvirtd, "libvirtd", dir.resolve("libvirtd.log"), START_TIMEOUT);
        log.info("private libvirtd (tini pid {}) and virtlogd (pid {}) answer at {} after {} ms", libvirtd.pid(), virtlogd.pid(),
                uri(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
    }

    private boolean answers() {
        if (!Files.exists(dir.resolve("sock/libvirt-sock"))) {
            return false;
        }
        try (LibvirtConnection c = LibvirtConnection.open(uri())) {
            return c.libvirt().getVersion() > 0; // blocks until the QEMU driver is initialised
        } catch (Exception e) {
            return false;
        }
    }

    private interface Check {
        boolean ok() throws IOException;
    }

    private static void waitFor(Check check, Process p, String what, Path logFile, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!check.ok()) {
            if (!p.isAlive()) {
                throw new IllegalStateException(what + " exited with " + p.exitValue() + " during start-up: " + tail(logFile));
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(what + " did not answer within " + timeout.toSeconds() + " s: " + tail(logFile));
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for " + what, e);
            }
        }
    }

    private static String tail(Path file) {
        try {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 15), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /** The URI to connect to this libvirtd. */
    public String uri() {
        return "qemu:///system?socket=" + dir.resolve("sock/libvirt-sock");
    }

    /** This fixture's directory; domains' files go under {@code vm/} so that {@link #close()} finds their QEMUs. */
    public Path directory() {
        return dir;
    }

    /** A prefix for tap device names (at most 9 characters) that {@link #close()} deletes if libvirt left any. */
    public String tapPrefix() {
        return tapPrefix;
    }

    /** tini (the subreaper) and libvirtd under it, and the QEMUs it reaps once libvirt started them. */
    public ProcessHandle libvirtdTree() {
        return libvirtd.toHandle();
    }

    public long virtlogdPid() {
        return virtlogd.pid();
    }

    /** The pid of the running domain's QEMU, from the pid file libvirt writes. */
    public long qemuPid(String domain) throws IOException {
        return Long.parseLong(Files.readString(dir.resolve("ovl/run-up/libvirt/qemu/" + domain + ".pid")).trim());
    }

    /** Destroys every domain, stops both daemons, kills what is left of this fixture and removes its directory. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (libvirtd != null && libvirtd.isAlive()) {
            destroyAllDomains();
        }
        stop(libvirtd, "libvirtd");
        stop(virtlogd, "virtlogd");
        killLeftoverQemus();
        deleteLeftoverTaps();
        try {
            deleteTree(dir);
        } catch (IOException e) {
            log.warn("could not remove {}: {}", dir, e.getMessage());
        }
    }

    private void destroyAllDomains() {
        try (LibvirtConnection c = LibvirtConnection.open(uri())) {
            for (Domain d : c.libvirt().listAllDomains(0)) {
                String name = d.getName();
                if (d.isActive() == 1) {
                    d.destroy();
                }
                if (d.isPersistent() == 1) {
                    d.undefine();
                }
                log.debug("private libvirtd: domain '{}' removed", name);
            }
        } catch (Exception e) {
            log.warn("private libvirtd: destroying its domains failed (their QEMUs are killed below): {}", e.getMessage());
        }
    }

    private static void stop(Process p, String what) {
        if (p == null) {
            return;
        }
        p.destroy();
        try {
            if (!p.waitFor(15, TimeUnit.SECONDS)) {
                log.warn("{} (pid {}) ignored SIGTERM for 15 s; killing it", what, p.pid());
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
        }
    }

    /** QEMUs are daemonised by libvirt (their parent is init), so they are found by this fixture's paths. */
    private void killLeftoverQemus() {
        for (ProcessHandle h : qemusOfThisFixture()) {
            log.warn("private libvirtd: QEMU pid {} outlived its libvirtd; killing it", h.pid());
            h.destroyForcibly();
            h.onExit().orTimeout(10, TimeUnit.SECONDS).exceptionally(t -> null).join();
        }
    }

    /** Live processes whose command line mentions this fixture's directory (none after {@link #close()}). */
    public List<ProcessHandle> qemusOfThisFixture() {
        String marker = dir.toString();
        List<ProcessHandle> found = new ArrayList<>();
        ProcessHandle.allProcesses().forEach(h -> {
            try {
                byte[] cmd = Files.readAllBytes(Path.of("/proc/" + h.pid() + "/cmdline"));
                String line = new String(cmd, StandardCharsets.UTF_8);
                if (line.startsWith("/") && line.contains("qemu-system") && line.contains(marker)) {
                    found.add(h);
                }
            } catch (IOException e) {
                // gone meanwhile
            }
        });
        return found;
    }

    private void deleteLeftoverTaps() {
        for (String link : leftoverTaps()) {
            log.warn("private libvirtd: tap {} left behind; deleting it", link);
            try {
                new ProcessBuilder("ip", "link", "del", link).inheritIO().start().waitFor(10, TimeUnit.SECONDS);
            } catch (IOException e) {
                log.warn("could not delete tap {}: {}", link, e.getMessage());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Network devices named with {@link #tapPrefix()}. */
    public List<String> leftoverTaps() {
        try (Stream<Path> links = Files.list(Path.of("/sys/class/net"))) {
            return links.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(tapPrefix)).toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}

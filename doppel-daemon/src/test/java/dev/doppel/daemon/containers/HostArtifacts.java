package dev.doppel.daemon.containers;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import com.github.dockerjava.api.exception.NotFoundException;
import org.testcontainers.DockerClientFactory;

/**
 * What a {@link DoppelHostContainer} is made of, found the way the scripts make it: the image
 * ({@code scripts/build-host-image}, which also starts dockerd when none answers and answers from its
 * cache in a few seconds), the patched QEMU prefix ({@code scripts/build-qemu-colo}), Doppel's jar
 * ({@code doppel-cli/target/doppel.jar}, from {@code mvn install} / {@code scripts/setup}) and the
 * test guest ({@code -Ddoppel.guest.dir}, which scripts/test and the parent pom pass). Any of them
 * missing is a test failure that says which script makes it: the tests never skip themselves.
 *
 * <p>{@code -Ddoppel.host.image=NAME} uses that image instead of running scripts/build-host-image.
 */
public record HostArtifacts(Path root, String image, Path qemuPrefix, Path jar, Path guestDir) {
    private static HostArtifacts found;

    public static synchronized HostArtifacts find() throws IOException, InterruptedException {
        if (found == null) {
            Path root = projectRoot();
            Path guest = findGuestDir();
            Path jar = root.resolve("doppel-cli/target/doppel.jar");
            if (!Files.isRegularFile(jar)) {
                throw new IllegalStateException(jar + " is missing: run ./scripts/setup (or mvn -DskipTests install) first; "
                        + "the containers run the Doppel jar of this checkout");
            }
            Path prefix = Path.of(lastLine(runScript(root, "scripts/build-qemu-colo", 60)));
            if (!Files.isExecutable(prefix.resolve("bin/qemu-system-x86_64"))) {
                throw new IllegalStateException("scripts/build-qemu-colo names " + prefix + ", which holds no qemu-system-x86_64");
            }
            String image = System.getProperty("doppel.host.image", "");
            if (image.isBlank()) {
                // Starts dockerd if needed (ensure_dockerd in scripts/lib.sh); builds the image if it is missing.
                image = lastLine(runScript(root, "scripts/build-host-image", 900));
            }
            checkDocker(image);
            found = new HostArtifacts(root, image, prefix.toRealPath(), jar.toRealPath(), guest);
        }
        return found;
    }

    /** Docker answers and has the image locally (Testcontainers would otherwise try a registry for minutes). */
    private static void checkDocker(String image) {
        if (!DockerClientFactory.instance().isDockerAvailable()) {
            throw new IllegalStateException("Docker does not answer on /var/run/docker.sock: run ./scripts/setup "
                    + "(installs docker.io) or start dockerd with: . scripts/lib.sh && ensure_dockerd");
        }
        try {
            DockerClientFactory.instance().client().inspectImageCmd(image).exec();
        } catch (NotFoundException e) {
            throw new IllegalStateException("the image " + image + " is not in the local dockerd (no registry is reachable): "
                    + "build it with scripts/build-host-image");
        }
    }

    private static Path projectRoot() {
        Path root = Path.of("").toAbsolutePath();
        while (root != null && !Files.exists(root.resolve("scripts/build-host-image"))) {
            root = root.getParent();
        }
        if (root == null) {
            throw new IllegalStateException("scripts/build-host-image not found above " + Path.of("").toAbsolutePath());
        }
        return root;
    }

    private static Path findGuestDir() throws IOException {
        String dir = System.getProperty("doppel.guest.dir");
        if (dir == null || dir.isBlank()) {
            throw new IllegalStateException("-Ddoppel.guest.dir is not set (scripts/test and the parent pom set it)");
        }
        Path p = Path.of(dir);
        if (!Files.isRegularFile(p.resolve("vmlinuz")) || !Files.isRegularFile(p.resolve("initramfs.img"))) {
            throw new IllegalStateException("no guest kernel/initramfs in " + p + ": run ./scripts/setup (scripts/build-guest)");
        }
        return p.toRealPath(); // a bind mount of the 'current' symlink would pin nothing
    }

    /** Runs a script of the checkout; its last stdout line is the answer. Fails with its stderr. */
    private static String runScript(Path root, String script, int timeoutSeconds) throws IOException, InterruptedException {
        Path err = Files.createTempFile("doppel-script", ".err");
        try {
            Process p = new ProcessBuilder(root.resolve(script).toString()).redirectError(err.toFile()).start();
            p.getOutputStream().close();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException(script + " did not finish in " + timeoutSeconds + " s");
            }
            if (p.exitValue() != 0) {
                List<String> lines = Files.readAllLines(err, StandardCharsets.UTF_8);
                throw new IllegalStateException(script + " failed (exit " + p.exitValue() + "); its last messages:\n  "
                        + String.join("\n  ", lines.subList(Math.max(0, lines.size() - 15), lines.size()))
                        + "\n(run ./scripts/setup: it installs docker.io, starts dockerd and builds the image)");
            }
            return new String(out, StandardCharsets.UTF_8);
        } finally {
            Files.deleteIfExists(err);
        }
    }

    private static String lastLine(String out) {
        List<String> lines = out.lines().map(String::strip).filter(l -> !l.isEmpty()).toList();
        if (lines.isEmpty()) {
            throw new IllegalStateException("the script printed nothing");
        }
        return lines.get(lines.size() - 1);
    }
}

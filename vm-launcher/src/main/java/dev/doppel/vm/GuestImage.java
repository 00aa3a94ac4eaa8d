package dev.doppel.vm;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Doppel's own guest (built from guest/ by scripts/build-guest): a Debian cloud kernel and an
 * initramfs with busybox, the virtio modules, the dirtier, the KV server and the guest agent.
 */
public record GuestImage(Path directory) {
    /** System property {@code doppel.guest.dir}, else {@code $DOPPEL_GUEST_DIR}, else the setup's default. */
    public static GuestImage locate() {
        String dir = System.getProperty("doppel.guest.dir");
        if (dir == null || dir.isBlank() || dir.contains("${")) {
            dir = System.getenv("DOPPEL_GUEST_DIR");
        }
        Path path = dir == null || dir.isBlank()
                ? Path.of(System.getProperty("user.home"), ".cache", "doppel", "guest", "current")
                : Path.of(dir);
        GuestImage image = new GuestImage(path);
        if (!Files.isRegularFile(image.kernel()) || !Files.isRegularFile(image.initramfs())) {
            throw new IllegalStateException("no guest image in " + path + " (vmlinuz + initramfs.img): run ./scripts/setup");
        }
        return image;
    }

    /** A static program built with the guest that also runs on the host (e.g. {@code kvdump}). */
    public Path hostTool(String name) {
        return directory.resolve("bin").resolve(name);
    }

    public Path kernel() {
        return directory.resolve("vmlinuz");
    }

    public Path initramfs() {
        return directory.resolve("initramfs.img");
    }

    /** A boot with the given {@code doppel.*} parameters, e.g. {@code Map.of("doppel.run","dirtier")}. */
    public GuestBoot boot(Map<String, String> parameters) {
        return new GuestBoot(kernel(), initramfs(), parameters);
    }

    /** Boot running one workload: ticker, dirtier, kv, none. */
    public GuestBoot workload(String run) {
        return boot(Map.of("doppel.run", run));
    }
}

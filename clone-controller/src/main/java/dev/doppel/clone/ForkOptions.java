package dev.doppel.clone;

import dev.doppel.clone.pageserver.PageServerOptions;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Settings of a fork family.
 *
 * @param maxClones         upper bound for n in one fork (protects the host)
 * @param memoryDir         tmpfs directory for generation files and descriptors
 * @param diskDir           directory for qcow2 overlays
 * @param reshareAfterFork  move the parent back onto a shared memory file right after a fork, so its
 *                          next fork is fast (costs a local live migration in the background)
 * @param keepOverlays      keep clone overlays when clones exit (for inspection)
 * @param cloneTcgCacheMiB  TCG translation cache per clone (0 = QEMU's default); clones run short
 * @param stepTimeout       bound for each migration step of a fork or reshare
 * @param cloneExtraArguments extra QEMU arguments for clone processes only (diagnostics, e.g. tracing)
 * @param pageServer        page server settings for remote clones
 * @param remoteRecoverTimeout how long a remote clone whose page server vanished waits for a new one
 *                          before it is reported failed and stopped
 */
public record ForkOptions(int maxClones, Path memoryDir, Path diskDir, boolean reshareAfterFork, boolean keepOverlays,
                          int cloneTcgCacheMiB, Duration stepTimeout, List<String> cloneExtraArguments,
                          PageServerOptions pageServer, Duration remoteRecoverTimeout) {
    public static final Duration DEFAULT_RECOVER_TIMEOUT = Duration.ofSeconds(30);

    public ForkOptions {
        cloneExtraArguments = List.copyOf(cloneExtraArguments);
    }

    public ForkOptions(int maxClones, Path memoryDir, Path diskDir, boolean reshareAfterFork, boolean keepOverlays,
                       int cloneTcgCacheMiB, Duration stepTimeout, List<String> cloneExtraArguments) {
        this(maxClones, memoryDir, diskDir, reshareAfterFork, keepOverlays, cloneTcgCacheMiB, stepTimeout, cloneExtraArguments,
                PageServerOptions.defaults(), DEFAULT_RECOVER_TIMEOUT);
    }

    public ForkOptions(int maxClones, Path memoryDir, Path diskDir, boolean reshareAfterFork, boolean keepOverlays,
                       int cloneTcgCacheMiB, Duration stepTimeout) {
        this(maxClones, memoryDir, diskDir, reshareAfterFork, keepOverlays, cloneTcgCacheMiB, stepTimeout, List.of());
    }

    public static ForkOptions defaults() {
        return new ForkOptions(64, Path.of("/dev/shm/doppel"), Path.of("/var/tmp/doppel"), true, false, 128,
                Duration.ofSeconds(60));
    }

    public ForkOptions withCloneExtraArguments(String... args) {
        return new ForkOptions(maxClones, memoryDir, diskDir, reshareAfterFork, keepOverlays, cloneTcgCacheMiB, stepTimeout,
                List.of(args), pageServer, remoteRecoverTimeout);
    }

    public ForkOptions withMaxClones(int n) {
        return new ForkOptions(n, memoryDir, diskDir, reshareAfterFork, keepOverlays, cloneTcgCacheMiB, stepTimeout,
                cloneExtraArguments, pageServer, remoteRecoverTimeout);
    }

    public ForkOptions withReshareAfterFork(boolean b) {
        return new ForkOptions(maxClones, memoryDir, diskDir, b, keepOverlays, cloneTcgCacheMiB, stepTimeout,
                cloneExtraArguments, pageServer, remoteRecoverTimeout);
    }

    public ForkOptions withKeepOverlays(boolean b) {
        return new ForkOptions(maxClones, memoryDir, diskDir, reshareAfterFork, b, cloneTcgCacheMiB, stepTimeout,
                cloneExtraArguments, pageServer, remoteRecoverTimeout);
    }

    public ForkOptions withPageServer(PageServerOptions o) {
        return new ForkOptions(maxClones, memoryDir, diskDir, reshareAfterFork, keepOverlays, cloneTcgCacheMiB, stepTimeout,
                cloneExtraArguments, o, remoteRecoverTimeout);
    }

    public ForkOptions withRemoteRecoverTimeout(Duration d) {
        return new ForkOptions(maxClones, memoryDir, diskDir, reshareAfterFork, keepOverlays, cloneTcgCacheMiB, stepTimeout,
                cloneExtraArguments, pageServer, d);
    }
}

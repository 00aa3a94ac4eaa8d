package dev.doppel.clone;

import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.net.CloneAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Where a fork's clones run and how they get the parent's state. The parent's half of a fork is
 * the same everywhere ({@link ForkService}); this decides the clones' half:
 * <ul>
 *   <li>local: a process on this host maps the frozen generation file and loads the descriptor from
 *       a file ({@link ForkService#LOCAL});</li>
 *   <li>remote: a process on another host with empty RAM loads the descriptor from the page server
 *       and fetches every page on first touch ({@link RemoteForkService}).</li>
 * </ul>
 */
interface ClonePlacement {
    /** Starts clone {@code k}'s process ahead of the fork, waiting for its incoming state. */
    MemberProcess prestart(ForkableVm parent, String name, CloneAddress address, MemberProcess src, int k);

    /**
     * The descriptor is written and the parent runs again; the old parent process (which holds the
     * generation file's last writer reference) has not retired yet. Clones 1..{@code clones} start next
     * (a prepared pool may have had more; those were stopped).
     */
    default void descriptorReady(ForkableVm parent, int forkNumber, int clones, Path descriptor, GenerationFile generation) {
    }

    /** Lets clone {@code k}'s pre-started process load the fork's state and run. */
    CompletableFuture<Void> start(ForkableVm parent, String name, MemberProcess p, int k, Path descriptor, Duration timeout);

    /** The clones run and are registered in the family. */
    default void forked(ForkableVm parent, int forkNumber, List<ForkableVm> clones) {
    }

    /** The fork failed after {@link #descriptorReady}; release what it set up. */
    default void aborted(ForkableVm parent, int forkNumber) {
    }
}

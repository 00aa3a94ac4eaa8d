package dev.doppel.clone;

import dev.doppel.clone.disk.DiskImage;
import dev.doppel.clone.memory.GenerationFile;
import java.util.ArrayList;
import java.util.List;

/**
 * QEMU processes started ahead of a fork with {@code -incoming defer -S}: each maps the parent's
 * current generation file private and read-only (a remote clone: empty RAM on its host) and has its own
 * overlay on the parent's current top image, so at fork time only the device state has to be loaded. A
 * pool belongs to one fork number (the clones' MACs are derived from it) and one placement (the object
 * that started its clone processes), and is valid only for the generation and top image it was started
 * for; the fork that consumes it changes both.
 */
final class ProcessPool {
    final int forkNumber;
    /** Where the clone processes run; the fork that takes the pool must use the same placement. */
    final ClonePlacement placement;
    private final GenerationFile generation;
    private final DiskImage top;
    /** The process the parent continues in (parent's own address, tap up). */
    MemberProcess parentSlot;
    /** Clone k's process at index k-1 (derived address, tap down until its identity is set). */
    final List<MemberProcess> cloneSlots = new ArrayList<>();

    ProcessPool(int forkNumber, ClonePlacement placement, GenerationFile generation, DiskImage top) {
        this.forkNumber = forkNumber;
        this.placement = placement;
        this.generation = generation;
        this.top = top;
    }

    boolean matches(ClonePlacement where, GenerationFile gen, DiskImage disk) {
        return placement == where && generation == gen && top == disk;
    }

    /** Stops every process still in the pool and releases what they hold. */
    void discard() {
        if (parentSlot != null) {
            parentSlot.close();
            parentSlot = null;
        }
        cloneSlots.forEach(MemberProcess::close);
        cloneSlots.clear();
    }
}

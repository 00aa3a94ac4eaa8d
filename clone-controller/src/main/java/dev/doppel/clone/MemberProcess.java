package dev.doppel.clone;

import dev.doppel.clone.disk.DiskImage;
import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.net.CloneNetwork;
import dev.doppel.vm.VmProcess;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One QEMU process of a fork-family member, with what it holds: its tap, its top disk image and its
 * generation file. (The guest agent session belongs to the member, not the process: it moves along.) A member changes process at every fork (the parent continues in a new process)
 * and at every reshare; closing a process releases exactly what it held.
 */
final class MemberProcess implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MemberProcess.class);

    final VmProcess vm;
    final String tap;
    final DiskImage disk;
    final GenerationFile generation;
    /** True when the process maps its generation file share=on (it can be forked directly). */
    final boolean sharedMemory;
    private final CloneNetwork network;
    private volatile boolean closed;
    /**
     * A remote clone's process that does not have every page yet: it needs its fork's page server
     * (which lives in the controller), so a successor controller cannot adopt it.
     */
    volatile boolean waitsForPages;

    MemberProcess(VmProcess vm, String tap, DiskImage disk, GenerationFile generation, boolean sharedMemory, CloneNetwork network) {
        this.vm = vm;
        this.tap = tap;
        this.disk = disk;
        this.generation = generation;
        this.sharedMemory = sharedMemory;
        this.network = network;
    }

    /** The other host's namespace this process runs on (a remote clone's), or null on this host. */
    String remoteHost() {
        return network.isSegment() ? network.namespace() : null;
    }

    /** Brings this process's tap up on whichever part of the clone network it lives on. */
    void tapUp() {
        network.tapUp(tap);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            vm.close();
        } finally {
            network.removeTap(tap);
            if (disk != null) {
                disk.release();
            }
            generation.release();
            log.debug("process={} event=released tap={} gen={}", vm.name(), tap, generation.number());
        }
    }
}

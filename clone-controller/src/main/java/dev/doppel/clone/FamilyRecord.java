package dev.doppel.clone;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * What a successor controller needs to take over a living fork family whose controller died: every
 * member with the QEMU process it runs in now (run directory, tap, top disk image, generation file),
 * the disk chain, and the family's counters. Written (atomically) at every change of membership or
 * process, in the family's disk directory ({@link #FILE}).
 *
 * @param forks     forks made so far (the next fork's number follows)
 * @param processes QEMU processes started so far (the next process's number follows)
 * @param members   parents before their children
 * @param disks     bases before the overlays on them
 */
public record FamilyRecord(String name, int forks, int processes, List<Member> members, List<Disk> disks) {
    public static final String FILE = "family.json";
    private static final ObjectMapper MAPPER = new ObjectMapper();

    /**
     * One member and its current process.
     *
     * @param forkNumber   with {@code addressId}: its address on the clone network ({@link dev.doppel.clone.net.CloneAddress})
     * @param cloneId      0 for the root, k for clone k of its fork
     * @param process      the process's name (its run directory under {@code <run root>/vms/})
     * @param disk         path of the process's top image, or null (a family without a disk)
     * @param sharedMemory the process maps its generation {@code share=on} (it can fork without a reshare)
     * @param host         the network namespace of the other host a remote clone runs on (its tap is on the
     *                     family's segment there, its RAM came from a page server); null on this host
     * @param waitsForPages a remote clone that did not have every page yet (its page server lived in the
     *                      controller that wrote this: a successor cannot adopt it)
     */
    public record Member(String name, int forkNumber, int addressId, int cloneId, String parent, String process, String tap, String disk,
                         int generation, boolean generationFrozen, boolean sharedMemory, String host, boolean waitsForPages) {
    }

    /** One image of the chain; {@code owned}: an overlay Doppel made (deleted with its last user). */
    public record Disk(String path, String format, String backing, boolean owned) {
    }

    public FamilyRecord {
        members = List.copyOf(members);
        disks = List.copyOf(disks);
    }

    void writeTo(Path dir) {
        Path tmp = dir.resolve(FILE + ".tmp");
        try {
            Files.write(tmp, MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(this));
            Files.move(tmp, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("fork family '" + name + "': cannot write " + dir.resolve(FILE), e);
        }
    }

    /** The record in {@code dir}, or null if there is none. */
    public static FamilyRecord readFrom(Path dir) {
        Path f = dir.resolve(FILE);
        if (!Files.exists(f)) {
            return null;
        }
        try {
            return MAPPER.readValue(f.toFile(), FamilyRecord.class);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read fork family record " + f, e);
        }
    }
}

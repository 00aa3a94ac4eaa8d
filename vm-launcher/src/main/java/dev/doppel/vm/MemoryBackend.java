package dev.doppel.vm;

import java.nio.file.Path;

/**
 * Where a guest's RAM lives. The backend object always has the id {@link #RAM_BLOCK_ID}: the RAM
 * block name is part of the migration stream, and x-ignore-shared forks and COLO restores only work
 * when both ends name the block identically.
 */
public sealed interface MemoryBackend {
    /** Backend object id = RAM block name in the migration stream. */
    String RAM_BLOCK_ID = "pc.ram";

    /** Plain anonymous memory (ordinary VMs). */
    record Anonymous() implements MemoryBackend {
    }

    /** An memfd; {@code share} decides MAP_SHARED vs MAP_PRIVATE. */
    record Memfd(boolean share) implements MemoryBackend {
    }

    /**
     * A file, normally on tmpfs. {@code share=true}: MAP_SHARED, the file is the guest's RAM (a fork
     * parent, a restore from the backup's memory file). {@code share=false}: MAP_PRIVATE copy-on-write
     * view of the file; with {@code readOnly} the file is opened O_RDONLY so nothing can ever write
     * a frozen fork snapshot (QEMU then needs rom=off to keep the private mapping writable).
     */
    record File(Path path, boolean share, boolean readOnly) implements MemoryBackend {
        public File {
            if (readOnly && share) {
                throw new IllegalArgumentException("a read-only memory file cannot be mapped shared: " + path);
            }
        }

        public static File shared(Path path) {
            return new File(path, true, false);
        }

        public static File privateReadOnly(Path path) {
            return new File(path, false, true);
        }
    }

    /** The {@code -object} argument for this backend with the given size. */
    default String objectArgument(long sizeMiB) {
        String common = "id=" + RAM_BLOCK_ID + ",size=" + sizeMiB + "M";
        if (this instanceof Anonymous) {
            return "memory-backend-ram," + common;
        }
        if (this instanceof Memfd m) {
            return "memory-backend-memfd," + common + ",share=" + onOff(m.share());
        }
        File f = (File) this;
        StringBuilder sb = new StringBuilder("memory-backend-file,").append(common)
                .append(",mem-path=").append(QemuOptionText.escape(f.path().toString()))
                .append(",share=").append(onOff(f.share()));
        if (f.readOnly()) {
            sb.append(",readonly=on,rom=off");
        }
        return sb.toString();
    }

    private static String onOff(boolean b) {
        return b ? "on" : "off";
    }
}

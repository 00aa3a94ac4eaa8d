package dev.doppel.remus.stream;

import java.util.List;

/** One top-level record of a migration stream, as {@link MigrationStreamReader#next()} returns it. */
public sealed interface StreamItem {

    /**
     * The configuration section: machine type and the subsections QEMU uses to refuse incompatible
     * streams. {@code raw} is the whole record (type byte included) for replay.
     *
     * @param targetPageBits 0 when the subsection is absent (QEMU's default for the target)
     * @param uuid           16 bytes, or null when absent
     */
    record Configuration(String machineType, List<String> capabilities, int targetPageBits, byte[] uuid, byte[] raw)
            implements StreamItem {
        public boolean hasCapability(String name) {
            return capabilities.contains(name);
        }
    }

    /** A command record (type 0x08). {@code command} is null for a number this reader does not know. */
    record Command(int code, MigrationCommand command, byte[] data) implements StreamItem {
    }

    /**
     * A section of the RAM handler; its records went to the {@link RamRecordSink}. {@code idstr},
     * {@code instanceId} and {@code version} are known for START/FULL, and taken from the START for PART/END.
     */
    record RamSection(int type, int sectionId, String idstr, int instanceId, int version) implements StreamItem {
    }

    /**
     * A section of any other handler, kept as opaque bytes: header, data and footer exactly as
     * received, so the backup can replay it without understanding it.
     */
    record DeviceSection(int type, int sectionId, String idstr, int instanceId, int version, byte[] raw)
            implements StreamItem {
    }

    /** {@code QEMU_VM_EOF}: the end of the device state (and of a COLO checkpoint's RAM part). */
    record EndOfState() implements StreamItem {
    }

    /** {@code QEMU_VM_VMDESCRIPTION}: QEMU's JSON description of the device state that precedes it. */
    record VmDescription(String json) implements StreamItem {
    }
}

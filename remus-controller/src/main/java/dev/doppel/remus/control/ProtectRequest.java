package dev.doppel.remus.control;

import dev.doppel.vm.GuestDescriptor;
import java.util.Map;

/**
 * First message of a primary that wants protection: the VM's name and device model. The backup
 * answers with a {@link ProtectReply} naming the port QEMU's replication stream goes to.
 *
 * @param coordinator the coordination service (ZooKeeper connect string) the primary uses for this
 *                    VM's lease, when the backup service has none of its own configured (the
 *                    single-machine default: the primary's controller embeds one)
 * @param definition  the VM's definition in its manager's terms when another manager than Doppel owns it (a libvirt
 *                    domain's inactive XML): a backup that restores into that manager starts the VM from it; null
 *                    for a VM of Doppel's own launcher
 */
public record ProtectRequest(String vm, String type, GuestDescriptor guest, Map<String, Long> diskSizes, String coordinator,
                             String definition) {
    public static final String TYPE = "protect";

    public ProtectRequest {
        diskSizes = diskSizes == null ? Map.of() : Map.copyOf(diskSizes);
    }

    public static ProtectRequest of(String vm, GuestDescriptor guest) {
        return new ProtectRequest(vm, TYPE, guest, Map.of(), null, null);
    }

    /** A request that also asks for an NBD export per replicated disk (node name → size in bytes). */
    public static ProtectRequest of(String vm, GuestDescriptor guest, Map<String, Long> diskSizes) {
        return new ProtectRequest(vm, TYPE, guest, diskSizes, null, null);
    }

    /** The same request, naming the coordination service the primary uses. */
    public ProtectRequest withCoordinator(String connectString) {
        return new ProtectRequest(vm, type, guest, diskSizes, connectString, definition);
    }

    /** The same request, carrying the VM's definition in its manager's terms (see {@link #definition()}). */
    public ProtectRequest withDefinition(String definition) {
        return new ProtectRequest(vm, type, guest, diskSizes, coordinator, definition);
    }
}

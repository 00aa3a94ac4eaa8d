package dev.doppel.remus.control;

import dev.doppel.vm.GuestDescriptor;

/**
 * First message of a primary that wants protection: the VM's name and device model. The backup
 * answers with a {@link ProtectReply} naming the port QEMU's replication stream goes to.
 */
public record ProtectRequest(String vm, String type, GuestDescriptor guest) {
    public static final String TYPE = "protect";

    public static ProtectRequest of(String vm, GuestDescriptor guest) {
        return new ProtectRequest(vm, TYPE, guest);
    }
}

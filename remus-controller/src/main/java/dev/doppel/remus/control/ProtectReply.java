package dev.doppel.remus.control;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.Map;

/**
 * The backup's answer to a {@link ProtectRequest}: {@code ready} with a port and the name of the
 * store (the primary writes it into the VM's ownership record), or {@code error} with a reason.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ProtectReply(String vm, String type, Integer port, String reason, Map<String, Integer> diskPorts, String store) {
    /** Ready, with the NBD port of each replicated disk's export (node name → port). */
    public static ProtectReply ready(String vm, int port, String store, Map<String, Integer> diskPorts) {
        return new ProtectReply(vm, "ready", port, null, diskPorts.isEmpty() ? null : Map.copyOf(diskPorts), store);
    }

    public static ProtectReply error(String vm, String reason) {
        return new ProtectReply(vm, "error", null, reason, null, null);
    }
}

package dev.doppel.remus.control;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.Map;

/** The backup's answer to a {@link ProtectRequest}: {@code ready} with a port, or {@code error} with a reason. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ProtectReply(String vm, String type, Integer port, String reason, Map<String, Integer> diskPorts) {
    public static ProtectReply ready(String vm, int port) {
        return new ProtectReply(vm, "ready", port, null, null);
    }

    /** Ready, with the NBD port of each replicated disk's export (node name → port). */
    public static ProtectReply ready(String vm, int port, Map<String, Integer> diskPorts) {
        return new ProtectReply(vm, "ready", port, null, diskPorts.isEmpty() ? null : Map.copyOf(diskPorts));
    }

    public static ProtectReply error(String vm, String reason) {
        return new ProtectReply(vm, "error", null, reason, null);
    }
}

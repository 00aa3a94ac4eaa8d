package dev.doppel.remus.control;

import com.fasterxml.jackson.annotation.JsonInclude;

/** The backup's answer to a {@link ProtectRequest}: {@code ready} with a port, or {@code error} with a reason. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ProtectReply(String vm, String type, Integer port, String reason) {
    public static ProtectReply ready(String vm, int port) {
        return new ProtectReply(vm, "ready", port, null);
    }

    public static ProtectReply error(String vm, String reason) {
        return new ProtectReply(vm, "error", null, reason);
    }
}

package dev.doppel.remus.guard;

import com.fasterxml.jackson.annotation.JsonInclude;

/**
 * One request to a guard, a JSON line on its unix socket.
 *
 * @param op    {@code status}, {@code protect-with}, {@code go-unprotected}, {@code fence}, {@code release}, or a
 *              verdict on the QEMU's exit: {@code stopped-by-owner} or {@code crashed}
 * @param store the backup store to name ({@code protect-with})
 * @param why   the reason, logged by the guard and kept in the record of a fence
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record GuardRequest(String op, String store, String why) {
    static final String STATUS = "status";
    static final String PROTECT_WITH = "protect-with";
    static final String GO_UNPROTECTED = "go-unprotected";
    static final String FENCE = "fence";
    static final String RELEASE = "release";
    static final String STOPPED_BY_OWNER = "stopped-by-owner";
    static final String CRASHED = "crashed";

    static GuardRequest of(String op) {
        return new GuardRequest(op, null, null);
    }
}

package dev.doppel.remus.colo;

/**
 * COLO's control messages ({@code COLOMessage} in qapi/migration.json, sent as be32 on the
 * migration connection, both directions). Only {@link #VMSTATE_SIZE} carries a value (be64).
 */
public enum ColoMessage {
    CHECKPOINT_READY,
    CHECKPOINT_REQUEST,
    CHECKPOINT_REPLY,
    VMSTATE_SEND,
    VMSTATE_SIZE,
    VMSTATE_RECEIVED,
    VMSTATE_LOADED;

    /** The wire number (the QAPI enum's ordinal). */
    public int code() {
        return ordinal();
    }

    public static ColoMessage of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }
}

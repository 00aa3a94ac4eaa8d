package dev.doppel.remus.stream;

/**
 * The {@code MIG_CMD_*} numbers of QEMU 10.0's migration/savevm.c (command records, type 0x08): the
 * enum's order there, checked against a recorded COLO stream (ENABLE_COLO arrives as 8). Note that
 * PACKAGED is 7 and ENABLE_COLO 8, not 8 and 10.
 */
public enum MigrationCommand {
    OPEN_RETURN_PATH(1, 0),
    PING(2, 4),
    POSTCOPY_ADVISE(3, -1),
    POSTCOPY_LISTEN(4, 0),
    POSTCOPY_RUN(5, 0),
    POSTCOPY_RAM_DISCARD(6, -1),
    PACKAGED(7, 4),
    ENABLE_COLO(8, 0),
    POSTCOPY_RESUME(9, 0),
    RECV_BITMAP(10, -1),
    /** New in 10.0, no data; sent before the switchover and, with COLO, in every checkpoint. */
    SWITCHOVER_START(11, 0);

    private final int code;
    private final int length;

    MigrationCommand(int code, int length) {
        this.code = code;
        this.length = length;
    }

    /** The data length QEMU requires ({@code mig_cmd_args[].len}), or -1 for a variable length. */
    public int length() {
        return length;
    }

    public int code() {
        return code;
    }

    /** The command with this number, or null. */
    public static MigrationCommand of(int code) {
        for (MigrationCommand c : values()) {
            if (c.code == code) {
                return c;
            }
        }
        return null;
    }
}

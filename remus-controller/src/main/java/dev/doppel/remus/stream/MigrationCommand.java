package dev.doppel.remus.stream;

/** The {@code MIG_CMD_*} numbers of QEMU 10.0's migration/savevm.c (command records, type 0x08). */
public enum MigrationCommand {
    OPEN_RETURN_PATH(1),
    PING(2),
    POSTCOPY_ADVISE(3),
    POSTCOPY_LISTEN(4),
    POSTCOPY_RUN(5),
    POSTCOPY_RAM_DISCARD(6),
    POSTCOPY_RESUME(7),
    PACKAGED(8),
    RECV_BITMAP(9),
    ENABLE_COLO(10),
    /** New in 10.0, no data; sent before the switchover and, with COLO, in every checkpoint. */
    SWITCHOVER_START(11);

    private final int code;

    MigrationCommand(int code) {
        this.code = code;
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

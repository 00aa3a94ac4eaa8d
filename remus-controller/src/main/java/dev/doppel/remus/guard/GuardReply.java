package dev.doppel.remus.guard;

/**
 * A guard's answer: whether the request succeeded (or why not), and its state after it.
 *
 * @param token       the lease's fencing token
 * @param fenced      null, or why the guard killed the QEMU
 * @param coordinator the ZooKeeper connect string the guard uses (its embedded server's, if any)
 */
public record GuardReply(boolean ok, String error, String vm, String holder, long token, String fenced, String coordinator,
                         long qemuPid, boolean qemuAlive, long guardPid) {
}

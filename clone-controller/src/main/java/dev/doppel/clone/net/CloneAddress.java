package dev.doppel.clone.net;

/**
 * The network identity of a VM in a fork family, derived from where it was forked: the root VM is
 * fork 0, member 1; clone k of the family's f-th fork is (f, k). Unique in the family, so a second
 * fork (of the parent or of a clone) never reuses an address while earlier clones still run.
 *
 * <p>MAC {@code 52:54:00:77:ff:kk} (locally administered QEMU range), IPv4 {@code 10.77.f.k/16}.
 */
public record CloneAddress(int forkNumber, int cloneId) {
    public static final int MAX_FORKS = 255;
    public static final int MAX_CLONE_ID = 254;
    public static final String PREFIX_LENGTH = "16";

    public static final CloneAddress ROOT = new CloneAddress(0, 1);

    public CloneAddress {
        if (forkNumber < 0 || forkNumber > MAX_FORKS) {
            throw new IllegalArgumentException("fork number must be 0.." + MAX_FORKS + ": " + forkNumber);
        }
        if (cloneId < 1 || cloneId > MAX_CLONE_ID) {
            throw new IllegalArgumentException("clone id must be 1.." + MAX_CLONE_ID + ": " + cloneId);
        }
    }

    public String mac() {
        return String.format("52:54:00:77:%02x:%02x", forkNumber, cloneId);
    }

    public String ip() {
        return "10.77." + forkNumber + "." + cloneId;
    }

    public String cidr() {
        return ip() + "/" + PREFIX_LENGTH;
    }
}

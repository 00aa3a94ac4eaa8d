package dev.doppel.remus.backup;

import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one door through which a COLO session commits an epoch — memory <em>and</em> disks together —
 * and which a failover closes before it reads the store.
 *
 * <p>Why: when the primary dies, the bytes of its last checkpoint may already be at the backup (the
 * relay forwards what it had), so the session can still commit epoch N+1 after the failover decided
 * to restore. Without the gate the restore could read epoch N's device state over N+1's memory (QEMU
 * then fails to load virtio state), or N+1's pages could be written into the memory file the restored
 * guest already runs on (a write no dirty tracking sees), or memory could be at N+1 and disks at N.
 *
 * <p>{@link #seal} waits for a commit in progress to finish (the commit holds the gate's monitor for
 * its whole length), and every later {@link #commit} is refused with {@link LateCommitRefused}.
 */
public final class CommitGate {
    private static final Logger log = LoggerFactory.getLogger(CommitGate.class);

    private final String vm;
    private boolean sealed;
    private String sealReason;
    private long refused;

    /** The body of one commit (memory, then disks). */
    @FunctionalInterface
    public interface Commit {
        void run() throws IOException;
    }

    /** A commit attempted after the gate was sealed: the epoch is not committed, the store is unchanged. */
    public static final class LateCommitRefused extends IOException {
        LateCommitRefused(String vm, long epoch, String why) {
            super("VM '" + vm + "' epoch " + epoch + ": commit refused, the store is sealed (" + why + ")");
        }
    }

    public CommitGate(String vm) {
        this.vm = vm;
    }

    /** Runs {@code body} as the commit of {@code epoch}, unless the gate is sealed. */
    public synchronized void commit(long epoch, Commit body) throws IOException {
        if (sealed) {
            refused++;
            log.warn("vm={} epoch={} event=late-commit-refused reason=\"{}\"", vm, epoch, sealReason);
            throw new LateCommitRefused(vm, epoch, sealReason);
        }
        body.run();
    }

    /**
     * Closes the gate: returns once no commit is in progress; none will start afterwards. Idempotent.
     */
    public synchronized void seal(String why) {
        if (!sealed) {
            sealed = true;
            sealReason = why;
            log.info("vm={} event=store-sealed reason=\"{}\"", vm, why);
        }
    }

    public synchronized boolean sealed() {
        return sealed;
    }

    /** Commits refused since the seal (the campaign counts them as {@code late_commits_refused}). */
    public synchronized long refused() {
        return refused;
    }
}

package dev.doppel.remus.testbed;

import dev.doppel.remus.failover.BackupGuard;
import dev.doppel.remus.primary.ProtectionState;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The two-live-copies sampler of the fencing issue: every 20 ms, is more than one copy of the VM
 * running <em>and</em> able to let output reach clients? The primary is able while its QEMU runs and it
 * either runs unprotected (output leaves directly) or is protected by a backup that has not sealed its
 * store (output leaves at that backup's commits); once the backup sealed for a takeover, the old
 * primary's held output can no longer leave. The restored copy is able once it runs. This reads
 * Doppel's own state; the KV client's acknowledgements and sequence numbers judge the same thing
 * from outside.
 */
public final class LiveCopies implements AutoCloseable {
    private final ProtectedKvService kv;
    private final AtomicLong twoLive = new AtomicLong();
    private final Thread sampler;
    private volatile boolean closed;

    public LiveCopies(ProtectedKvService kv) {
        this.kv = kv;
        this.sampler = new Thread(this::sample, "live-copies-" + kv.spec().name());
        sampler.setDaemon(true);
        sampler.start();
    }

    private void sample() {
        while (!closed) {
            if (primaryLive() && backupLive()) {
                twoLive.incrementAndGet();
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private boolean primaryLive() {
        if (!kv.primary().isAlive()) {
            return false;
        }
        ProtectionState s = kv.protector().state();
        return s == ProtectionState.UNPROTECTED
                || ((s == ProtectionState.PROTECTED || s == ProtectionState.SYNCING) && !kv.endpoint().sealed());
    }

    private boolean backupLive() {
        BackupGuard.Failover f = kv.guard().completedFailover();
        return f != null && f.vm().isAlive();
    }

    /** Samples at which both copies were live. */
    public long twoLive() {
        return twoLive.get();
    }

    @Override
    public void close() {
        closed = true;
        sampler.interrupt();
    }
}

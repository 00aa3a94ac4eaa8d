package dev.doppel.clone;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A file shared by several VMs (a generation file, a backing image) that is deleted when the last
 * user releases it. Users acquire before they map or open it, and release after their process is gone.
 */
public abstract class RefCounted {
    private final AtomicInteger refs = new AtomicInteger();
    private volatile boolean freed;

    /** Adds a user; fails if the resource is already freed (a bug in the caller's ordering). */
    public final void acquire() {
        if (freed) {
            throw new IllegalStateException(this + " was already freed");
        }
        refs.incrementAndGet();
    }

    /** Drops a user; the last one frees the resource. */
    public final void release() {
        int left = refs.decrementAndGet();
        if (left < 0) {
            throw new IllegalStateException(this + " released more often than acquired");
        }
        if (left == 0 && !freed) {
            freed = true;
            free();
        }
    }

    public final int users() {
        return refs.get();
    }

    public final boolean isFreed() {
        return freed;
    }

    /** Called once, when the last user released it. */
    protected abstract void free();
}

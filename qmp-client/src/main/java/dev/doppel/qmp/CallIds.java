package dev.doppel.qmp;

import java.util.BitSet;

/**
 * The ids of a client's QMP calls: always the smallest number not in use.
 *
 * <p>Why small numbers: QEMU's monitor reads its input one byte per main-loop iteration
 * ({@code monitor_can_read()} returns 1 in QEMU 10.0; patches to read more were proposed upstream and never
 * merged), and each byte costs ~3 µs on this project's 2-vCPU machine. A {@code query-status} with
 * {@code "id":1} took 173 µs there, the same with {@code "id":"doppel-12345"} 227 µs (C client, same QEMU).
 *
 * <p>An id is free again once its reply has been read. The id of a call abandoned before its reply came stays
 * taken until that reply arrives, maybe forever, so a late reply can never be taken for a newer call's.
 */
final class CallIds {

    private final BitSet taken = new BitSet();

    /** A free id (at least 1), now taken. */
    synchronized int take() {
        int id = taken.nextClearBit(1);
        taken.set(id);
        return id;
    }

    /** Frees an id whose reply has arrived or whose request was never sent. */
    synchronized void free(int id) {
        taken.clear(id);
    }
}

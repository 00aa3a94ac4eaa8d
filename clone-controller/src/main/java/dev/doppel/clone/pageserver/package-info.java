/**
 * The page server: remote clones' memory over QEMU's own postcopy protocol.
 *
 * <p>Where to look: {@link dev.doppel.clone.pageserver.PageServer} (one per fork; dials out to each
 * clone), {@link dev.doppel.clone.pageserver.ClonePageSession} (one clone's connection: setup,
 * device state, page requests, background push, clean end, resume after {@code migrate-recover}),
 * {@link dev.doppel.clone.pageserver.SnapshotPages} (where page bytes come from). The wire format is
 * in {@code wire/}; the fork that creates a page server and the guard that recovers or fails a cut
 * clone are {@link dev.doppel.clone.RemoteForkService} and {@link dev.doppel.clone.RemoteFork}.
 */
package dev.doppel.clone.pageserver;

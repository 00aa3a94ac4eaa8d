package dev.doppel.clone;

import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.net.CloneAddress;
import dev.doppel.clone.net.CloneNetwork;
import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.ClonePageSession;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SnapshotPages;
import dev.doppel.clone.pageserver.multicast.MulticastDistribution;
import dev.doppel.clone.pageserver.wire.ForkDescriptor;
import dev.doppel.clone.disk.DiskImage;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.MemoryBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Fork with clones on other hosts. The parent's half is the local fork's ({@link ForkService}): stop,
 * device-state descriptor, the parent continues in a new process, the generation file is frozen.
 * The clones' half differs: each clone is a QEMU process on a {@link RemoteHost} with empty
 * anonymous RAM and the {@code postcopy-ram} capability, waiting with {@code -incoming defer}
 * (started within the fork request, or ahead of it by {@link #prepare}); the
 * fork's {@link RemoteFork} page server connects to it, sends the device state, and then only the
 * pages the clone touches. Identity, clone network (a segment bridged into the family's) and
 * clean-up are the local clones'.
 *
 * <p>With mutual TLS ({@link PageServerOptions#tls}) each clone QEMU's incoming side is a TLS server
 * that requires a certificate of the installation's CA ({@link IncomingTls}, set up when the process
 * starts, before {@code migrate-incoming}), and the page server connects as the TLS client: a peer
 * that reaches a clone's incoming port without such a certificate cannot feed it.
 */
public final class RemoteForkService {
    private final ForkService forks;
    private final PageServerOptions pageServerOptions;
    private final Duration recoverTimeout;

    /**
     * @param recoverTimeout how long a clone whose page server vanished may wait for a new one before
     *                       it is reported failed and stopped
     */
    public RemoteForkService(ForkService forks, PageServerOptions pageServerOptions, Duration recoverTimeout) {
        this.forks = forks;
        this.pageServerOptions = pageServerOptions;
        this.recoverTimeout = recoverTimeout;
    }

    /** What a remote fork produced: the usual result plus the page server and guard of its clones. */
    public record RemoteForkResult(ForkResult fork, RemoteFork remote) {
        public List<ForkableVm> clones() {
            return fork.clones();
        }
    }

    /**
     * Forks {@code vm} into {@code n} clones placed round-robin on {@code hosts}. The parent runs on
     * whatever happens; on a failure the fork's clones are removed.
     *
     * @throws ForkException naming the VM and the failed step
     */
    public RemoteForkResult fork(ForkableVm vm, int n, List<RemoteHost> hosts) {
        requireHosts(vm, hosts);
        // The pool a prepare() started belongs to its placement: reuse that placement if it is for these hosts
        // (a pool prepared for other hosts, or a local one, is stopped by the fork).
        Placement placement = forks.preparedPlacement(vm) instanceof Placement p && p.hosts.equals(hosts)
                ? p : new Placement(hosts);
        ForkResult r = forks.fork(vm, n, placement);
        return new RemoteForkResult(r, placement.remote);
    }

    /**
     * Starts the clone processes of the next fork of {@code vm} into {@code n} clones on {@code hosts}
     * ahead of it (empty RAM, waiting for the page server), plus the parent's next process, so that the
     * fork itself only moves device state. Returns the time it took in ms. A later
     * {@link #fork} with the same hosts takes them; one with other hosts, or any other fork of
     * {@code vm} first, stops them.
     */
    public double prepare(ForkableVm vm, int n, List<RemoteHost> hosts) {
        requireHosts(vm, hosts);
        return forks.prepare(vm, n, new Placement(hosts));
    }

    private static void requireHosts(ForkableVm vm, List<RemoteHost> hosts) {
        if (hosts.isEmpty()) {
            throw new IllegalArgumentException("VM '" + vm.name() + "': a remote fork needs at least one host");
        }
    }

    /** The remote {@link ClonePlacement} of one fork. */
    private final class Placement implements ClonePlacement {
        private final List<RemoteHost> hosts;
        private final Map<Integer, RemoteHost> hostOf = new java.util.concurrent.ConcurrentHashMap<>();
        private final Map<Integer, MemberProcess> processOf = new java.util.concurrent.ConcurrentHashMap<>();
        private volatile RemoteFork remote;

        Placement(List<RemoteHost> hosts) {
            this.hosts = List.copyOf(hosts);
        }

        @Override
        public MemberProcess prestart(ForkableVm parent, String name, CloneAddress address, MemberProcess src, int k) {
            ForkFamily family = parent.family();
            RemoteHost host = hosts.get((k - 1) % hosts.size());
            CloneNetwork segment = host.segmentFor(family.network());
            family.attach(() -> host.releaseSegment(family.network()));
            // The clone holds the generation while its pages may still be fetched from it.
            GenerationFile gen = src.generation;
            gen.acquire();
            DiskImage overlay;
            try {
                overlay = family.newOverlay(name, src.disk);
            } catch (RuntimeException e) {
                gen.release();
                throw e;
            }
            MemberProcess p = family.startProcess(name, address, new MemoryBackend.Anonymous(), gen, overlay,
                    false, true, true, segment, false);
            try {
                p.vm.qmp().execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                        Map.of("capability", "postcopy-ram", "state", true),
                        Map.of("capability", "events", "state", true))));
            } catch (RuntimeException e) {
                p.close();
                throw new ForkException(name, "cannot enable postcopy on the clone's QEMU on " + host, e);
            }
            if (pageServerOptions.tls().secure()) {
                try {
                    IncomingTls.require(name, p.vm.qmp(), pageServerOptions.tls());
                } catch (RuntimeException e) {
                    p.close();
                    throw e;
                }
            }
            p.waitsForPages = true;
            hostOf.put(k, host);
            processOf.put(k, p);
            return p;
        }

        @Override
        public void descriptorReady(ForkableVm parent, int forkNumber, int clones, Path descriptor, GenerationFile generation) {
            // a prepared pool may have had more clone processes than this fork uses (those are stopped)
            hostOf.keySet().removeIf(k -> k > clones);
            processOf.keySet().removeIf(k -> k > clones);
            String name = parent.family().name() + "-f" + forkNumber;
            SnapshotPages pages;
            generation.acquire();
            try {
                pages = new SnapshotPages(ForkDescriptor.read(descriptor), generation.path(), MemoryBackend.RAM_BLOCK_ID);
            } catch (IOException e) {
                generation.release();
                throw new ForkException(parent.name(), "fork " + forkNumber + ": cannot open the snapshot for the page server", e);
            }
            MulticastDistribution multicast = null;
            if (pageServerOptions.multicast()) {
                try {
                    multicast = MulticastDistribution.start(name, pages, List.copyOf(new LinkedHashSet<>(hostOf.values())),
                            generation.path().getParent(), Files.size(descriptor), pageServerOptions);
                } catch (IOException | RuntimeException e) {
                    try {
                        pages.close();
                    } catch (IOException closeFailure) {
                        e.addSuppressed(closeFailure);
                    }
                    generation.release();
                    throw new ForkException(parent.name(), "fork " + forkNumber + ": cannot set up multicast distribution", e);
                }
            }
            remote = new RemoteFork(name, pages, generation, pageServerOptions, recoverTimeout, multicast);
            parent.family().attach(remote);
            for (Map.Entry<Integer, RemoteHost> e : hostOf.entrySet()) {
                remote.expect(ForkService.cloneName(parent, forkNumber, e.getKey()), e.getValue(), processOf.get(e.getKey()));
            }
        }

        @Override
        public CompletableFuture<Void> start(ForkableVm parent, String name, MemberProcess p, int k, Path descriptor,
                                             Duration timeout) {
            RemoteHost host = hostOf.get(k);
            return CompletableFuture.runAsync(() -> {
                int port = host.nextPort();
                String uri = "tcp:" + host.address() + ":" + port;
                QmpClient qmp = p.vm.qmp();
                try {
                    qmp.execute("migrate-incoming", Map.of("uri", uri));
                } catch (RuntimeException e) {
                    throw new ForkException(name, "migrate-incoming " + uri + " refused", e);
                }
                ClonePageSession s = remote.serve(name, port);
                try {
                    s.serving().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
                    awaitRunning(name, qmp, timeout);
                    remote.markRunning(name);
                } catch (Exception e) {
                    throw new ForkException(name, "clone did not start from the page server", ForkService.unwrap(e));
                }
            });
        }

        @Override
        public void forked(ForkableVm parent, int forkNumber, List<ForkableVm> clones) {
            remote.adopt(clones);
        }

        @Override
        public void aborted(ForkableVm parent, int forkNumber) {
            if (remote != null) {
                remote.close();
            }
        }
    }

    /** The destination starts the guest itself at POSTCOPY_RUN, after the device state is loaded. */
    private static void awaitRunning(String clone, QmpClient qmp, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String status = qmp.execute("query-status").path("status").asText();
            if (status.equals("running")) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new ForkException(clone, "not running " + timeout.toMillis() + " ms after the page server connected"
                        + " (status " + status + ", migration " + qmp.execute("query-migrate").path("status").asText() + ")");
            }
            Thread.sleep(2);
        }
    }
}

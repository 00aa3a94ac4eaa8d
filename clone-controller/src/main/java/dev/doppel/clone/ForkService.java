package dev.doppel.clone;

import dev.doppel.clone.disk.DiskImage;
import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.net.CloneAddress;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.MemoryBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fork path.
 *
 * <p>At a fork the parent's RAM file is frozen as a generation snapshot and every VM that continues
 * from it — the n clones and the parent itself — is a QEMU process that maps that file private
 * (copy-on-write, pages faulted lazily from the page cache) and loads only the device state:
 * <ol>
 *   <li>processes are pre-started with {@code -incoming defer -S} on the generation file, each with
 *       its own qcow2 overlay on the parent's current top image ({@link #prepare});</li>
 *   <li>the parent is stopped and migrated with {@code x-ignore-shared} to a small file, the VM
 *       descriptor (device state and ROM blocks, ~0.3 MB; no guest RAM);</li>
 *   <li>the parent's new process loads the descriptor and continues (this ends the parent's pause),
 *       then the clones load it in parallel and start;</li>
 *   <li>the old parent process quits and the generation file is frozen;</li>
 *   <li>each clone gets its own MAC, IP, hostname and RNG seed from the guest agent (Doppel's, or for a
 *       real guest the standard qemu-guest-agent, which also sets the clock and makes new SSH host keys:
 *       {@link dev.doppel.clone.identity.QgaCloneIdentity}), then its tap comes up on the isolated clone network;</li>
 *   <li>in the background the parent moves back onto a fresh shared file (a local live migration),
 *       so that it can fork again.</li>
 * </ol>
 * Why the parent may not simply continue on its shared file: a private mapping still sees later
 * writes to the file for pages it has not written itself, so clones would read the parent's future.
 */
public final class ForkService {
    private static final Logger log = LoggerFactory.getLogger(ForkService.class);
    private static final Duration IDENTITY_TIMEOUT = Duration.ofSeconds(60);

    private final Map<ForkableVm, ProcessPool> pools = new ConcurrentHashMap<>();
    private final ExecutorService starter = Executors.newFixedThreadPool(4, r -> {
        Thread t = new Thread(r, "fork-prestart");
        t.setDaemon(true);
        return t;
    });
    private final SecureRandom random = new SecureRandom();
    /** Identity tasks wait on guests, not on CPU: one thread per clone being configured. */
    private final ExecutorService identityExecutor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "fork-identity");
        t.setDaemon(true);
        return t;
    });

    /** Clones on this host: private read-only mapping of the generation file, descriptor from a file. */
    static final ClonePlacement LOCAL = new ClonePlacement() {
        @Override
        public MemberProcess prestart(ForkableVm parent, String name, CloneAddress address, MemberProcess src, int k) {
            return startIncoming(parent, name, address, src, true);
        }

        @Override
        public CompletableFuture<Void> start(ForkableVm parent, String name, MemberProcess p, int k, Path descriptor,
                                             Duration timeout) {
            return MigrationSteps.incomingAsync(parent.name(), p.vm.qmp(), "file:" + descriptor, timeout)
                    .thenRun(() -> p.vm.qmp().execute("cont"));
        }
    };

    /**
     * Pre-starts the processes for a fork of {@code vm} into {@code n} clones, so that the fork itself
     * only moves device state. Returns the time it took in ms.
     */
    public double prepare(ForkableVm vm, int n) {
        return prepare(vm, n, LOCAL);
    }

    /** {@link #prepare(ForkableVm, int)} for a fork whose clones {@code placement} puts; the fork must pass it too. */
    double prepare(ForkableVm vm, int n, ClonePlacement placement) {
        validate(vm, n);
        awaitReshare(vm);
        vm.lifecycle.lock();
        try {
            long t0 = System.nanoTime();
            reshareIfPrivate(vm);
            poolFor(vm, n, placement);
            return (System.nanoTime() - t0) / 1e6;
        } finally {
            vm.lifecycle.unlock();
        }
    }

    /**
     * Forks {@code vm} into {@code n} clones with ids 1..n. The parent keeps running (in a new
     * process, same handle). On failure before the parent's new process runs, the parent is resumed
     * where it was; on a clone failure the fork's clones are removed; in both cases the parent runs.
     *
     * @throws ForkException       naming the VM and the failed step
     * @throws IllegalArgumentException for n out of range
     */
    public ForkResult fork(ForkableVm vm, int n) {
        return fork(vm, n, LOCAL);
    }

    /** The placement whose pool {@link #prepare} started for {@code vm}'s next fork, or null. */
    ClonePlacement preparedPlacement(ForkableVm vm) {
        ProcessPool pool = pools.get(vm);
        return pool == null ? null : pool.placement;
    }

    /**
     * A fork whose clones run where {@code placement} puts them: from a pool {@link #prepare prepared} for
     * this placement, topped up or started within this request otherwise.
     */
    ForkResult fork(ForkableVm vm, int n, ClonePlacement placement) {
        long tRequest = System.nanoTime();
        validate(vm, n);
        awaitReshare(vm);
        vm.lifecycle.lock();
        try {
            requireRunning(vm);
            reshareIfPrivate(vm);
            MemberProcess src = vm.process();
            long tPre = System.nanoTime();
            ProcessPool pool = poolFor(vm, n, placement);
            pools.remove(vm);
            double prestartMs = (System.nanoTime() - tPre) / 1e6;
            List<MemberProcess> surplus = new ArrayList<>(pool.cloneSlots.subList(n, pool.cloneSlots.size()));
            pool.cloneSlots.subList(n, pool.cloneSlots.size()).clear();
            surplus.forEach(MemberProcess::close);

            Path descriptor = vm.family().descriptorPath(pool.forkNumber);
            Duration timeout = vm.family().options().stepTimeout();
            QmpClient parentQmp = src.vm.qmp();
            MigrationSteps.setCapabilities(parentQmp, true);

            // Parent pause starts here.
            long tStop = System.nanoTime();
            parentQmp.execute("stop");
            MemberProcess newParent = pool.parentSlot;
            try {
                MigrationSteps.migrateAndWait(vm.name(), parentQmp, "file:" + descriptor, timeout);
                MigrationSteps.startIncoming(vm.name(), newParent.vm.qmp(), "file:" + descriptor, timeout)
                        .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
                newParent.vm.qmp().execute("cont");
            } catch (Exception e) {
                // The old process still holds the complete state; cont re-activates its disk.
                resume(vm.name(), parentQmp);
                pool.discard();
                throw new ForkException(vm.name(), "fork " + pool.forkNumber + " aborted, parent resumed", unwrap(e));
            }
            double pauseMs = (System.nanoTime() - tStop) / 1e6;
            vm.replaceProcess(newParent);
            pool.parentSlot = null;
            // Move the agent session before the old process goes, so calls in flight survive.
            reconnectAgent(vm);

            List<CompletableFuture<Void>> starts = new ArrayList<>();
            try {
                placement.descriptorReady(vm, pool.forkNumber, n, descriptor, src.generation);
                for (int k = 1; k <= pool.cloneSlots.size(); k++) {
                    starts.add(placement.start(vm, cloneName(vm, pool.forkNumber, k), pool.cloneSlots.get(k - 1), k,
                            descriptor, timeout));
                }
                CompletableFuture.allOf(starts.toArray(CompletableFuture[]::new)).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (Exception e) {
                pool.discard();
                placement.aborted(vm, pool.forkNumber);
                sizeAndDelete(descriptor);
                retire(vm, src);
                throw new ForkException(vm.name(), "fork " + pool.forkNumber + ": a clone failed to start; its clones were"
                        + " removed, the parent runs on", unwrap(e));
            }
            double forkMs = (System.nanoTime() - tRequest) / 1e6;
            long descriptorBytes = sizeAndDelete(descriptor);
            retire(vm, src);

            List<ForkableVm> clones = new ArrayList<>();
            for (int k = 1; k <= pool.cloneSlots.size(); k++) {
                MemberProcess p = pool.cloneSlots.get(k - 1);
                CloneAddress address = new CloneAddress(pool.forkNumber, k);
                ForkableVm clone = new ForkableVm(vm.family(), cloneName(vm, pool.forkNumber, k), address, vm, k, p);
                vm.family().register(clone);
                vm.addChild(clone);
                clones.add(clone);
            }
            pool.cloneSlots.clear();
            placement.forked(vm, pool.forkNumber, clones);
            log.info("vm={} event=forked fork={} clones={} pause_ms={} fork_ms={} prestart_ms={} descriptor_bytes={}",
                    vm.name(), pool.forkNumber, n, fmt(pauseMs), fmt(forkMs), fmt(prestartMs), descriptorBytes);
            applyIdentities(clones);
            if (vm.family().options().reshareAfterFork()) {
                reshareInBackground(vm);
            }
            return new ForkResult(vm, clones, pool.forkNumber, pauseMs, forkMs, prestartMs, descriptorBytes);
        } finally {
            vm.lifecycle.unlock();
        }
    }

    /** The old parent process handed its state over: stop it, and freeze the generation it wrote. */
    private static void retire(ForkableVm vm, MemberProcess old) {
        GenerationFile gen = old.generation;
        old.close();
        gen.freeze();
        log.debug("vm={} event=old-process-retired gen={} users={}", vm.name(), gen.number(), gen.users());
    }

    private static void resume(String vm, QmpClient qmp) {
        try {
            qmp.execute("cont");
        } catch (RuntimeException e) {
            log.error("vm={} event=resume-failed cause=\"{}\"", vm, e.getMessage());
        }
    }

    private ProcessPool poolFor(ForkableVm vm, int n, ClonePlacement placement) {
        MemberProcess src = vm.process();
        ProcessPool pool = pools.get(vm);
        if (pool != null && !pool.matches(placement, src.generation, src.disk)) {
            pool.discard();
            pool = null;
        }
        if (pool == null) {
            pool = new ProcessPool(vm.family().nextForkNumber(), placement, src.generation, src.disk);
            pools.put(vm, pool);
        }
        fill(vm, pool, n);
        return pool;
    }

    /** Starts the missing processes of a pool, a few at a time (QEMU start-up is mostly waiting). */
    private void fill(ForkableVm vm, ProcessPool pool, int n) {
        ClonePlacement placement = pool.placement;
        MemberProcess src = vm.process();
        List<Future<MemberProcess>> started = new ArrayList<>();
        Future<MemberProcess> parentSlot = pool.parentSlot == null
                ? starter.submit(() -> startIncoming(vm, vm.name(), vm.address(), src, false)) : null;
        for (int k = pool.cloneSlots.size() + 1; k <= n; k++) {
            CloneAddress address = new CloneAddress(pool.forkNumber, k);
            String name = cloneName(vm, pool.forkNumber, k);
            int cloneIndex = k;
            started.add(starter.submit(() -> placement.prestart(vm, name, address, src, cloneIndex)));
        }
        RuntimeException failure = null;
        if (parentSlot != null) {
            try {
                pool.parentSlot = parentSlot.get();
            } catch (Exception e) {
                failure = new ForkException(vm.name(), "cannot pre-start the parent's next process", unwrap(e));
            }
        }
        for (Future<MemberProcess> f : started) {
            try {
                pool.cloneSlots.add(f.get());
            } catch (Exception e) {
                if (failure == null) {
                    failure = new ForkException(vm.name(), "cannot pre-start a clone process", unwrap(e));
                }
            }
        }
        if (failure != null) {
            pools.remove(vm);
            pool.discard();
            throw failure;
        }
    }

    /** A process that will continue from {@code src}'s generation: private read-only RAM, own overlay. */
    private static MemberProcess startIncoming(ForkableVm vm, String member, CloneAddress address, MemberProcess src, boolean clone) {
        ForkFamily family = vm.family();
        GenerationFile gen = src.generation;
        gen.acquire();
        DiskImage overlay;
        try {
            overlay = family.newOverlay(member, src.disk);
        } catch (RuntimeException e) {
            gen.release();
            throw e;
        }
        MemberProcess p = family.startProcess(member, address, MemoryBackend.File.privateReadOnly(gen.path()), gen, overlay,
                !clone, true, clone);
        try {
            MigrationSteps.setCapabilities(p.vm.qmp(), true);
            return p;
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
    }

    /**
     * Gives each clone its own identity through its guest agent — MAC, IP, hostname, and fresh
     * entropy so clones never share RNG state or secrets derived from it — and only then brings its
     * tap up. Runs in the background, one task per clone (each mostly waits for its guest), so the
     * fork returns as soon as the clones run; {@link ForkableVm#identity()} tells when it is done.
     * A clone whose agent does not answer stays off the network and its identity future fails.
     */
    private void applyIdentities(List<ForkableVm> clones) {
        for (ForkableVm c : clones) {
            identityExecutor.execute(() -> applyIdentity(c));
        }
    }

    private void applyIdentity(ForkableVm clone) {
        byte[] seed = new byte[32];
        random.nextBytes(seed);
        if (clone.family().identityThroughQga()) {
            RealGuestIdentities.giveClone(clone, seed);   // a stock guest: qemu-guest-agent, no Doppel agent
            return;
        }
        try {
            clone.agent().command("set-identity", Map.of(
                    "hostname", clone.name(),
                    "ip", clone.address().cidr(),
                    "mac", clone.address().mac(),
                    "seed", HexFormat.of().formatHex(seed)), IDENTITY_TIMEOUT);
            clone.process().tapUp();
            clone.identity().complete(null);
            log.debug("vm={} event=identity-set ip={} mac={}", clone.name(), clone.address().ip(), clone.address().mac());
        } catch (IOException | TimeoutException | RuntimeException e) {
            log.warn("vm={} event=identity-failed cause=\"{}\" (clone stays off the network)", clone.name(), e.getMessage());
            clone.identity().completeExceptionally(new ForkException(clone.name(), "identity not applied", e));
        }
    }

    private static void reconnectAgent(ForkableVm vm) {
        try {
            vm.connectAgent();
        } catch (IOException e) {
            log.warn("vm={} event=agent-connect-failed cause=\"{}\"", vm.name(), e.getMessage());
        }
    }

    /** Moves {@code vm} onto a fresh shared memory file in the background. */
    public CompletableFuture<Void> reshareInBackground(ForkableVm vm) {
        CompletableFuture<Void> f = CompletableFuture.runAsync(() -> {
            vm.lifecycle.lock();
            try {
                reshareIfPrivate(vm);
            } finally {
                vm.lifecycle.unlock();
            }
        }, vm.family().background());
        f.whenComplete((ok, err) -> {
            if (err != null) {
                log.warn("vm={} event=reshare-failed cause=\"{}\"", vm.name(), unwrap(err).getMessage());
            }
        });
        vm.reshareStarted(f);
        return f;
    }

    private static void awaitReshare(ForkableVm vm) {
        try {
            vm.reshareInFlight().get(vm.family().options().stepTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            // A failed background reshare is retried synchronously under the lock.
            log.debug("vm={} background reshare did not succeed: {}", vm.name(), unwrap(e).getMessage());
        }
    }

    /**
     * A VM on a private mapping of a frozen generation cannot be forked directly (its own writes are
     * in anonymous copy-on-write pages no other process can map). A local live migration moves it
     * onto a new {@code share=on} file first. Caller holds the VM's lifecycle lock.
     */
    private static void reshareIfPrivate(ForkableVm vm) {
        MemberProcess src = vm.process();
        if (src.sharedMemory) {
            return;
        }
        long t0 = System.nanoTime();
        ForkFamily family = vm.family();
        Duration timeout = family.options().stepTimeout();
        GenerationFile gen = family.generations().create();
        gen.acquire();
        if (src.disk != null) {
            src.disk.acquire();   // shared-storage migration: the destination continues on the same image
        }
        MemberProcess dst = family.startProcess(vm.name(), vm.address(), MemoryBackend.File.shared(gen.path()), gen, src.disk,
                true, true, vm.cloneId() != 0);
        try {
            MigrationSteps.setCapabilities(src.vm.qmp(), false);
            MigrationSteps.setCapabilities(dst.vm.qmp(), false);
            String uri = "unix:" + dst.vm.runDir().path().resolve("migrate.sock");
            CompletableFuture<Void> incoming = MigrationSteps.startIncoming(vm.name(), dst.vm.qmp(), uri, timeout);
            MigrationSteps.migrateAndWait(vm.name(), src.vm.qmp(), uri, timeout);
            incoming.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            dst.vm.qmp().execute("cont");
        } catch (Exception e) {
            dst.close();
            resume(vm.name(), src.vm.qmp());
            throw new ForkException(vm.name(), "reshare onto a new memory file failed, VM continues where it was", unwrap(e));
        }
        vm.replaceProcess(dst);
        reconnectAgent(vm);
        src.close();
        log.info("vm={} event=reshared gen={} ms={}", vm.name(), gen.number(), fmt((System.nanoTime() - t0) / 1e6));
    }

    private static void validate(ForkableVm vm, int n) {
        int max = Math.min(vm.family().options().maxClones(), CloneAddress.MAX_CLONE_ID);
        if (n < 1 || n > max) {
            throw new IllegalArgumentException("VM '" + vm.name() + "': clone count must be 1.." + max + ", not " + n);
        }
        if (!vm.isRunning()) {
            throw new ForkException(vm.name(), "cannot fork: the VM is not running (it has ended)");
        }
    }

    private static void requireRunning(ForkableVm vm) {
        String status = vm.qmp().execute("query-status").path("status").asText();
        if (!status.equals("running")) {
            throw new ForkException(vm.name(), "cannot fork: the VM is " + status + ", not running");
        }
    }

    static String cloneName(ForkableVm vm, int forkNumber, int k) {
        return vm.family().name() + "-f" + forkNumber + "c" + k;
    }

    private static long sizeAndDelete(Path descriptor) {
        try {
            long size = Files.size(descriptor);
            Files.deleteIfExists(descriptor);
            return size;
        } catch (IOException e) {
            return -1;
        }
    }

    static Throwable unwrap(Throwable e) {
        while ((e instanceof ExecutionException || e instanceof java.util.concurrent.CompletionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e;
    }

    private static String fmt(double ms) {
        return String.format("%.1f", ms);
    }
}

package dev.doppel.remus.backup;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.QmpClient;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.remus.testing.PatchedQemu;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A real COLO primary (the patched QEMU, TCG, dirtier guest) checkpointing into the Java backup;
 * the backup's memory file compared with the frozen primary's RAM; then a restore from the backup
 * on the stock QEMU after SIGKILL of the primary.
 */
@Tag("integration")
class ColoBackupIntegrationTest {
    private static final long RAM_MIB = 256;
    private static final Pattern DIRTIER = Pattern.compile("dirtier t=(\\d+) writes=(\\d+) passes=\\d+ rate=\\d+ corrupt=(\\d+)");

    @AutoClose
    TestVms vms = new TestVms();

    @Test
    void primaryCheckpointsIntoTheBackupAndTheBackupRestoresTheGuest() throws Exception {
        Path storeRoot = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-colo-it-");
        try (BackupServer server = new BackupServer(storeRoot)) {
            run(server);
        } finally {
            BackupStore.deleteAll(storeRoot);
        }
    }

    private void run(BackupServer server) throws Exception {
        VmSpec spec = VmSpec.builder(TestVms.uniqueName("colo-it"))
                .boot(TestVms.guest().boot(Map.of("doppel.run", "dirtier", "doppel.dirty_mb", "16", "doppel.dirty_rate", "20000")))
                .memoryMiB(RAM_MIB).guestAgent(false).build();
        VmProcess primary = vms.own(PatchedQemu.launcher().start(spec));
        primary.console().awaitLine(DIRTIER, Duration.ofSeconds(120));

        List<EpochMetrics> metrics = new CopyOnWriteArrayList<>();
        AtomicReference<CompletableFuture<Long>> freeze = new AtomicReference<>();
        AtomicReference<Runnable> atFreeze = new AtomicReference<>();
        EpochListener listener = new EpochListener() {
            @Override
            public void beforeRelease(long epoch) {
                // The primary is paused here with exactly the committed state: inspect it now.
                CompletableFuture<Long> f = freeze.getAndSet(null);
                if (f != null) {
                    try {
                        atFreeze.get().run();
                        f.complete(epoch);
                    } catch (RuntimeException e) {
                        f.completeExceptionally(e);
                    }
                }
            }

            @Override
            public void epochCommitted(EpochMetrics m) {
                metrics.add(m);
            }
        };
        ProtectedVm pvm = ProtectedVm.named(spec.name()).withMachine(spec.machineType(), RAM_MIB << 20);
        BackupServer.Endpoint ep = server.listen(pvm, new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), listener);

        QmpClient qmp = primary.qmp();
        qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "x-colo", "state", true), Map.of("capability", "events", "state", true))));
        qmp.execute("migrate-set-parameters", Map.of("x-checkpoint-delay", 100));
        long t0 = System.nanoTime();
        qmp.execute("migrate", Map.of("uri", "tcp:127.0.0.1:" + ep.port()));
        awaitEpoch(metrics, 0, Duration.ofSeconds(60), ep);
        long initialDone = System.nanoTime();
        Thread.sleep(500);
        JsonNode colo = qmp.execute("query-colo-status");
        assertEquals("primary", colo.path("mode").asText(), colo.toString());

        Thread.sleep(10_000);
        long epochsIn10s = lastEpoch(metrics);
        assertTrue(epochsIn10s >= 50, "checkpoints committed in 10 s: " + epochsIn10s);

        // Freeze at a committed epoch boundary: compare the primary's RAM with the store's memory file.
        Path dump = Files.createTempFile(Path.of("/dev/shm"), "colo-it-pmem-", ".bin");
        int[] differing = {-1};
        List<String> firstDiffs = new ArrayList<>();
        atFreeze.set(() -> {
            try {
                qmp.execute("pmemsave", Map.of("val", 0, "size", RAM_MIB << 20, "filename", dump.toString()),
                        Duration.ofSeconds(60));
                differing[0] = comparePages(dump, ep.store().memoryFile(), firstDiffs);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        CompletableFuture<Long> frozen = new CompletableFuture<>();
        freeze.set(frozen);
        long frozenEpoch = frozen.get(30, TimeUnit.SECONDS);
        Files.deleteIfExists(dump);
        assertEquals(0, differing[0], "pages differing between the paused primary (epoch " + frozenEpoch
                + ") and the store: " + firstDiffs);

        // Let it run on, then kill the primary the hard way and restore from the store.
        Thread.sleep(2_000);
        int consoleMark = primary.console().mark();
        long lastPrimaryWrites = lastWrites(primary.console().lines());
        primary.kill();
        awaitSessionEnd(ep, Duration.ofSeconds(10));
        long restoredEpoch = ep.store().committedEpoch();
        report(metrics, t0, initialDone, epochsIn10s, frozenEpoch, restoredEpoch);

        byte[] restoreStream = ep.store().restoreStream();
        Path streamFile = ep.store().directory().resolve("restore.state");
        Files.write(streamFile, restoreStream);
        VmSpec restoreSpec = spec.toBuilder().name(TestVms.uniqueName("colo-it-restored"))
                .memory(MemoryBackend.File.shared(ep.store().memoryFile()))
                .incomingDefer(true).startPaused(true).build();
        VmProcess restored = vms.start(restoreSpec);     // stock QEMU
        long r0 = System.nanoTime();
        QmpClient rq = restored.qmp();
        rq.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "x-ignore-shared", "state", true), Map.of("capability", "events", "state", true))));
        rq.execute("migrate-incoming", Map.of("uri", "file:" + streamFile));
        awaitIncoming(rq, Duration.ofSeconds(30));
        rq.execute("cont");
        double restoreMs = (System.nanoTime() - r0) / 1e6;
        System.out.printf("restore: stream %d bytes, migrate-incoming + cont %.1f ms (epoch %d)%n",
                restoreStream.length, restoreMs, restoredEpoch);

        Matcher first = restored.console().awaitMatch(DIRTIER, 0, Duration.ofSeconds(20));
        long firstWrites = Long.parseLong(first.group(2));
        assertTrue(firstWrites >= lastPrimaryWrites / 2 && firstWrites > 100_000,
                "restored dirtier continues the checkpointed counter: first writes=" + firstWrites
                        + ", primary's last printed writes=" + lastPrimaryWrites + " (console mark " + consoleMark + ")");
        Thread.sleep(20_000);
        List<String> lines = restored.console().lines();
        assertTrue(lines.stream().noneMatch(l -> l.contains("CORRUPT")), "CORRUPT lines: " + lines);
        long lastCorrupt = lines.stream().map(DIRTIER::matcher).filter(Matcher::find)
                .mapToLong(m -> Long.parseLong(m.group(3))).max().orElse(-1);
        assertEquals(0, lastCorrupt, "dirtier corrupt counter after 20 s");
        long lines20s = lines.stream().filter(l -> DIRTIER.matcher(l).find()).count();
        assertTrue(lines20s >= 15, "dirtier lines in 20 s after restore: " + lines20s);
    }

    private static void report(List<EpochMetrics> metrics, long t0, long initialDone, long epochsIn10s, long frozen, long restored) {
        EpochMetrics initial = metrics.get(0);
        List<EpochMetrics> ckpts = metrics.subList(1, metrics.size());
        System.out.printf("colo: initial stream %d bytes in %.0f ms (receive %.0f ms, commit %.1f ms); %d checkpoints in 10 s%n",
                initial.wireBytes(), (initialDone - t0) / 1e6, initial.receiveNanos() / 1e6, initial.commitNanos() / 1e6, epochsIn10s);
        System.out.printf("colo: per checkpoint pages p50 %d, wire MB p50 %.2f; commit ms p50 %.2f p99 %.2f max %.2f;"
                        + " pause ms p50 %.2f p99 %.2f max %.2f; receive ms p50 %.2f (n=%d)%n",
                (long) pct(ckpts, m -> m.dataPages() + m.filledPages(), 50), pct(ckpts, m -> m.wireBytes(), 50) / 1e6,
                pct(ckpts, EpochMetrics::commitNanos, 50) / 1e6, pct(ckpts, EpochMetrics::commitNanos, 99) / 1e6,
                pct(ckpts, EpochMetrics::commitNanos, 100) / 1e6,
                pct(ckpts, EpochMetrics::pauseNanos, 50) / 1e6, pct(ckpts, EpochMetrics::pauseNanos, 99) / 1e6,
                pct(ckpts, EpochMetrics::pauseNanos, 100) / 1e6, pct(ckpts, EpochMetrics::receiveNanos, 50) / 1e6, ckpts.size());
        System.out.printf("colo: commit split ms p50: log+record %.2f, apply %.2f; p99: %.2f, %.2f%n",
                pct(ckpts, EpochMetrics::commitLogNanos, 50) / 1e6, pct(ckpts, EpochMetrics::commitApplyNanos, 50) / 1e6,
                pct(ckpts, EpochMetrics::commitLogNanos, 99) / 1e6, pct(ckpts, EpochMetrics::commitApplyNanos, 99) / 1e6);
        System.out.printf("colo: pauses > 30 ms: %d of %d (the compare checkpoint includes a 256 MiB pmemsave)%n",
                ckpts.stream().filter(m -> m.pauseNanos() > 30_000_000L).count(), ckpts.size());
        System.out.printf("colo: compared at epoch %d, restored epoch %d%n", frozen, restored);
    }

    private static double pct(List<EpochMetrics> ms, java.util.function.ToLongFunction<EpochMetrics> f, int p) {
        List<Long> v = new ArrayList<>(ms.stream().map(f::applyAsLong).toList());
        Collections.sort(v);
        if (v.isEmpty()) {
            return 0;
        }
        int i = (int) Math.min(v.size() - 1, Math.ceil(p / 100.0 * v.size()) - 1);
        return v.get(Math.max(0, i));
    }

    /** Number of 4 KiB pages that differ between the two files (up to the shorter length). */
    static int comparePages(Path a, Path b, List<String> firstDiffs) throws IOException {
        int diff = 0;
        try (RandomAccessFile fa = new RandomAccessFile(a.toFile(), "r"); RandomAccessFile fb = new RandomAccessFile(b.toFile(), "r")) {
            long len = Math.min(fa.length(), fb.length());
            byte[] pa = new byte[1 << 20];
            byte[] pb = new byte[1 << 20];
            for (long off = 0; off < len; off += pa.length) {
                fa.readFully(pa);
                fb.readFully(pb);
                for (int p = 0; p < pa.length; p += 4096) {
                    if (!Arrays.equals(pa, p, p + 4096, pb, p, p + 4096)) {
                        diff++;
                        if (firstDiffs.size() < 20) {
                            firstDiffs.add(String.format("0x%x", off + p));
                        }
                    }
                }
            }
        }
        return diff;
    }

    private static long lastWrites(List<String> lines) {
        for (int i = lines.size() - 1; i >= 0; i--) {
            Matcher m = DIRTIER.matcher(lines.get(i));
            if (m.find()) {
                return Long.parseLong(m.group(2));
            }
        }
        return -1;
    }

    private static long lastEpoch(List<EpochMetrics> metrics) {
        return metrics.isEmpty() ? -1 : metrics.get(metrics.size() - 1).epoch();
    }

    private static void awaitEpoch(List<EpochMetrics> metrics, long epoch, Duration timeout, BackupServer.Endpoint ep)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (lastEpoch(metrics) < epoch) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("epoch " + epoch + " not committed within " + timeout + "; session failure: " + ep.lastFailure());
            }
            Thread.sleep(20);
        }
    }

    private static void awaitSessionEnd(BackupServer.Endpoint ep, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (ep.sessionActive() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertTrue(!ep.sessionActive(), "session still active after the primary died");
    }

    private static void awaitIncoming(QmpClient qmp, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            JsonNode info = qmp.execute("query-migrate");
            String status = info.path("status").asText();
            if (status.equals("completed")) {
                return;
            }
            if (status.equals("failed")) {
                throw new AssertionError("restore failed: " + info);
            }
            Thread.sleep(10);
        }
        throw new AssertionError("restore did not complete within " + timeout);
    }
}

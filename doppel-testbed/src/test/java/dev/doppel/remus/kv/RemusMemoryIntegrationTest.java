package dev.doppel.remus.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.remus.primary.ProtectionOptions;
import dev.doppel.remus.testbed.KvClient;
import dev.doppel.remus.testbed.ProtectedKvService;
import dev.doppel.remus.testbed.RemusTestbed;
import dev.doppel.remus.testing.PatchedQemu;
import dev.doppel.vm.testing.TestVms;
import dev.doppel.vm.MemoryBackend;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup's memory equals the primary's RAM, page for page, at committed epochs of a protected guest
 * under network and disk load (the KV server). Compared while the primary is stopped at the end of the
 * checkpoint, waiting for VMSTATE_LOADED, and the backup has committed the epoch. A page that differs
 * is one that changed on the primary and never reached the backup's memory: the failover would resume
 * the guest with a stale page.
 */
@Tag("integration")
@Timeout(600)
class RemusMemoryIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(RemusMemoryIntegrationTest.class);
    private static final int PAGE = 4096;

    @TempDir Path tmp;

    /** @param lastCarried per differing page, the last committed epoch whose checkpoint carried it */
    record Comparison(long epoch, List<Long> differingPages, long pages, List<Long> lastCarried) {
    }

    @Test
    void backupMemoryEqualsThePrimaryRamAtCommittedEpochs() throws Exception {
        String name = TestVms.uniqueName("kvm");
        Path ram = Path.of("/dev/shm", name + "-primary.ram");
        List<Comparison> comparisons = new CopyOnWriteArrayList<>();
        try (RemusTestbed bed = RemusTestbed.create("m" + ProcessHandle.current().pid() % 10000, 130);
             ProtectedKvService kv = ProtectedKvService.boot(bed, name, tmp, PatchedQemu.launcher(), TestVms.guest(),
                     MemoryBackend.File.shared(ram))) {
            kv.startBackup(TestVms.launcher(), Duration.ofMillis(500));
            // A comparison keeps the primary stopped for a while: allow the pause.
            kv.protect(new ProtectionOptions(Duration.ofMillis(50), Duration.ofSeconds(10), Duration.ofSeconds(120), Duration.ZERO));
            kv.endpoint().store().trackPageEpochs();
            AtomicLong nextCompare = new AtomicLong(Long.MAX_VALUE);
            Object comparing = new Object();
            kv.onCommit(epoch -> {
                synchronized (comparing) {
                    if (epoch >= nextCompare.get()) {
                        nextCompare.set(epoch + 40);
                        try {
                            Comparison c = compare(epoch, ram, kv.endpoint().store().memoryFile());
                            List<Long> carried = new ArrayList<>();
                            for (long page : c.differingPages()) {
                                carried.add(kv.endpoint().store().lastEpochOfPage(0, page * PAGE));
                            }
                            comparisons.add(new Comparison(c.epoch(), c.differingPages(), c.pages(), carried));
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    }
                }
            });
            try (KvClient client = kv.client("m", 32)) {
                client.connect(Duration.ofSeconds(30));
                client.startPuts();
                assertTrue(client.awaitAcks(300, Duration.ofSeconds(60)) >= 300, "KV server too slow: " + client.connectionFailure());
                nextCompare.set(kv.protector().stats().checkpoints() + 5);
                // -Ddoppel.test.memorySeconds=N runs longer, to hunt for a rare lost page
                long end = System.nanoTime() + Duration.ofSeconds(Long.getLong("doppel.test.memorySeconds", 45)).toNanos();
                while (System.nanoTime() < end) {
                    Thread.sleep(1000);
                }
                // No comparison once protection is being stopped: leaving COLO resumes the guest before
                // the backup's last acknowledgement, so the last epoch's pages move under the comparison.
                nextCompare.set(Long.MAX_VALUE);
                synchronized (comparing) {
                    // a comparison in progress has ended
                }
                log.info("{} PUTs acknowledged, {} comparisons", client.acks().size(), comparisons.size());
            }
        } finally {
            Files.deleteIfExists(ram);
        }
        List<String> bad = new ArrayList<>();
        for (Comparison c : comparisons) {
            log.info("epoch {}: {} of {} pages differ {}, last carried in epochs {}", c.epoch(), c.differingPages().size(), c.pages(),
                    c.differingPages().stream().limit(20).map(p -> "0x" + Long.toHexString(p * PAGE)).toList(),
                    c.lastCarried().stream().limit(20).toList());
            if (!c.differingPages().isEmpty()) {
                bad.add("epoch " + c.epoch() + ": " + c.differingPages().size());
            }
        }
        assertTrue(comparisons.size() >= 5, "too few comparisons: " + comparisons.size());
        assertEquals(List.of(), bad, "pages that differ between the primary and the backup at committed epochs");
    }

    /** Pages (by index) whose contents differ between the two memory images. */
    private static Comparison compare(long epoch, Path primary, Path backup) throws IOException {
        try (FileChannel a = FileChannel.open(primary, StandardOpenOption.READ);
             FileChannel b = FileChannel.open(backup, StandardOpenOption.READ)) {
            long size = Math.min(a.size(), b.size());
            List<Long> differ = new ArrayList<>();
            for (long off = 0; off < size; off += 1L << 28) {
                long len = Math.min(1L << 28, size - off);
                MappedByteBuffer ma = a.map(FileChannel.MapMode.READ_ONLY, off, len);
                MappedByteBuffer mb = b.map(FileChannel.MapMode.READ_ONLY, off, len);
                for (int p = 0; p < len; p += PAGE) {
                    if (!ma.slice(p, PAGE).equals(mb.slice(p, PAGE))) {
                        differ.add((off + p) / PAGE);
                    }
                }
            }
            return new Comparison(epoch, differ, size / PAGE, List.of());
        }
    }
}

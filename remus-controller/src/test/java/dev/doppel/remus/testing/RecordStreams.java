package dev.doppel.remus.testing;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.qmp.QmpClient;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.colo.ColoSecondarySession;
import dev.doppel.remus.colo.EpochListener;
import dev.doppel.remus.colo.EpochMetrics;
import dev.doppel.remus.colo.ProtectedVm;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.testing.TestVms;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Records the streams the unit tests replay. Not part of a normal test run:
 * <pre>
 *   nice -n 10 mvn -o -B -pl remus-controller test -Dtest=RecordStreams \
 *       -Ddoppel.test.groups=record -Ddoppel.test.excludedGroups= -Dsurefire.failIfNoSpecifiedTests=false
 * </pre>
 * writes gzip'd files to {@code src/test/resources/streams/} (see the README there).
 */
@Tag("record")   // a tool, not a test: the default run excludes the "record" group (root pom)
class RecordStreams {
    private static final Path OUT = Path.of("src/test/resources/streams");
    private static final int KEEP_MAIN_PAGES = 300;

    @AutoClose
    TestVms vms = new TestVms();

    @Test
    void precopyWithIgnoreSharedOfDirtierGuest() throws Exception {
        VmSpec spec = vms.guestSpec("rec-precopy", "dirtier", Map.of("doppel.dirty_mb", "8", "doppel.dirty_rate", "2000"))
                .memoryMiB(128).guestAgent(false).build();
        VmProcess vm = vms.startReady(spec);
        vm.console().awaitLine(Pattern.compile("dirtier t=2 "), Duration.ofSeconds(60));
        byte[] full = migrateToFile(vm, true, "precopy");
        write(RecordedStreams.PRECOPY, StreamTrimmer.trimPrecopy(full, KEEP_MAIN_PAGES));
        System.out.println("precopy: recorded " + full.length + " bytes");
    }

    @Test
    void precopyOfPausedQ35() throws Exception {
        VmSpec spec = vms.guestSpec("rec-q35", "dirtier", Map.of()).machineType("pc-q35-10.0").memoryMiB(64)
                .guestAgent(false).startPaused(true).build();
        VmProcess vm = vms.start(spec);
        byte[] full = migrateToFile(vm, false, "q35");
        write(RecordedStreams.Q35, StreamTrimmer.trimPrecopy(full, KEEP_MAIN_PAGES));
        System.out.println("q35: recorded " + full.length + " bytes");
    }

    @Test
    void coloSessionOfPatchedPrimary() throws Exception {
        VmSpec spec = VmSpec.builder(TestVms.uniqueName("rec-colo"))
                .boot(TestVms.guest().boot(Map.of("doppel.run", "dirtier", "doppel.dirty_mb", "4", "doppel.dirty_rate", "300")))
                .memoryMiB(128).guestAgent(false).build();
        VmProcess primary = vms.own(PatchedQemu.launcher().start(spec));
        primary.console().awaitLine(Pattern.compile("dirtier t=2 "), Duration.ofSeconds(90));
        Path storeDir = Files.createTempDirectory(Path.of("/dev/shm"), "rec-colo-");
        CountingTee p2b = new CountingTee();
        CountingTee b2p = new CountingTee();
        int[] cut = new int[2];
        AtomicInteger epochs = new AtomicInteger();
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
             BackupStore store = BackupStore.open(storeDir, spec.name())) {
            CompletableFuture<Void> session = CompletableFuture.runAsync(() -> {
                try (Socket s = server.accept()) {
                    s.setTcpNoDelay(true);
                    OutputStream out = b2p.wrap(s.getOutputStream());
                    new ColoSecondarySession(ProtectedVm.named(spec.name()), store, new EpochListener() {
                        @Override
                        public void beforeRelease(long epoch) {
                            if (epoch == 3) {
                                // The primary waits for LOADED: nothing more is in flight.
                                cut[0] = p2b.size();
                                cut[1] = b2p.size() + 4;   // + the LOADED about to be sent
                            }
                        }

                        @Override
                        public void epochCommitted(EpochMetrics m) {
                            epochs.set((int) m.epoch());
                        }
                    }).run(p2b.wrap(s.getInputStream()), out);
                } catch (IOException e) {
                    // The session ends when the primary is killed below.
                    System.out.println("session ended: " + e);
                    e.printStackTrace(System.out);
                }
            });
            QmpClient qmp = primary.qmp();
            qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "x-colo", "state", true), Map.of("capability", "events", "state", true))));
            qmp.execute("migrate-set-parameters", Map.of("x-checkpoint-delay", 100));
            qmp.execute("migrate", Map.of("uri", "tcp:127.0.0.1:" + server.getLocalPort()));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (epochs.get() < 3 && System.nanoTime() < deadline && !session.isDone()) {
                Thread.sleep(50);
            }
            assertTrue(epochs.get() >= 3, "3 checkpoints within 60 s, got " + epochs.get() + "; migration: "
                    + qmp.execute("query-migrate"));
            primary.kill();
            session.get(10, TimeUnit.SECONDS);
        } finally {
            BackupStore.deleteAll(storeDir);
        }
        byte[] p2bBytes = java.util.Arrays.copyOf(p2b.bytes(), cut[0]);
        byte[] b2pBytes = java.util.Arrays.copyOf(b2p.bytes(), cut[1]);
        write(RecordedStreams.COLO_P2B, StreamTrimmer.trimColoSession(p2bBytes, KEEP_MAIN_PAGES));
        write(RecordedStreams.COLO_B2P, b2pBytes);
        System.out.println("colo: recorded " + p2bBytes.length + " bytes primary->backup, " + b2pBytes.length + " back");
    }

    private static byte[] migrateToFile(VmProcess vm, boolean ignoreShared, String tag) throws Exception {
        Path file = Files.createTempFile(Path.of("/dev/shm"), "rec-" + tag + "-", ".bin");
        try {
            QmpClient qmp = vm.qmp();
            qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "x-ignore-shared", "state", ignoreShared),
                    Map.of("capability", "events", "state", true))));
            qmp.execute("migrate", Map.of("uri", "file:" + file));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (true) {
                String status = qmp.execute("query-migrate").path("status").asText();
                if (status.equals("completed")) {
                    break;
                }
                if (status.equals("failed") || System.nanoTime() > deadline) {
                    throw new IllegalStateException("migration to file " + status);
                }
                Thread.sleep(100);
            }
            return Files.readAllBytes(file);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static void write(String name, byte[] data) throws IOException {
        Files.createDirectories(OUT);
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(OUT.resolve(name)))) {
            out.write(data);
        }
        System.out.println("wrote " + OUT.resolve(name) + ": " + data.length + " bytes before gzip");
    }
}

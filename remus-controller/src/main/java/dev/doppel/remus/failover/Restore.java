package dev.doppel.remus.failover;

import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.remus.backup.BackupStore;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * Starts a VM from a backup store's last committed checkpoint: a QEMU with the identical device
 * model whose RAM is the store's memory file ({@code share=on}: nothing is copied, the guest runs
 * on the committed pages) loads a small stream — the ROM blocks and the committed device state —
 * with {@code x-ignore-shared}, then runs.
 */
public final class Restore {
    private Restore() {
    }

    /** The restored VM and how long the restore took (QEMU start → guest running). */
    public record Restored(RestoredVm vm, long epoch, double millis) {
    }

    /**
     * Restores {@code snapshot} (taken from a sealed store, see {@code BackupServer.Endpoint#seal}).
     *
     * @param spec    the protected VM's spec (device model); memory backend and incoming flags are set here
     * @param workDir where the small restore stream is written for QEMU to load (deleted afterwards)
     */
    public static Restored start(VmLauncher launcher, VmSpec spec, BackupStore.RestoreSnapshot snapshot, Path workDir,
                                 Duration timeout) throws IOException {
        return start(launcher, spec, snapshot, workDir, timeout, dev.doppel.vm.VmProcess.StartOptions.defaults());
    }

    /**
     * As {@link #start(VmLauncher, VmSpec, BackupStore.RestoreSnapshot, Path, Duration)}, with the QEMU
     * process's start options ({@code detached()}: the restored VM outlives this JVM, as a host
     * daemon's VMs do).
     */
    public static Restored start(VmLauncher launcher, VmSpec spec, BackupStore.RestoreSnapshot snapshot, Path workDir,
                                 Duration timeout, dev.doppel.vm.VmProcess.StartOptions startOptions) throws IOException {
        long t0 = System.nanoTime();
        long epoch = snapshot.epoch();
        Path stream = workDir.resolve("restore-" + epoch + ".state");
        Files.write(stream, snapshot.stream());
        VmSpec restoreSpec = spec.toBuilder()
                .memory(MemoryBackend.File.shared(snapshot.memoryFile()))
                .incomingDefer(true).startPaused(true).build();
        VmProcess vm = launcher.start(restoreSpec, startOptions);
        try {
            load(vm.qmp(), "file:" + stream, timeout, spec.name());
            vm.qmp().execute("cont");
        } catch (RuntimeException | IOException e) {
            // What QEMU said is the cause when it exited during the load (e.g. a stream it refused);
            // read it before close() removes the run directory.
            String qemuSaid = vm.qemuLogTail();
            vm.close();
            throw new IOException("VM '" + spec.name() + "' (epoch " + epoch + "): restore failed: " + e.getMessage()
                    + (qemuSaid.isBlank() ? "" : "; QEMU said: " + qemuSaid), e);
        } finally {
            Files.deleteIfExists(stream);
        }
        return new Restored(new LaunchedVm(vm), epoch, (System.nanoTime() - t0) / 1e6);
    }

    private static void load(QmpClient qmp, String uri, Duration timeout, String vm) throws IOException {
        qmp.execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "x-ignore-shared", "state", true),
                Map.of("capability", "events", "state", true))));
        try (EventSubscription events = qmp.subscribe("MIGRATION")) {
            qmp.execute("migrate-incoming", Map.of("uri", uri));
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline) {
                QmpEvent e = events.poll(Duration.ofMillis(100));
                String status = e != null ? e.data().path("status").asText() : qmp.execute("query-migrate").path("status").asText();
                if (status.equals("completed")) {
                    return;
                }
                if (status.equals("failed")) {
                    throw new IOException("VM '" + vm + "': loading the checkpoint failed: "
                            + qmp.execute("query-migrate").path("error-desc").asText("?"));
                }
            }
        }
        throw new IOException("VM '" + vm + "': loading the checkpoint did not finish within " + timeout.toMillis() + " ms");
    }
}

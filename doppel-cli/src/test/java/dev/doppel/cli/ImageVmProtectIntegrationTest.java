package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.GuestDescriptor;
import dev.doppel.cli.bench.Psql;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import dev.doppel.vm.qga.QgaClient;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code doppel vm start --image} on the real guest disk (Debian 12 + PostgreSQL, built by
 * scripts/build-real-guest) and then {@code doppel protect} on it, unchanged: real CLI processes, real
 * QEMU (TCG), Debian's psql on the host as the client. One kill -9 of the primary: the backup's copy runs
 * the guest's PostgreSQL with every row the client saw committed, and its qemu-ga answers.
 */
@Tag("integration")
@Timeout(900)
class ImageVmProtectIntegrationTest {
    private static final Pattern CHECKPOINTING = Pattern.compile("PROTECTED\\s+checkpoints=[1-9]");
    private final String vm = "img" + ProcessHandle.current().pid();
    private final List<AutoCloseable> cleanup = new ArrayList<>();
    private Path work;

    @AfterEach
    void stopAll() throws Exception {
        for (int i = cleanup.size() - 1; i >= 0; i--) {
            cleanup.get(i).close();
        }
        for (String name : List.of(vm, vm + "-bk")) {
            if (Files.exists(VmRunDir.root().resolve("vms").resolve(name))) {
                try {
                    CliChild.run(Duration.ofSeconds(60), "vm", "stop", name);
                } catch (java.io.IOException e) {
                    System.err.println("cleanup: " + e.getMessage());
                }
            }
        }
        if (work != null) {
            HostCommand.run("rm", "-rf", work.toString());
        }
    }

    @Test
    void aUsersDiskImageBootsIsProtectedAndFailsOverWithItsDatabase() throws Exception {
        Path image = realGuestImage();
        work = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-img-");
        int pgPort = freePort();
        int backupPort = freePort();

        List<String> started = CliChild.run(Duration.ofSeconds(400), "vm", "start", vm, "--image", image.toString(), "--mem", "512M",
                "--colo", "--user-net", "--forward", "tcp:127.0.0.1:" + pgPort + "-:5432", "--accel", "tcg", "--wait-ready");
        assertTrue(started.stream().anyMatch(l -> l.contains("guest ready: guest agent answers (host name debian-pg)")), started.toString());
        VmRunDir dir = VmRunDir.of(vm);
        GuestDescriptor guest = GuestDescriptor.read(dir.guestFile());
        assertTrue(guest.diskBoot() && guest.qemuGuestAgent(), guest.toString());
        assertFalse(VmRecord.readFrom(dir).argv().contains("-kernel"), "booted by its own bootloader");
        assertTrue(Files.exists(DiskImageVm.overlayFor(vm)), "runs on an overlay");

        Psql.awaitReady(pgPort, Duration.ofSeconds(180));
        assertEquals("1", Psql.run(pgPort, "create table acked(x int primary key); insert into acked values (1); select count(*) from acked").strip());

        CliChild backup = CliChild.start("backup", "serve", "--listen", "127.0.0.1:" + backupPort,
                "--store", Files.createDirectories(work.resolve("store")).toString(), "--insecure");
        cleanup.add(backup);
        CliChild protect = CliChild.start("protect", vm, "--backup", "127.0.0.1:" + backupPort, "--insecure", "--interval", "100");
        cleanup.add(protect);
        protect.awaitLine(CHECKPOINTING, Duration.ofSeconds(400));

        // committed while protected: psql's answer is held until the backup has the epoch
        assertEquals("3", Psql.run(pgPort, "insert into acked values (2),(3); select count(*) from acked").strip());

        long qemuPid = VmRecord.readFrom(dir).pid();
        ProcessHandle.of(qemuPid).orElseThrow().destroyForcibly();
        backup.awaitLine("event=failover-done", Duration.ofSeconds(60));

        VmRunDir bk = VmRunDir.of(vm + "-bk");
        try (QgaClient qga = QgaClient.awaitAgent(vm + "-bk", bk.qgaSocket(), Duration.ofSeconds(60), w -> { })) {
            assertEquals("debian-pg", qga.hostName());
            QgaClient.ExecStatus count = qga.run(Duration.ofSeconds(60), "/usr/sbin/runuser", "-u", "postgres", "--",
                    "psql", "-d", "doppel", "-Atc", "select count(*) from acked");
            assertTrue(count.succeeded(), "psql on the backup's copy: " + count.stderr());
            assertEquals("3", count.stdout().strip(), "every row the client saw committed is there");
        }
    }

    static Path realGuestImage() {
        return dev.doppel.vm.RealGuestDisk.fromSystemProperty();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}

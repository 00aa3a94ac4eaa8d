package dev.doppel.vm.qga;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.vm.Accelerator;
import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.GuestDescriptor;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.QemuBinary;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Boots the real guest disk (Debian 12 + PostgreSQL 15, scripts/build-real-guest) the way
 * {@code doppel vm start --image} does — SeaBIOS and the disk's own extlinux, no -kernel, a qcow2
 * overlay — under TCG, then talks to the distribution's own qemu-guest-agent through {@link QgaClient}
 * and to PostgreSQL from the host with Debian's stock {@code psql} over the VM's NIC (user-mode
 * networking with a host port forward). The oracles are software nobody here wrote: psql's answers,
 * qemu-ga's answers.
 */
@Tag("integration")
@Timeout(400)
class RealGuestIntegrationTest {
    private static final String MAC = "52:54:00:00:00:01";

    @TempDir Path tmp;

    @Test
    void bootsFromItsOwnDiskAndServesPostgresToTheStockClient() throws Exception {
        Path image = RealGuestImage.locate();
        FileTime imageMtime = Files.getLastModifiedTime(image);
        Path overlay = DiskImageVm.createOverlay(image, tmp.resolve("overlay.qcow2"));
        int port = freePort();
        VmSpec spec = DiskImageVm.spec("realpg", overlay, "qcow2").memoryMiB(1024).vcpus(2)
                .nic("net0", MAC, new NicSpec.Netdev.User(List.of("tcp:127.0.0.1:" + port + "-:5432"))).build();
        GuestDescriptor descriptor = GuestDescriptor.of(spec);
        assertTrue(descriptor.diskBoot() && descriptor.qemuGuestAgent(), "descriptor: " + descriptor);

        long t0 = System.nanoTime();
        try (VmProcess vm = VmProcess.start(spec, QemuBinary.stock(), Accelerator.TCG)) {
            double pgReadyS = awaitPsql(port, vm, t0, Duration.ofSeconds(240));
            try (QgaClient qga = QgaClient.awaitAgent("realpg", vm.runDir().qgaSocket(), Duration.ofSeconds(120),
                    w -> System.out.println("waiting for qemu-ga: " + w.toSeconds() + " s"))) {
                double agentS = (System.nanoTime() - t0) / 1e9;
                System.out.printf("REAL-GUEST-BOOT accel=tcg postgres_ready_s=%.1f agent_ready_s=%.1f%n", pgReadyS, agentS);

                assertEquals("debian-pg", qga.hostName());

                // PostgreSQL from inside, through guest-exec (base64 output decoded)
                QgaClient.ExecStatus ready = qga.run(Duration.ofSeconds(30), "/usr/bin/pg_isready");
                assertTrue(ready.succeeded(), "pg_isready: " + ready.stdout() + ready.stderr());
                QgaClient.ExecStatus select = qga.run(Duration.ofSeconds(60), "/usr/sbin/runuser",
                        "-u", "postgres", "--", "psql", "-Atc", "select 1");
                assertTrue(select.succeeded(), "psql in the guest: " + select.stderr());
                assertEquals("1", select.stdout().strip());

                // a failing program: exit code and stderr come back
                QgaClient.ExecStatus fails = qga.run(Duration.ofSeconds(30), "/bin/sh", "-c", "echo oops >&2; exit 3");
                assertEquals(3, fails.exitCode());
                assertEquals("oops", fails.stderr().strip());

                // the NIC: DHCP from QEMU's user network, and a static address set by hand is kept
                QgaClient.NetworkInterface eth0 = nic(qga.networkInterfaces(), "eth0");
                assertEquals(MAC, eth0.mac());
                assertTrue(eth0.addresses().stream().anyMatch(a -> a.address().equals("10.0.2.15")), "eth0: " + eth0);
                assertTrue(qga.run(Duration.ofSeconds(30), "/sbin/ip", "addr", "add", "10.77.0.5/24", "dev", "eth0").succeeded());
                QgaClient.NetworkInterface again = nic(qga.networkInterfaces(), "eth0");
                assertTrue(again.addresses().stream().anyMatch(a -> a.address().equals("10.77.0.5") && a.prefix() == 24), "eth0: " + again);

                // the clock: set to a time far from now, read back with date(1)
                Instant target = Instant.parse("2031-01-02T03:04:05Z");
                qga.setTime(target);
                long guestEpoch = Long.parseLong(qga.run(Duration.ofSeconds(30), "/bin/date", "+%s").stdout().strip());
                assertTrue(Math.abs(guestEpoch - target.getEpochSecond()) < 30, "guest clock " + guestEpoch);
                qga.setTime(Instant.now());
            }
            // the host's stock client again, after all that: a table, rows, a count
            assertEquals("3", psql(port, "create table t(x int); insert into t values (1),(2),(3); select count(*) from t").strip());
        }
        assertEquals(imageMtime, Files.getLastModifiedTime(image), "the image itself must not be written");
    }

    private static QgaClient.NetworkInterface nic(List<QgaClient.NetworkInterface> all, String name) {
        return all.stream().filter(n -> n.name().equals(name)).findFirst()
                .orElseThrow(() -> new AssertionError("no " + name + " in " + all));
    }

    /** Seconds from QEMU's start until the host's psql gets an answer to {@code select 1}. */
    private static double awaitPsql(int port, VmProcess vm, long t0, Duration timeout) throws Exception {
        long end = t0 + timeout.toNanos();
        long nextReport = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < end) {
            assertTrue(vm.isAlive(), "QEMU died: " + vm.qemuLogTail());
            try {
                if (psql(port, "select 1").strip().equals("1")) {
                    return (System.nanoTime() - t0) / 1e9;
                }
            } catch (IOException notYet) {
                // connection refused or reset while the guest boots
            }
            if (System.nanoTime() > nextReport) {
                System.out.printf("booting: %.0f s%n", (System.nanoTime() - t0) / 1e9);
                nextReport += 10_000_000_000L;
            }
            Thread.sleep(500);
        }
        throw new AssertionError("PostgreSQL did not answer psql within " + timeout + "; console: "
                + String.join("\n", tail(Files.readAllLines(vm.runDir().consoleLog(), StandardCharsets.ISO_8859_1), 30)));
    }

    /** Runs Debian's psql against the VM's forwarded port; IOException if it fails. */
    private static String psql(int port, String sql) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("psql", "-h", "127.0.0.1", "-p", Integer.toString(port),
                "-U", "doppel", "-d", "doppel", "-v", "ON_ERROR_STOP=1", "-Atqc", sql).redirectErrorStream(true);
        pb.environment().put("PGPASSWORD", "doppel");
        pb.environment().put("PGCONNECT_TIMEOUT", "5");
        Process p = pb.start();
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("psql hung");
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IOException("psql exit " + p.exitValue() + ": " + out);
        }
        return out;
    }

    private static List<String> tail(List<String> lines, int n) {
        return lines.subList(Math.max(0, lines.size() - n), lines.size());
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}

package dev.doppel.daemon.testbed;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.testbed.KvClient;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Two daemons as two hosts (primary A, backup B; their own run directories), a protected KV guest
 * on A with a client PUTting through a port forward, and both daemons killed with SIGKILL and
 * restarted in turn: the guest must run on in the same QEMU, protection must come back by itself,
 * no failover may happen, and every acknowledged PUT must be readable at the end. Both daemons'
 * event streams are recorded by {@code curl} (a stock SSE client) to count failovers.
 */
public final class DaemonRestartRound implements AutoCloseable {
    private final Path work;
    private final Path logs;
    private final Consumer<String> progress;
    private final List<Process> streams = new ArrayList<>();
    private DaemonProcess a;
    private DaemonProcess b;

    /**
     * What happened.
     *
     * @param primaryReprotectMs  A restarted → the VM protected again (to B)
     * @param backupReprotectMs   B restarted → the VM protected again (to B's new store)
     * @param failovers           failover events on either stream (must be 0)
     * @param qemuKept            the guest's QEMU is the same process from start to end
     */
    public record Outcome(long qemuPid, boolean qemuKept, long primaryReprotectMs, long backupReprotectMs, long failovers,
                          int acked, KvClient.Verification verification, long checkpointsAfter) {
        public boolean survived() {
            return qemuKept && failovers == 0 && verification.ok() && checkpointsAfter > 0;
        }
    }

    /** @param work removed on close; {@code logs} (the daemons' output, both event streams) is kept */
    public DaemonRestartRound(Path work, Path logs, Consumer<String> progress) {
        this.work = work;
        this.logs = logs;
        this.progress = progress;
    }

    public Outcome run(String vm) throws IOException, InterruptedException {
        a = DaemonProcess.start("a", work.resolve("host-a"), logs);
        b = DaemonProcess.start("b", work.resolve("host-b"), logs);
        Files.createDirectories(logs);
        Path eventsA = logs.resolve("events-a-" + vm + ".txt");
        Path eventsB = logs.resolve("events-b-" + vm + ".txt");
        streams.add(sse(a, eventsA));
        streams.add(sse(b, eventsB));
        int backupPort = freePort();
        int kvPort = freePort();
        b.call("POST", "/api/v1/backup", "{\"listen\":\"127.0.0.1:" + backupPort + "\",\"detectionMs\":500,\"store\":\""
                + work.resolve("host-b/stores") + "\"}");
        Path disk = work.resolve("kv-data.qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M");
        JsonNode started = a.call("POST", "/api/v1/vms", "{\"name\":\"" + vm + "\",\"memMiB\":256,\"colo\":true,\"userNet\":true,"
                + "\"forwards\":[\"tcp:127.0.0.1:" + kvPort + "-:7000\"],\"run\":\"kv\",\"disk\":\"" + disk + "\","
                + "\"params\":{\"doppel.ip\":\"10.0.2.15/24\",\"doppel.kv_port\":\"7000\",\"doppel.kv_disk\":\"1\"}}");
        long qemuPid = started.path("pid").asLong();
        progress.accept("VM " + vm + " started on host A (QEMU pid " + qemuPid + "); waiting for its KV server");
        awaitConsole(a, vm, "kvserver listening", Duration.ofSeconds(180));
        a.call("POST", "/api/v1/vms/" + vm + "/protection", "{\"backup\":\"127.0.0.1:" + backupPort + "\",\"intervalMs\":100}");
        progress.accept("protected to host B");
        InetSocketAddress kv = new InetSocketAddress("127.0.0.1", kvPort);
        try (KvClient client = new KvClient(HostSockets.LOCAL, kv, "r", 16)) {
            client.connect(Duration.ofSeconds(30));
            client.startPuts();
            awaitAcks(client, 200, "before the restarts");

            progress.accept("kill -9 of daemon A (the primary's)");
            a.kill9();
            Thread.sleep(3000);   // longer than the backup's detection (500 ms) and the lease session (2 s)
            long t0 = System.nanoTime();
            a.startAgain();
            long checkpoints = awaitProtected(a, vm, 0, Duration.ofSeconds(120));
            long primaryMs = (System.nanoTime() - t0) / 1_000_000;
            progress.accept("daemon A back; VM protected again " + primaryMs + " ms after its start (" + checkpoints + " checkpoints)");
            awaitAcks(client, client.acks().size() + 200, "after daemon A's restart");

            progress.accept("kill -9 of daemon B (the backup's)");
            long lostBefore = a.call("GET", "/api/v1/vms/" + vm + "/protection", null).path("lostBackups").asLong();
            b.kill9();
            Thread.sleep(3000);
            t0 = System.nanoTime();
            b.startAgain();
            checkpoints = awaitProtected(a, vm, lostBefore + 1, Duration.ofSeconds(120));
            long backupMs = (System.nanoTime() - t0) / 1_000_000;
            progress.accept("daemon B back; VM protected again " + backupMs + " ms after its start");
            awaitAcks(client, client.acks().size() + 200, "after daemon B's restart");
            client.stopPuts();
            List<KvClient.Ack> acked = client.acks();
            KvClient.Verification v = KvClient.verify(HostSockets.LOCAL, kv, acked, Duration.ofSeconds(60));
            JsonNode vmNow = a.call("GET", "/api/v1/vms/" + vm, null);
            boolean kept = vmNow.path("pid").asLong() == qemuPid && vmNow.path("state").asText().equals("running")
                    && ProcessHandle.of(qemuPid).map(ProcessHandle::isAlive).orElse(false);
            long failovers = countFailovers(eventsA) + countFailovers(eventsB);
            return new Outcome(qemuPid, kept, primaryMs, backupMs, failovers, acked.size(), v, checkpoints);
        }
    }

    /** Host A's daemon (for the caller's own checks). */
    public DaemonProcess primary() {
        return a;
    }

    public DaemonProcess backup() {
        return b;
    }

    /** Waits until the VM is PROTECTED with a checkpoint committed (and, if asked, after that many lost backups). */
    private static long awaitProtected(DaemonProcess d, String vm, long lostAtLeast, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            var ans = d.answer("GET", "/api/v1/vms/" + vm + "/protection", null);
            last = ans.body();
            if (ans.ok()) {
                JsonNode s = new com.fasterxml.jackson.databind.ObjectMapper().readTree(ans.body());
                if (s.path("state").asText().equals("PROTECTED") && s.path("checkpoints").asLong() > 0
                        && s.path("lostBackups").asLong() >= lostAtLeast) {
                    return s.path("checkpoints").asLong();
                }
            }
            Thread.sleep(100);
        }
        throw new IOException("VM '" + vm + "' not protected again within " + timeout.toSeconds() + " s; last status: " + last);
    }

    private void awaitAcks(KvClient client, int n, String when) throws IOException, InterruptedException {
        if (client.awaitAcks(n, Duration.ofSeconds(120)) < n) {
            throw new IOException("KV client stalled " + when + ": " + client.acks().size() + " of " + n + " acknowledged, "
                    + client.connectionFailure());
        }
    }

    private static void awaitConsole(DaemonProcess d, String vm, String text, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (d.call("GET", "/api/v1/vms/" + vm + "/console?lines=400", null).path("lines").toString().contains(text)) {
                return;
            }
            Thread.sleep(500);
        }
        throw new IOException("VM '" + vm + "': no console line '" + text + "' within " + timeout.toSeconds() + " s");
    }

    /** curl as the SSE client of a daemon's event stream (reconnecting across the daemon's restarts). */
    private static Process sse(DaemonProcess d, Path out) throws IOException {
        return new ProcessBuilder("bash", "-c", "while true; do curl -sN --unix-socket " + d.socket()
                + " http://doppel/api/v1/events?types=failover,protected,backup-lost,primary-lost,daemon-started,protection-resumed;"
                + " sleep 0.2; done").redirectOutput(ProcessBuilder.Redirect.appendTo(out.toFile()))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
    }

    private static long countFailovers(Path events) throws IOException {
        return Files.exists(events) ? Files.readAllLines(events).stream().filter(l -> l.equals("event: failover")).count() : 0;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** Stops the VM and both daemons (the backup service first), the event streams, and removes the files. */
    @Override
    public void close() throws InterruptedException {
        for (Process p : streams) {
            p.descendants().forEach(ProcessHandle::destroy);
            p.destroy();
            p.waitFor();
        }
        try {
            if (a != null) {
                for (JsonNode v : a.call("GET", "/api/v1/vms", null)) {
                    a.answer("DELETE", "/api/v1/vms/" + v.path("name").asText(), null);
                }
            }
            if (b != null) {
                for (JsonNode v : b.call("GET", "/api/v1/vms", null)) {
                    b.answer("DELETE", "/api/v1/vms/" + v.path("name").asText(), null);
                }
                b.answer("DELETE", "/api/v1/backup", null);
            }
        } catch (IOException e) {
            progress.accept("cleanup through the API failed: " + e.getMessage());
        } finally {
            if (a != null) {
                a.close();
            }
            if (b != null) {
                b.close();
            }
            dev.doppel.vm.FileTrees.deleteRecursively(work);
        }
    }
}

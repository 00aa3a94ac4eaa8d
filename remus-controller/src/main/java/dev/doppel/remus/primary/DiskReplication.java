package dev.doppel.remus.primary;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.EventSubscription;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpEvent;
import dev.doppel.qmp.QmpException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Synchronous replication of a protected VM's disks to the backup's NBD exports, on the primary.
 *
 * <p>Per disk: an {@code nbd} block node for the backup's export and a {@code blockdev-mirror} job
 * from the guest's disk node to it with {@code copy-mode=write-blocking}. The job first copies the
 * whole disk while the guest runs (the initial synchronisation, progress from {@code
 * query-block-jobs}); once READY every guest write completes only after the backup has it, and the
 * job stays READY through the COLO migration and every checkpoint. One round trip per write; the
 * guest's flushes are not forwarded (the backup makes each epoch durable when it commits it).
 *
 * <p>Why not QEMU's COLO {@code replication} driver under a {@code quorum}, as its docs show: it
 * fails every write until COLO has started and quorum hides the failure, so writes of the initial
 * synchronisation never reached the backup (measured, FINDINGS). A failed target write aborts the
 * mirror job while the guest's own write succeeds: the backup then lacks a write and is no longer a
 * valid failover target, which {@link #onFailure} reports so that protection ends.
 *
 * <p>A backup disk that hangs (frozen host) blocks the checkpoint's VM stop, which holds QEMU's main
 * lock, so in-band QMP hangs too; only an out-of-band {@code yank} of the NBD node frees it
 * ({@link #yank()}, needs OOB negotiated). The NBD node has {@code reconnect-delay=0}: a lost
 * connection fails writes at once instead of pausing the guest.
 */
public final class DiskReplication implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DiskReplication.class);
    private static final Duration QMP_TIMEOUT = Duration.ofSeconds(5);

    private final String vm;
    private final QmpClient qmp;
    private final List<String> disks = new ArrayList<>();
    private final Consumer<QmpEvent> listener = this::onEvent;
    private volatile Consumer<String> onFailure = why -> { };
    private volatile boolean stopping;
    /** The QEMU object holding the TLS credentials of the NBD connections, or null (plain TCP). */
    private String tlsObject;

    private DiskReplication(String vm, QmpClient qmp) {
        this.vm = vm;
        this.qmp = qmp;
    }

    /** The id of the credentials object in QEMU (one per protection attempt). */
    static final String TLS_OBJECT = "doppel-repl-tls";
    private static final Duration PROBE_TIMEOUT = Duration.ofSeconds(2);

    static String targetNode(String disk) {
        return "doppel-repl-" + disk;
    }

    static String jobId(String disk) {
        return "doppel-repl-" + disk;
    }

    /** The guest-visible size of each disk node, for the backup to create matching images. */
    public static Map<String, Long> diskSizes(QmpClient qmp, List<String> nodes) {
        Map<String, Long> sizes = new LinkedHashMap<>();
        JsonNode all = qmp.execute("query-named-block-nodes", Map.of("flat", true));
        for (String node : nodes) {
            for (JsonNode n : all) {
                if (n.path("node-name").asText().equals(node)) {
                    sizes.put(node, n.path("image").path("virtual-size").asLong());
                }
            }
            if (!sizes.containsKey(node)) {
                throw new ProtectionException(qmp.vmName(), 0, "the VM has no block node '" + node + "'");
            }
        }
        return sizes;
    }

    /**
     * Connects each disk to its export and mirrors it until every job is READY (the backup holds a
     * full copy and every later write is synchronous), reporting progress about once a second.
     */
    public static DiskReplication start(String vm, QmpClient qmp, Map<String, InetSocketAddress> exports, Duration timeout,
                                        dev.doppel.hostnet.HostSockets host, dev.doppel.tls.PeerTls tls, Consumer<String> progress) {
        DiskReplication r = new DiskReplication(vm, qmp);
        qmp.addEventListener(r.listener);
        try (EventSubscription ready = qmp.subscribe("BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")) {
            if (tls.secure()) {
                // QEMU's NBD client does the TLS itself (GnuTLS) from the host's PEM files: the same
                // certificate as the Java links, and the export's address checked against the backup's.
                qmp.execute("object-add", Map.of("qom-type", "tls-creds-x509", "id", TLS_OBJECT, "endpoint", "client",
                        "dir", tls.directory().toString(), "verify-peer", true), QMP_TIMEOUT);
                r.tlsObject = TLS_OBJECT;
            }
            for (var e : exports.entrySet()) {
                probe(vm, host, e.getKey(), e.getValue());
                r.attach(e.getKey(), e.getValue());
            }
            r.awaitReady(ready, timeout, progress);
        } catch (RuntimeException e) {
            r.close();
            throw e instanceof ProtectionException pe ? pe
                    : new ProtectionException(vm, 0, "disk replication could not start: " + e.getMessage(), e);
        }
        return r;
    }

    /**
     * QEMU's NBD client connects inside {@code blockdev-add}, in its main loop, with the kernel's connect
     * timeout: an export that does not answer (a cut link, a dropped SYN) stalls the whole QEMU — guest
     * and monitor — for about two minutes. A TCP connect from the VM's host with a short timeout first
     * turns that into a refused protection attempt (retried by the re-protect loop); what remains is the
     * milliseconds between the probe and QEMU's own connect.
     */
    private static void probe(String vm, dev.doppel.hostnet.HostSockets host, String disk, InetSocketAddress export) {
        // A TCP connect only: the export's TLS starts later, inside the NBD negotiation (STARTTLS), so
        // the export sees a client that left before negotiating, which changes nothing there.
        try (java.net.Socket s = host.connect(export, PROBE_TIMEOUT)) {
            log.debug("vm={} disk={} export {} answers", vm, disk, s.getRemoteSocketAddress());
        } catch (java.io.IOException e) {
            throw new ProtectionException(vm, 0, "the backup's NBD export for disk " + disk + " at " + export.getHostString() + ":"
                    + export.getPort() + " does not answer within " + PROBE_TIMEOUT.toMillis() + " ms (" + e.getMessage()
                    + "); not handing it to QEMU, whose connect would stall the VM");
        }
    }

    private void attach(String disk, InetSocketAddress export) {
        String target = targetNode(disk);
        Map<String, Object> node = new LinkedHashMap<>(Map.of("driver", "nbd", "node-name", target,
                "server", Map.of("type", "inet", "host", export.getHostString(), "port", Integer.toString(export.getPort())),
                "export", disk, "reconnect-delay", 0));
        if (tlsObject != null) {
            node.put("tls-creds", tlsObject);
        }
        qmp.execute("blockdev-add", node, QMP_TIMEOUT);
        disks.add(disk);
        qmp.execute("blockdev-mirror", Map.of("job-id", jobId(disk), "device", disk, "target", target,
                "sync", "full", "copy-mode", "write-blocking", "auto-dismiss", true), QMP_TIMEOUT);
        log.info("vm={} epoch=0 event=disk-mirror-started disk={} export={}:{}", vm, disk, export.getHostString(), export.getPort());
    }

    private void awaitReady(EventSubscription events, Duration timeout, Consumer<String> progress) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long lastReport = 0;
        List<String> pending = new ArrayList<>(disks);
        while (!pending.isEmpty()) {
            if (System.nanoTime() > deadline) {
                throw new ProtectionException(vm, 0, "the initial copy of disks " + pending + " did not finish within "
                        + timeout.toSeconds() + " s");
            }
            QmpEvent e = events.poll(Duration.ofMillis(200));
            if (e != null) {
                String device = e.data().path("device").asText();
                String disk = device.startsWith("doppel-repl-") ? device.substring("doppel-repl-".length()) : null;
                if (disk != null && pending.contains(disk)) {
                    if (e.name().equals("BLOCK_JOB_READY")) {
                        pending.remove(disk);
                        progress.accept("disk " + disk + " of " + vm + ": initial copy done, writes now synchronous");
                    } else {
                        throw new ProtectionException(vm, 0, "the initial copy of disk " + disk + " ended: "
                                + e.data().path("error").asText(e.name()));
                    }
                }
            }
            if (System.nanoTime() - lastReport > 1_000_000_000L) {
                for (JsonNode job : qmp.execute("query-block-jobs", null, QMP_TIMEOUT)) {
                    String id = job.path("device").asText();
                    if (id.startsWith("doppel-repl-") && !job.path("ready").asBoolean()) {
                        progress.accept(String.format("disk %s of %s: %d of %d MiB copied", id.substring(12), vm,
                                job.path("offset").asLong() >> 20, job.path("len").asLong() >> 20));
                    }
                }
                lastReport = System.nanoTime();
            }
        }
    }

    /** Called (on an event thread) when a disk stops replicating while protection should go on. */
    public void onFailure(Consumer<String> handler) {
        this.onFailure = handler;
    }

    private void onEvent(QmpEvent e) {
        if (stopping || !(e.name().equals("BLOCK_JOB_COMPLETED") || e.name().equals("BLOCK_JOB_CANCELLED")
                || e.name().equals("BLOCK_JOB_ERROR"))) {
            return;
        }
        String device = e.data().path("device").asText();
        if (device.startsWith("doppel-repl-") && disks.contains(device.substring(12))) {
            onFailure.accept("disk replication of " + device.substring(12) + " stopped (" + e.name()
                    + (e.data().has("error") ? ": " + e.data().path("error").asText() : "") + ")");
        }
    }

    /**
     * Breaks every request hanging on a backup disk (out of band: works while the main loop is
     * blocked by a checkpoint waiting for that request). The hung writes fail, the jobs abort.
     */
    public void yank() {
        stopping = true;
        for (String disk : disks) {
            try {
                long t0 = System.nanoTime();
                qmp.executeOob("yank", Map.of("instances", List.of(Map.of("type", "block-node", "node-name", targetNode(disk)))),
                        Duration.ofSeconds(2));
                log.info("vm={} event=disk-yanked disk={} ms={}", vm, disk, String.format("%.1f", (System.nanoTime() - t0) / 1e6));
            } catch (QmpException e) {
                log.warn("vm={} event=disk-yank-failed disk={} cause=\"{}\"", vm, disk, e.getMessage());
            }
        }
    }

    /** Ends replication: cancels the jobs (the guest keeps its disk) and removes the NBD nodes. */
    @Override
    public void close() {
        stopping = true;
        qmp.removeEventListener(listener);
        for (String disk : disks) {
            try (EventSubscription end = qmp.subscribe(e -> (e.name().equals("BLOCK_JOB_COMPLETED") || e.name().equals("BLOCK_JOB_CANCELLED"))
                    && e.data().path("device").asText().equals(jobId(disk)))) {
                boolean running = false;
                for (JsonNode job : qmp.execute("query-block-jobs", null, QMP_TIMEOUT)) {
                    running |= job.path("device").asText().equals(jobId(disk));
                }
                if (running) {
                    qmp.execute("block-job-cancel", Map.of("device", jobId(disk), "force", true), QMP_TIMEOUT);
                    end.poll(Duration.ofSeconds(5));
                }
                qmp.execute("blockdev-del", Map.of("node-name", targetNode(disk)), QMP_TIMEOUT);
            } catch (QmpException e) {
                log.warn("vm={} event=disk-replication-cleanup-failed disk={} cause=\"{}\"", vm, disk, e.getMessage());
            }
        }
        disks.clear();
        if (tlsObject != null) {
            try {
                qmp.execute("object-del", Map.of("id", tlsObject), QMP_TIMEOUT);
            } catch (QmpException e) {
                log.warn("vm={} event=disk-replication-cleanup-failed object={} cause=\"{}\"", vm, tlsObject, e.getMessage());
            }
            tlsObject = null;
        }
    }
}

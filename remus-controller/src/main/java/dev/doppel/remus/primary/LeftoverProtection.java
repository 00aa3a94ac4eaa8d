package dev.doppel.remus.primary;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The protection a previous controller left in a running QEMU when it died (kill -9, crash): COLO
 * still set up, output filters holding frames, disk mirror jobs to the old backup's NBD exports.
 * A controller that re-attaches finds it here and removes it — only after the record says the VM
 * runs unprotected, since removing a {@code filter-buffer} flushes the frames it holds.
 */
final class LeftoverProtection {
    private static final Logger log = LoggerFactory.getLogger(LeftoverProtection.class);
    private static final Duration QMP_TIMEOUT = Duration.ofSeconds(5);
    private static final String PREFIX = "doppel-";

    final boolean colo;
    final List<String> filters;
    final List<String> mirrorJobs;
    final List<String> nbdNodes;
    final boolean tlsObject;

    private LeftoverProtection(boolean colo, List<String> filters, List<String> mirrorJobs, List<String> nbdNodes, boolean tlsObject) {
        this.colo = colo;
        this.filters = filters;
        this.mirrorJobs = mirrorJobs;
        this.nbdNodes = nbdNodes;
        this.tlsObject = tlsObject;
    }

    /** What of a protection is set up in this QEMU now. */
    static LeftoverProtection find(QmpClient qmp) {
        boolean colo = qmp.execute("query-colo-status").path("mode").asText().equals("primary")
                || !qmp.execute("query-migrate").path("status").asText("none").matches("none|completed|failed|cancelled");
        List<String> filters = new ArrayList<>();
        boolean tls = false;
        for (JsonNode o : qmp.execute("qom-list", Map.of("path", "/objects"))) {
            String name = o.path("name").asText();
            if (name.startsWith(OutputHold.FILTER_PREFIX)) {
                filters.add(name);
            } else if (name.equals(DiskReplication.TLS_OBJECT)) {
                tls = true;
            }
        }
        List<String> jobs = new ArrayList<>();
        for (JsonNode job : qmp.execute("query-block-jobs")) {
            if (job.path("device").asText().startsWith(PREFIX)) {
                jobs.add(job.path("device").asText());
            }
        }
        List<String> nodes = new ArrayList<>();
        for (JsonNode n : qmp.execute("query-named-block-nodes", Map.of("flat", true))) {
            String name = n.path("node-name").asText();
            if (name.startsWith(PREFIX) && n.path("drv").asText().equals("nbd")) {
                nodes.add(name);
            }
        }
        return new LeftoverProtection(colo, filters, jobs, nodes, tls);
    }

    boolean present() {
        return colo || !filters.isEmpty() || !mirrorJobs.isEmpty() || !nbdNodes.isEmpty() || tlsObject;
    }

    /** Cancels the mirrors (the guest keeps its disks), removes their nodes and the held-output filters. */
    void remove(QmpClient qmp, String vm) {
        for (String job : mirrorJobs) {
            quietly(vm, "block-job-cancel " + job, () -> qmp.execute("block-job-cancel", Map.of("device", job, "force", true), QMP_TIMEOUT));
        }
        for (String node : nbdNodes) {
            // A cancelled mirror lets go of its target a moment later.
            for (int attempt = 0; attempt < 50; attempt++) {
                try {
                    qmp.execute("blockdev-del", Map.of("node-name", node), QMP_TIMEOUT);
                    break;
                } catch (QmpException e) {
                    sleep(20);
                }
            }
        }
        if (tlsObject) {
            quietly(vm, "object-del " + DiskReplication.TLS_OBJECT,
                    () -> qmp.execute("object-del", Map.of("id", DiskReplication.TLS_OBJECT), QMP_TIMEOUT));
        }
        for (String f : filters) {
            quietly(vm, "object-del " + f, () -> qmp.execute("object-del", Map.of("id", f), QMP_TIMEOUT));
        }
        log.warn("vm={} event=leftover-protection-removed colo={} filters={} mirrors={} nbd_nodes={}", vm, colo, filters, mirrorJobs,
                nbdNodes);
    }

    @Override
    public String toString() {
        return "COLO " + (colo ? "set up" : "off") + ", held-output filters " + filters + ", disk mirrors " + mirrorJobs;
    }

    private static void quietly(String vm, String what, Runnable step) {
        try {
            step.run();
        } catch (QmpException e) {
            log.warn("vm={} event=leftover-cleanup-failed step=\"{}\" cause=\"{}\"", vm, what, e.getMessage());
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

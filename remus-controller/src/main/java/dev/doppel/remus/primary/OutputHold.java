package dev.doppel.remus.primary;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Holds the protected guest's network output until the backup has the epoch that produced it
 * (Remus's output commit), with one QEMU {@code filter-buffer} per NIC backend.
 *
 * <p>The filter sits on the netdev's receive queue ({@code queue=rx}: packets the guest's NIC sends
 * to the netdev), so it holds every frame the guest emits — IPv4, ARP, IPv6 alike — in order, and
 * none of the traffic towards the guest. {@link #release()} flushes it by switching it off and on
 * again ({@code status}): QEMU's {@code filter_buffer_status_changed} flushes the queue when the
 * filter goes off. The caller releases only while the guest is stopped after the backup committed
 * the epoch (the {@link CheckpointRelay} does it just before passing VMSTATE_LOADED on), so the queue
 * holds exactly the committed epoch's output; released at any other moment it would leak packets
 * of an epoch the backup does not have (measured: FINDINGS).
 *
 * <p>QEMU insists on a non-zero release {@code interval}; its timer runs on the virtual clock and is
 * re-armed by every switch-on, so with the largest interval (71 minutes of guest run time) it never
 * fires while checkpoints happen. The queue drops packets beyond 10,000 per epoch and packets the
 * tap cannot take when flushed: like a switch under load, never early.
 */
public final class OutputHold implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OutputHold.class);
    private static final long NEVER_US = 0xFFFF_FFFFL;
    private static final Duration QMP_TIMEOUT = Duration.ofSeconds(2);

    private final String vm;
    private final QmpClient qmp;
    /** Every filter this class adds is named so; a re-attaching controller finds leftovers by it. */
    static final String FILTER_PREFIX = "doppel-hold-";
    private final List<String> filters = new ArrayList<>();
    private long releases;

    private OutputHold(String vm, QmpClient qmp) {
        this.vm = vm;
        this.qmp = qmp;
    }

    /** Starts holding the output of each netdev (by id) of the VM. */
    public static OutputHold start(String vm, QmpClient qmp, List<String> netdevs) {
        OutputHold h = new OutputHold(vm, qmp);
        try {
            for (String netdev : netdevs) {
                String id = FILTER_PREFIX + netdev;
                qmp.execute("object-add", Map.of("qom-type", "filter-buffer", "id", id, "netdev", netdev,
                        "queue", "rx", "interval", NEVER_US, "status", "on"), QMP_TIMEOUT);
                h.filters.add(id);
            }
        } catch (QmpException e) {
            h.close();
            throw new ProtectionException(vm, 0, "cannot hold the network output: " + e.getMessage(), e);
        }
        log.info("vm={} event=output-held netdevs={}", vm, netdevs);
        return h;
    }

    /** Sends everything held so far (the guest must be stopped in a committed checkpoint). */
    public synchronized void release() {
        // Both commands of every filter are sent at once: QEMU runs them in order, so "on" cannot
        // overtake "off", and the guest's pause grows by one round trip instead of two per filter.
        List<CompletableFuture<JsonNode>> replies = new ArrayList<>();
        for (String id : filters) {
            replies.add(qmp.executeAsync("qom-set", Map.of("path", id, "property", "status", "value", "off")));
            replies.add(qmp.executeAsync("qom-set", Map.of("path", id, "property", "status", "value", "on")));
        }
        try {
            CompletableFuture.allOf(replies.toArray(CompletableFuture[]::new)).get(QMP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ProtectionException(vm, releases, "interrupted while releasing the output", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new ProtectionException(vm, releases, "releasing the held output failed: " + e, e);
        }
        releases++;
    }

    public synchronized long releases() {
        return releases;
    }

    /**
     * Stops holding: removing a filter flushes it. Only when the primary is the VM's one truth again
     * (the backup was told to stand down, or protection ended).
     */
    @Override
    public synchronized void close() {
        for (String id : filters) {
            try {
                qmp.execute("object-del", Map.of("id", id), QMP_TIMEOUT);
            } catch (QmpException e) {
                log.warn("vm={} event=output-hold-remove-failed filter={} cause=\"{}\"", vm, id, e.getMessage());
            }
        }
        filters.clear();
    }
}

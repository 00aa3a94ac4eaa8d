package dev.doppel.daemon.events;

import java.util.Map;

/**
 * One thing that happened on this host, as the event stream and the logs tell it.
 *
 * @param id    position in this daemon's stream (SSE {@code id:}), from 1
 * @param type  checkpoint, protected, backup-lost, primary-lost, failover, failover-refused, vm-started,
 *              vm-stopped, vm-adopted, fork, clone-exited, clone-independent, backup-epoch, daemon-started,
 *              daemon-stopping (docs/daemon.md lists them all)
 * @param vm    the VM concerned (null for daemon-wide events)
 * @param epoch the checkpoint epoch concerned, or -1
 * @param cause why, for losses and refusals (null otherwise)
 * @param timeMillis wall clock when it happened
 * @param data  event-specific figures (pause, dirty pages, clone names ...)
 */
public record DaemonEvent(long id, String type, String vm, long epoch, String cause, long timeMillis, Map<String, Object> data) {
    public DaemonEvent {
        data = data == null ? Map.of() : Map.copyOf(data);
    }
}

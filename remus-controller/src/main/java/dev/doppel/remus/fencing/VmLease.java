package dev.doppel.remus.fencing;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.framework.state.ConnectionStateListener;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One holder's right to run one protected VM: an ephemeral ZooKeeper node ({@code /doppel/vms/<vm>/lease})
 * that exists exactly as long as the holder's session, and whose creation zxid is the holder's
 * fencing token. Whoever holds it is the only one who may make a copy of the VM live or let its
 * output out without a backup's commit; the {@link OwnershipRecord} is changed only by compare-and-set.
 *
 * <p>A holder whose session is lost (the ensemble expired it, or it was cut off for longer than the
 * session timeout) is told through {@link #onLost}: it must stop acting on the VM at once, because a
 * backup may be taking it over. Every method that changes the record first checks that the record
 * still names this holder and token ({@link FencingException.Fenced} otherwise).
 */
public final class VmLease implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VmLease.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Coordinator coordinator;
    private final String vm;
    private final String holder;
    private final long token;
    private final long sessionId;
    private final List<Consumer<String>> lostListeners = new CopyOnWriteArrayList<>();
    private final ConnectionStateListener stateListener = this::stateChanged;
    private volatile String lostReason;
    private volatile boolean released;

    private VmLease(Coordinator coordinator, String vm, String holder, long token, long sessionId) {
        this.coordinator = coordinator;
        this.vm = vm;
        this.holder = holder;
        this.token = token;
        this.sessionId = sessionId;
    }

    static String leasePath(String vm) {
        return "/doppel/vms/" + vm + "/lease";
    }

    static String recordPath(String vm) {
        return "/doppel/vms/" + vm + "/record";
    }

    /** What stops a wait for the lease early: the record says waiting is pointless (e.g. this store is stale). */
    @FunctionalInterface
    public interface GiveUp {
        /** @return why to stop waiting, or null to keep waiting */
        String check(OwnershipRecord current);
    }

    /**
     * Takes the VM's lease, waiting up to {@code wait} for the current holder's to go (its holder
     * released it, or its session expired).
     *
     * @throws FencingException.Fenced when {@code giveUp} said this holder must not take it
     * @throws FencingException        when it is still held after {@code wait}, or ZooKeeper failed
     */
    public static VmLease acquire(Coordinator c, String vm, String holder, Duration wait, GiveUp giveUp)
            throws FencingException {
        checkName(vm);
        CuratorFramework zk = c.client();
        long deadline = System.nanoTime() + wait.toNanos();
        byte[] me = json(Map.of("holder", holder));
        try {
            while (true) {
                long session = zk.getZookeeperClient().getZooKeeper().getSessionId();
                try {
                    zk.create().creatingParentContainersIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(leasePath(vm), me);
                } catch (KeeperException.NodeExistsException held) {
                    // Someone's (or ours, from a create that was retried after it had succeeded): see below.
                }
                CountDownLatch changed = new CountDownLatch(1);
                Stat st = zk.checkExists().usingWatcher((org.apache.zookeeper.Watcher) e -> changed.countDown())
                        .forPath(leasePath(vm));
                if (st == null) {
                    continue;   // released just now: try again
                }
                if (st.getEphemeralOwner() == session) {
                    VmLease lease = new VmLease(c, vm, holder, st.getCzxid(), session);
                    zk.getConnectionStateListenable().addListener(lease.stateListener);
                    log.info("vm={} event=lease-acquired holder={} token={}", vm, holder, lease.token);
                    return lease;
                }
                String why = giveUp == null ? null : giveUp.check(readRecord(zk, vm));
                if (why != null) {
                    throw new FencingException.Fenced(vm, "not taking the lease: " + why);
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new FencingException(vm, "the lease is held by " + holderOf(zk, vm) + " (its session is alive) after "
                            + wait.toMillis() + " ms");
                }
                // Wake on the lease's deletion, or every 100 ms to look at the record again.
                changed.await(Math.min(TimeUnit.NANOSECONDS.toMillis(left) + 1, 100), TimeUnit.MILLISECONDS);
            }
        } catch (FencingException e) {
            throw e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new FencingException(vm, "interrupted while taking the lease", e);
        } catch (Exception e) {
            throw new FencingException(vm, "taking the lease failed: " + e.getMessage(), e);
        }
    }

    public String vm() {
        return vm;
    }

    public String holder() {
        return holder;
    }

    /** The fencing token: grows with every acquisition of this VM's lease. */
    public long token() {
        return token;
    }

    /** Null while held; otherwise why it is not (lost session, released). */
    public String lostReason() {
        return released ? "released" : lostReason;
    }

    public boolean held() {
        return lostReason() == null;
    }

    /** Called once (on a Curator thread) when the session that holds the lease is gone. */
    public void onLost(Consumer<String> listener) {
        lostListeners.add(listener);
        String why = lostReason;
        if (why != null) {
            listener.accept(why);
        }
    }

    private void stateChanged(CuratorFramework client, ConnectionState s) {
        if (s == ConnectionState.LOST && lostReason == null && !released) {
            lostReason = "the coordination session expired (cut off for longer than "
                    + coordinator.sessionTimeout().toMillis() + " ms)";
            log.error("vm={} event=lease-lost holder={} token={} cause=\"{}\"", vm, holder, token, lostReason);
            lostListeners.forEach(l -> l.accept(lostReason));
        } else if (s == ConnectionState.SUSPENDED) {
            log.warn("vm={} event=coordinator-suspended holder={} token={}", vm, holder, token);
        }
    }

    // ------------------------------------------------------------------------------------------ the record

    /** The current record, or null if the VM has none yet. */
    public OwnershipRecord record() throws FencingException {
        try {
            return readRecord(coordinator.client(), vm);
        } catch (FencingException e) {
            throw e;
        } catch (Exception e) {
            throw new FencingException(vm, "reading the ownership record failed: " + e.getMessage(), e);
        }
    }

    /** The VM's record as the coordination service has it now, read by any session (null: no record yet). */
    public static OwnershipRecord recordOf(Coordinator c, String vm) throws FencingException {
        try {
            return readRecord(c.client(), vm);
        } catch (FencingException e) {
            throw e;
        } catch (Exception e) {
            throw new FencingException(vm, "reading the ownership record failed: " + e.getMessage(), e);
        }
    }

    /**
     * A primary's claim: the record names no owner yet, or this holder (a new token of the same holder,
     * e.g. after a controller restart). A record that names someone else means the VM was taken over:
     * this copy is stale and must not run.
     */
    public OwnershipRecord claimAsPrimary() throws FencingException {
        return update(current -> {
            if (current != null && !current.owner().equals(holder)) {
                throw new FencingException.Fenced(vm, "owned by " + current.owner() + " (token " + current.token()
                        + "): this copy was taken over and must not run");
            }
            return new OwnershipRecord(holder, token, current == null ? null : current.backup());
        }, "claim");
    }

    /**
     * Names the backup store that may take the VM over ({@code null}: none — the VM is about to run
     * unprotected and its output will leave without a backup's commit). Must succeed before that output
     * is released: a failure means someone else owns the VM now.
     */
    public OwnershipRecord setBackup(String store) throws FencingException {
        return update(current -> {
            requireOwner(current);
            return current.withBackup(store);
        }, store == null ? "unprotected" : "backup " + store);
    }

    /**
     * A backup's takeover: the record must name {@code store} as the backup (otherwise the primary went
     * on without it, or chose another, and this store is stale); the record then names this holder.
     */
    public OwnershipRecord takeOver(String store) throws FencingException {
        return update(current -> {
            if (current == null || !Objects.equals(current.backup(), store)) {
                throw new FencingException.Fenced(vm, "the ownership record names backup "
                        + (current == null ? "(no record)" : current.backup()) + ", not " + store + ": this store is stale");
            }
            return new OwnershipRecord(holder, token, null);
        }, "take-over from " + store);
    }

    private void requireOwner(OwnershipRecord current) throws FencingException {
        if (current == null || !current.owner().equals(holder) || current.token() != token) {
            throw new FencingException.Fenced(vm, "the record names " + (current == null ? "no owner"
                    : current.owner() + " with token " + current.token()) + ", not " + holder + " with token " + token);
        }
    }

    @FunctionalInterface
    private interface Change {
        OwnershipRecord apply(OwnershipRecord current) throws FencingException;
    }

    /** Compare-and-set of the record, retried while another writer got in between. */
    private OwnershipRecord update(Change change, String what) throws FencingException {
        if (!held()) {
            throw new FencingException.Fenced(vm, "lease not held (" + lostReason() + "), cannot " + what);
        }
        CuratorFramework zk = coordinator.client();
        String path = recordPath(vm);
        for (int attempt = 0; attempt < 20; attempt++) {
            try {
                Stat st = new Stat();
                OwnershipRecord current;
                try {
                    current = OwnershipRecord.parse(vm, zk.getData().storingStatIn(st).forPath(path));
                } catch (KeeperException.NoNodeException none) {
                    current = null;
                }
                OwnershipRecord next = change.apply(current);
                // Fail fast when the lease is gone. Exclusion itself comes from the compare-and-set below:
                // a takeover and this write cannot both succeed on the same record version.
                Stat lease = zk.checkExists().forPath(leasePath(vm));
                if (lease == null || lease.getEphemeralOwner() != sessionId || lease.getCzxid() != token) {
                    throw new FencingException.Fenced(vm, "the lease node is no longer this holder's; cannot " + what);
                }
                if (current == null) {
                    zk.create().creatingParentContainersIfNeeded().forPath(path, next.toBytes());
                } else {
                    zk.setData().withVersion(st.getVersion()).forPath(path, next.toBytes());
                }
                log.info("vm={} event=ownership-{} holder={} token={} record={}", vm, what.split(" ")[0], holder, token, next);
                return next;
            } catch (KeeperException.BadVersionException | KeeperException.NodeExistsException
                     | KeeperException.NoNodeException raced) {
                // Another writer (or a lease change) got in between: read again and decide again.
            } catch (FencingException e) {
                throw e;
            } catch (Exception e) {
                throw new FencingException(vm, "updating the ownership record (" + what + ") failed: " + e.getMessage(), e);
            }
        }
        throw new FencingException(vm, "the ownership record kept changing under " + what);
    }

    private static OwnershipRecord readRecord(CuratorFramework zk, String vm) throws Exception {
        try {
            return OwnershipRecord.parse(vm, zk.getData().forPath(recordPath(vm)));
        } catch (KeeperException.NoNodeException e) {
            return null;
        }
    }

    private static String holderOf(CuratorFramework zk, String vm) {
        try {
            return MAPPER.readTree(zk.getData().forPath(leasePath(vm))).path("holder").asText("?");
        } catch (Exception e) {
            return "?";
        }
    }

    private static byte[] json(Object o) {
        try {
            return MAPPER.writeValueAsBytes(o);
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void checkName(String vm) {
        if (!vm.matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")) {
            throw new IllegalArgumentException("VM name '" + vm + "' cannot name a coordination node");
        }
    }

    /** Gives the lease back (the VM's QEMU is confirmed dead, or protection ends with the VM stopped). */
    @Override
    public void close() {
        if (released) {
            return;
        }
        released = true;
        coordinator.client().getConnectionStateListenable().removeListener(stateListener);
        if (lostReason != null) {
            return;
        }
        try {
            Stat st = coordinator.client().checkExists().forPath(leasePath(vm));
            if (st != null && st.getEphemeralOwner() == sessionId) {
                coordinator.client().delete().withVersion(st.getVersion()).forPath(leasePath(vm));
                log.info("vm={} event=lease-released holder={} token={}", vm, holder, token);
            }
        } catch (Exception e) {
            log.warn("vm={} event=lease-release-failed holder={} cause=\"{}\" (it ends with the session)", vm, holder, e.getMessage());
        }
    }
}

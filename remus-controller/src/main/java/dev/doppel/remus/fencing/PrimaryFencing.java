package dev.doppel.remus.fencing;

import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary's side of fencing for one VM: its lease, and the QEMU process it must stop when it may
 * no longer run the VM.
 *
 * <p>The rules the protector follows (see {@code docs/fencing.md}):
 * <ul>
 *   <li>before it starts replicating to a backup store, the record names that store
 *       ({@link #protectWith}); only that store can ever take the VM over;</li>
 *   <li>before it lets held output out without a backup's commit (backup lost, protection ended),
 *       the record names no backup ({@link #goUnprotected}); if that fails, someone else may own the
 *       VM, so the held output is never released: the QEMU is killed instead ({@link #fence});</li>
 *   <li>when the lease is lost while a backup could take over, the QEMU is killed at once;</li>
 *   <li>"primary down" is reported, and the lease given back, only once the QEMU process is
 *       confirmed dead ({@link #confirmDead}), never because a QMP connection ended.</li>
 * </ul>
 */
public final class PrimaryFencing implements PrimaryFence {
    private static final Logger log = LoggerFactory.getLogger(PrimaryFencing.class);

    private final Coordinator coordinator;
    private final String vm;
    private final String holder;
    private final ProcessHandle qemu;
    private volatile VmLease lease;
    private volatile boolean backupNamed;
    private volatile String namedStore;
    /**
     * Stores this primary went on without: they lack the epochs it ran unprotected, so none of them may
     * ever be named again (a new protection needs a new store).
     */
    private final java.util.Set<String> abandoned = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private volatile String fencedBecause;

    private PrimaryFencing(Coordinator coordinator, String vm, String holder, ProcessHandle qemu, VmLease lease) {
        this.coordinator = coordinator;
        this.vm = vm;
        this.holder = holder;
        this.qemu = qemu;
        this.lease = lease;
        watch(lease);
    }

    /**
     * Takes the VM's lease and claims it as primary. Refused when another holder's lease is alive, or
     * when the record names another owner (the VM was taken over: this copy is stale).
     */
    public static PrimaryFencing claim(Coordinator coordinator, String vm, String holder, ProcessHandle qemu, Duration wait)
            throws FencingException {
        VmLease lease = VmLease.acquire(coordinator, vm, holder, wait, null);
        try {
            lease.claimAsPrimary();
        } catch (FencingException e) {
            lease.close();
            throw e;
        }
        return new PrimaryFencing(coordinator, vm, holder, qemu, lease);
    }

    private void watch(VmLease l) {
        l.onLost(why -> {
            if (backupNamed) {
                fence("lease lost while backup store could take over: " + why);
            } else {
                log.warn("vm={} event=lease-lost-unprotected cause=\"{}\" action=\"no backup can take over; the lease is taken "
                        + "again before the next protection\"", vm, why);
            }
        });
    }

    public VmLease lease() {
        return lease;
    }

    @Override
    public long token() {
        return lease.token();
    }

    /** Null, or why this primary killed its QEMU. */
    @Override
    public String fencedBecause() {
        return fencedBecause;
    }

    /** Names {@code store} as the backup that may take the VM over; retakes a lost lease first. */
    @Override
    public void protectWith(String store) throws FencingException {
        if (abandoned.contains(store)) {
            throw new FencingException(vm, "backup store " + store + " was left behind when the VM went on unprotected; "
                    + "protection needs a new store");
        }
        VmLease l = lease;
        if (!l.held()) {
            l = VmLease.acquire(coordinator, vm, holder, Duration.ZERO, null);
            l.claimAsPrimary();
            lease = l;
            watch(l);
        }
        backupNamed = true;
        namedStore = store;
        try {
            l.setBackup(store);
        } catch (FencingException e) {
            fence("naming backup " + store + " failed: " + e.getMessage());
            throw e;
        }
    }

    /**
     * Must succeed before held output leaves without a backup's commit. On failure the QEMU has been
     * killed and the output must not be released.
     */
    @Override
    public boolean goUnprotected(String why) {
        if (ProcessDeath.gone(qemu)) {
            return true;   // a dead QEMU holds no output: nothing can leave, nothing to record
        }
        try {
            lease.setBackup(null);
            backupNamed = false;
            if (namedStore != null) {
                abandoned.add(namedStore);
            }
            return true;
        } catch (FencingException e) {
            fence("could not record that the VM runs unprotected (" + why + "): " + e.getMessage());
            return false;
        }
    }

    /**
     * The VM's owner stopped it (its manager said so, e.g. libvirt's {@code stopped/destroyed}): the record
     * stops naming a backup, so that no backup resumes a VM its owner meant to stop. Unlike {@link
     * #goUnprotected} this writes the record also when the QEMU is already gone: that is exactly when it is
     * asked. False when the record could not be written (the backup may then take the VM over).
     */
    public boolean recordStoppedByOwner(String why) {
        try {
            lease.setBackup(null);
            backupNamed = false;
            if (namedStore != null) {
                abandoned.add(namedStore);
            }
            log.warn("vm={} event=stopped-by-owner token={} cause=\"{}\" action=\"the record names no backup: no failover\"", vm,
                    lease.token(), why);
            return true;
        } catch (FencingException e) {
            log.error("vm={} event=stopped-by-owner-unrecorded cause=\"{}\" error=\"{}\"", vm, why, e.getMessage());
            return false;
        }
    }

    /** Kills the QEMU: the held output dies with it. */
    public void fence(String why) {
        if (fencedBecause == null) {
            fencedBecause = why;
        }
        log.error("vm={} event=self-fenced pid={} token={} cause=\"{}\" action=\"SIGKILL the primary QEMU; held output is dropped\"",
                vm, qemu.pid(), lease.token(), why);
        qemu.destroyForcibly();
    }

    /** Waits up to {@code wait} for the QEMU process to be gone ({@link ProcessDeath}). */
    @Override
    public boolean confirmDead(Duration wait) {
        return ProcessDeath.await(qemu, wait);
    }

    /** Gives the lease back (only once the QEMU is confirmed dead, or protection ended cleanly). */
    @Override
    public void close() {
        lease.close();
    }
}

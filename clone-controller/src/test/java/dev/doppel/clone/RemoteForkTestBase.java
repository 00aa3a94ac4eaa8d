package dev.doppel.clone;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * What every remote-fork test owns: a fork fixture (the controller and its VMs) and the other
 * hosts. Closed after each test, controller first (it stops the QEMUs inside the hosts), pass or fail.
 */
abstract class RemoteForkTestBase {
    @TempDir Path tmp;
    ForkFixture fx;
    RemoteHosts hosts;

    /**
     * A fresh fixture, {@code hostCount} other hosts, and an idle parent with a data disk whose
     * {@code /tmp/before} says "before" (so a clone shows it carries the parent's state).
     */
    ForkableVm idleParentAndHosts(String name, int hostCount) throws Exception {
        fx = new ForkFixture(tmp, ForkFixture.options(tmp));
        hosts = new RemoteHosts(hostCount);
        ForkableVm parent = fx.startIdle(name, fx.dataDisk(name));
        ForkFixture.sh(parent, "echo before > /tmp/before");
        return parent;
    }

    @AfterEach
    void cleanUp() throws Exception {
        try {
            if (fx != null) {
                fx.close();
            }
        } finally {
            fx = null;
            if (hosts != null) {
                hosts.close();
            }
            hosts = null;
        }
    }

    /** From MIGRATION events: in-band query-migrate can hang while a paused clone's vCPU holds the BQL. */
    static void awaitMigrationStatus(RemoteFork f, ForkableVm vm, String status, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        String last = "";
        while (System.nanoTime() < deadline) {
            last = f.migrationStatus(vm.name());
            if (last.equals(status)) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError(vm.name() + ": migration status " + last + ", not " + status + " after " + seconds + " s");
    }

    static void awaitStatus(RemoteFork f, ForkableVm vm, RemoteFork.CloneStatus status, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (f.status(vm.name()) == status) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError(vm.name() + ": " + f.status(vm.name()) + ", not " + status + " after " + seconds + " s");
    }
}

package dev.doppel.remus.failover;

import dev.doppel.vm.VmProcess;

/** A restored VM that Doppel's launcher started: its {@link VmProcess} (console, run directory, QMP). */
public record LaunchedVm(VmProcess process) implements RestoredVm {
    @Override
    public String name() {
        return process.name();
    }

    @Override
    public long pid() {
        return process.pid();
    }

    @Override
    public boolean isAlive() {
        return process.isAlive();
    }

    @Override
    public String describe() {
        return "pid " + process.pid();
    }

    @Override
    public void releaseMonitor() {
        process.releaseQmp();
    }

    @Override
    public void close() {
        process.close();
    }
}

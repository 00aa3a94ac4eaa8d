package dev.doppel.remus.service;

import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.GuestDescriptor;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;

/** A VM that Doppel's launcher started ({@code vm start}, the daemon): everything is in its run directory. */
public final class RunDirVm implements PrimaryVm {
    private final String name;
    private final VmRunDir dir;
    private final VmRecord record;
    private final GuestDescriptor guest;

    private RunDirVm(String name, VmRunDir dir, VmRecord record, GuestDescriptor guest) {
        this.name = name;
        this.dir = dir;
        this.record = record;
        this.guest = guest;
    }

    /** The running VM {@code name} of this host's run directories; fails when it does not run. */
    public static RunDirVm of(String name) throws IOException {
        VmRunDir dir = VmRunDir.of(name);
        VmRecord rec = VmRecord.readFrom(dir);
        if (!rec.alive()) {
            throw new IllegalStateException("VM '" + name + "' is not running");
        }
        return new RunDirVm(name, dir, rec, GuestDescriptor.read(dir.guestFile()));
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long qemuPid() {
        return record.pid();
    }

    @Override
    public Path stateDir() {
        return dir.path();
    }

    @Override
    public QmpClient connectQmp() throws IOException {
        return QmpClient.connectUnix(dir.qmpSocket(), name, Duration.ofSeconds(5));
    }

    @Override
    public GuestDescriptor descriptor() {
        return guest;
    }
}

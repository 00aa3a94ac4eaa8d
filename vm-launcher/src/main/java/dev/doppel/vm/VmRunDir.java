package dev.doppel.vm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * The private directory of one QEMU process: its QMP, serial and agent sockets, the console log and
 * QEMU's own stderr log. Mode 0700, so the sockets inside are reachable only by the owner whatever
 * QEMU's umask made of them.
 */
public record VmRunDir(Path path) {
    /** Root of all run directories: {@code $DOPPEL_RUN_DIR}, else /run/doppel (root) or the temp dir. */
    public static Path root() {
        String env = System.getenv("DOPPEL_RUN_DIR");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        Path run = Path.of("/run");
        if (Files.isWritable(run)) {
            return run.resolve("doppel");
        }
        return Path.of(System.getProperty("java.io.tmpdir"), "doppel-" + System.getProperty("user.name"));
    }

    /**
     * Creates {@code <root>/vms/<name>}; fails if a running VM of that name has it. The directory of
     * a VM whose QEMU is gone (killed, or its owner died without cleaning up) is stale and reused.
     */
    public static VmRunDir create(String vmName) {
        Path vms = root().resolve("vms");
        try {
            Files.createDirectories(vms);
            Path dir = vms.resolve(vmName);
            removeIfStale(new VmRunDir(dir));
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            return new VmRunDir(dir);
        } catch (java.nio.file.FileAlreadyExistsException e) {
            throw new IllegalStateException("VM '" + vmName + "' already exists (" + vms.resolve(vmName)
                    + "); stop it first or remove the stale directory", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create run directory for VM '" + vmName + "'", e);
        }
    }

    private static void removeIfStale(VmRunDir dir) {
        if (!Files.isDirectory(dir.path())) {
            return;
        }
        boolean alive;
        try {
            alive = Files.exists(dir.specFile()) && VmRecord.readFrom(dir).alive();
        } catch (UncheckedIOException e) {
            alive = false;
        }
        if (!alive) {
            org.slf4j.LoggerFactory.getLogger(VmRunDir.class).warn("vm={} event=stale-run-dir-removed path={}",
                    dir.path().getFileName(), dir.path());
            dir.delete();
        }
    }

    /** Every VM run directory on this host that has a VM record, by name. */
    public static java.util.List<VmRunDir> all() {
        Path vms = root().resolve("vms");
        if (!Files.isDirectory(vms)) {
            return java.util.List.of();
        }
        try (java.util.stream.Stream<Path> dirs = Files.list(vms)) {
            return dirs.sorted().map(VmRunDir::new).filter(d -> Files.exists(d.specFile())).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + vms, e);
        }
    }

    /** Every VM run directory on this host, also those whose VM record is not written yet (or never was). */
    public static java.util.List<VmRunDir> allDirectories() {
        Path vms = root().resolve("vms");
        if (!Files.isDirectory(vms)) {
            return java.util.List.of();
        }
        try (java.util.stream.Stream<Path> dirs = Files.list(vms)) {
            return dirs.filter(Files::isDirectory).sorted().map(VmRunDir::new).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + vms, e);
        }
    }

    /**
     * The QEMU processes that use this directory: the recorded one, and any whose command line names
     * the directory's QMP socket (a QEMU whose starter died before it wrote the record).
     */
    public java.util.List<ProcessHandle> qemuProcesses() {
        String socket = qmpSocket().toString();
        return ProcessHandle.allProcesses().filter(h -> h.info().arguments()
                .map(args -> java.util.Arrays.stream(args).anyMatch(a -> a.contains(socket))).orElse(false)).toList();
    }

    public static VmRunDir of(String vmName) {
        return new VmRunDir(root().resolve("vms").resolve(vmName));
    }

    public Path qmpSocket() { return path.resolve("qmp.sock"); }
    public Path serialSocket() { return path.resolve("serial.sock"); }
    public Path consoleLog() { return path.resolve("console.log"); }
    public Path agentSocket() { return path.resolve("agent.sock"); }
    /** The standard QEMU guest agent's port ({@code org.qemu.guest_agent.0}); see {@code qga.QgaClient}. */
    public Path qgaSocket() { return path.resolve("qga.sock"); }
    public Path qemuLog() { return path.resolve("qemu.log"); }
    public Path pidFile() { return path.resolve("qemu.pid"); }
    public Path specFile() { return path.resolve("vm.json"); }
    /** The guest's device model, for hosts that must rebuild it (a Remus backup). */
    public Path guestFile() { return path.resolve("guest.json"); }
    /** Written every second by {@code doppel protect}: what {@code doppel status} shows. */
    public Path protectionFile() { return path.resolve("protection.json"); }

    /** Removes the directory and everything in it; missing is fine. */
    public void delete() {
        FileTrees.deleteRecursively(path);
    }
}

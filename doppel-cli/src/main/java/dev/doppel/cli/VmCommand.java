package dev.doppel.cli;

import dev.doppel.vm.GuestImage;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import dev.doppel.vm.VmSpec;
import dev.doppel.qmp.QmpClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code doppel vm start|stop|list|console}: VMs that live on after the command returns. */
@Command(name = "vm", description = "Start, stop, list VMs and read their consoles.",
        subcommands = {VmCommand.Start.class, VmCommand.Stop.class, VmCommand.ListVms.class, VmCommand.Console.class})
public final class VmCommand {

    @Command(name = "start", description = "Boot Doppel's guest in the background.")
    static final class Start implements Callable<Integer> {
        @Parameters(index = "0", description = "VM name") String name;
        @Option(names = "--mem", defaultValue = "256", description = "RAM in MiB (default ${DEFAULT-VALUE})") long memMiB;
        @Option(names = "--run", defaultValue = "ticker", description = "guest workload: ticker, dirtier, kv, none (default ${DEFAULT-VALUE})") String run;
        @Option(names = "--param", description = "extra guest parameter KEY=VALUE (doppel.*)") Map<String, String> params = new LinkedHashMap<>();
        @Option(names = "--mem-file", description = "back RAM by this file (share=on), e.g. on /dev/shm") Path memFile;
        @Option(names = "--disk", description = "qcow2 data disk image") Path disk;
        @Option(names = "--user-net", description = "attach a NIC on QEMU user networking") boolean userNet;
        @Option(names = "--wait-ready", description = "wait until the guest prints DOPPEL-READY") boolean waitReady;
        @Option(names = "--colo", description = "run on the patched QEMU that can be a COLO primary (for doppel protect)") boolean colo;
        @Mixin AccelOption accel;

        @Override
        public Integer call() throws Exception {
            VmLauncher launcher = VmLauncher.create(accel.forced());
            if (colo) {
                launcher = new VmLauncher(dev.doppel.vm.QemuBinary.atPrefix(PatchedQemuPrefix.find()), launcher.accelerator());
            }
            VmSpec.Builder spec = VmLauncher.guestSpec(name, GuestImage.locate(), run, params).memoryMiB(memMiB);
            if (memFile != null) {
                spec.memory(MemoryBackend.File.shared(memFile));
            }
            if (disk != null) {
                spec.disk("disk0", disk, "qcow2", false);
            }
            if (userNet) {
                spec.nic("net0", "52:54:00:00:00:01", new NicSpec.Netdev.User());
            }
            VmSpec built = spec.build();
            VmProcess vm = launcher.start(built, VmProcess.StartOptions.detached());
            dev.doppel.vm.GuestDescriptor.of(built).write(vm.runDir().guestFile());
            // The CLI exits; the VM stays. Close only our QMP connection and console tailer.
            vm.qmp().close();
            vm.console().close();
            System.out.printf("started VM %s pid=%d accel=%s rundir=%s%n", name, vm.pid(), launcher.accelerator(), vm.runDir().path());
            if (waitReady) {
                var line = new dev.doppel.vm.ConsoleLog(name, vm.runDir().consoleLog())
                        .awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
                System.out.println("guest ready (console line " + line.index() + ")");
            }
            return 0;
        }
    }

    @Command(name = "stop", description = "Stop a VM (QMP quit, SIGKILL after a grace period).")
    static final class Stop implements Callable<Integer> {
        @Parameters(index = "0", description = "VM name") String name;
        @Option(names = "--grace-ms", defaultValue = "5000") long graceMs;

        @Override
        public Integer call() throws Exception {
            VmRunDir dir = existing(name);
            VmRecord rec = VmRecord.readFrom(dir);
            if (rec.alive()) {
                try (QmpClient qmp = QmpClient.connectUnix(dir.qmpSocket(), name, Duration.ofSeconds(5))) {
                    qmp.execute("quit", null, Duration.ofSeconds(2));
                } catch (RuntimeException e) {
                    System.err.println("quit over QMP failed (" + e.getMessage() + "), killing");
                }
                ProcessHandle.of(rec.pid()).ifPresent(h -> {
                    try {
                        h.onExit().get(graceMs, java.util.concurrent.TimeUnit.MILLISECONDS);
                    } catch (Exception e) {
                        h.destroyForcibly();
                    }
                });
            }
            dir.delete();
            System.out.println("stopped VM " + name);
            return 0;
        }
    }

    @Command(name = "list", description = "List VMs with a run directory.")
    static final class ListVms implements Callable<Integer> {
        @Override
        public Integer call() throws IOException {
            System.out.printf("%-20s %8s %-6s %-8s %s%n", "NAME", "PID", "ACCEL", "STATE", "RUNDIR");
            for (VmRunDir dir : VmRunDir.all()) {
                VmRecord rec = VmRecord.readFrom(dir);
                System.out.printf("%-20s %8d %-6s %-8s %s%n", rec.name(), rec.pid(), rec.accelerator(),
                        rec.alive() ? "running" : "dead", dir.path());
            }
            return 0;
        }
    }

    @Command(name = "console", description = "Print a VM's serial console (log).")
    static final class Console implements Callable<Integer> {
        @Parameters(index = "0", description = "VM name") String name;
        @Option(names = {"-n", "--lines"}, defaultValue = "40", description = "last N lines (default ${DEFAULT-VALUE})") int lines;
        @Option(names = {"-f", "--follow"}, description = "keep printing new lines") boolean follow;

        @Override
        public Integer call() throws Exception {
            VmRunDir dir = existing(name);
            List<String> all = Files.readAllLines(dir.consoleLog());
            all.subList(Math.max(0, all.size() - lines), all.size()).forEach(System.out::println);
            if (follow) {
                try (var log = new dev.doppel.vm.ConsoleLog(name, dir.consoleLog())) {
                    int from = all.size();
                    log.addListener(l -> {
                        if (l.index() >= from) {
                            System.out.println(l.text());
                        }
                    });
                    while (VmRecord.readFrom(dir).alive()) {
                        Thread.sleep(200);
                    }
                }
            }
            return 0;
        }
    }

    static VmRunDir existing(String name) {
        VmRunDir dir = VmRunDir.of(name);
        if (!Files.exists(dir.specFile())) {
            throw new IllegalArgumentException("unknown VM '" + name + "' (no " + dir.specFile() + "); see 'doppel vm list'");
        }
        return dir;
    }
}

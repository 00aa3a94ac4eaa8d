package dev.doppel.cli;

import dev.doppel.vm.DiskImageVm;
import dev.doppel.vm.MemorySize;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmDefinition;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import dev.doppel.vm.qga.QgaClient;
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

    @Command(name = "start", description = {
            "Boot a VM in the background: Doppel's own guest (default), or your disk image with --image.",
            "--image boots any BIOS-bootable x86-64 disk (qcow2 or raw) with its own bootloader (SeaBIOS, no -kernel), "
                    + "in Doppel's fixed device model (virtio disk and NICs, virtio-serial with the QEMU guest agent port "
                    + "org.qemu.guest_agent.0 as qga.sock in the VM's run directory), so doppel protect works on it. "
                    + "The image is NOT written: the VM runs on a fresh qcow2 overlay (DOPPEL_OVERLAY_DIR, default "
                    + "/var/lib/doppel/overlays/NAME.qcow2) that 'vm stop' deletes; --write-image boots the image itself instead."})
    static final class Start implements Callable<Integer> {
        @Parameters(index = "0", description = "VM name") String name;
        @Option(names = "--image", description = "boot this BIOS-bootable disk image (qcow2 or raw) instead of Doppel's guest") Path image;
        @Option(names = "--write-image", description = "with --image: the guest writes to the image itself (no overlay)") boolean writeImage;
        @Option(names = "--mem", description = "RAM, MiB or with a suffix M/G (default 256, with --image 1G)") String mem;
        @Option(names = "--cpus", defaultValue = "1", description = "vCPUs (default ${DEFAULT-VALUE})") int cpus;
        @Option(names = "--run", defaultValue = "ticker", description = "Doppel's guest: workload ticker, dirtier, kv, none (default ${DEFAULT-VALUE})") String run;
        @Option(names = "--param", description = "Doppel's guest: extra parameter KEY=VALUE (doppel.*)") Map<String, String> params = new LinkedHashMap<>();
        @Option(names = "--mem-file", description = "back RAM by this file (share=on), e.g. on /dev/shm") Path memFile;
        @Option(names = "--disk", description = "qcow2 data disk image (after the boot disk with --image)") Path disk;
        @Option(names = "--user-net", description = "attach a NIC on QEMU user networking (guest 10.0.2.15 by DHCP)") boolean userNet;
        @Option(names = "--forward", description = "with --user-net: host port forward, QEMU hostfwd syntax, e.g. tcp:127.0.0.1:15432-:5432") List<String> forwards = new java.util.ArrayList<>();
        @Option(names = "--nic", description = "attach a NIC on this existing tap device (repeatable)") List<String> taps = new java.util.ArrayList<>();
        @Option(names = "--wait-ready", description = "wait until the guest is ready: Doppel's guest prints DOPPEL-READY; an --image guest's QEMU guest agent answers guest-ping") boolean waitReady;
        @Option(names = "--ready-timeout", defaultValue = "300", description = "seconds --wait-ready waits (default ${DEFAULT-VALUE})") int readyTimeoutS;
        @Option(names = "--colo", description = "run on the patched QEMU that can be a COLO primary (for doppel protect)") boolean colo;
        @Mixin AccelOption accel;

        @Override
        public Integer call() throws Exception {
            try (DaemonMode daemon = DaemonMode.find()) {
                if (daemon != null) {
                    return startThroughDaemon(daemon);
                }
            }
            VmLauncher launcher = VmLauncher.create(accel.forced());
            if (colo) {
                launcher = launcher.onPatchedQemu();
            }
            VmDefinition.Started started = new VmDefinition(name, image, writeImage,
                    mem == null ? 0 : MemorySize.mib(mem), cpus, run, params, memFile, disk, userNet,
                    forwards, taps, colo).start(launcher);
            VmProcess vm = started.vm();
            Path overlay = started.overlay();
            // The CLI exits; the VM stays. Close only our QMP connection and console tailer.
            vm.qmp().close();
            vm.console().close();
            System.out.printf("started VM %s pid=%d accel=%s rundir=%s%s%n", name, vm.pid(), launcher.accelerator(), vm.runDir().path(),
                    image == null ? "" : overlay != null ? " disk=" + overlay + " (overlay on " + image.toAbsolutePath() + ")" : " disk=" + image.toAbsolutePath());
            if (waitReady && image != null) {
                long t0 = System.nanoTime();
                try (QgaClient qga = QgaClient.awaitAgent(name, vm.runDir().qgaSocket(), Duration.ofSeconds(readyTimeoutS),
                        waited -> System.out.printf("  booting: %d s, waiting for the guest agent (console: %s)%n",
                                waited.toSeconds(), lastConsoleLine(vm.runDir())))) {
                    System.out.printf("guest ready: guest agent answers (host name %s) %.1f s after start%n",
                            qga.hostName(), (System.nanoTime() - t0) / 1e9);
                }
            } else if (waitReady) {
                var line = new dev.doppel.vm.ConsoleLog(name, vm.runDir().consoleLog())
                        .awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
                System.out.println("guest ready (console line " + line.index() + ")");
            }
            return 0;
        }

        /** The daemon starts the VM (it owns it from then on); the same words as the direct way. */
        private Integer startThroughDaemon(DaemonMode daemon) throws Exception {
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("name", name);
            if (image != null) {
                body.put("image", image.toAbsolutePath().toString());
            }
            body.put("writeImage", writeImage);
            body.put("memMiB", mem == null ? 0 : MemorySize.mib(mem));
            body.put("cpus", cpus);
            body.put("run", run);
            body.put("params", params);
            if (memFile != null) {
                body.put("memFile", memFile.toAbsolutePath().toString());
            }
            if (disk != null) {
                body.put("disk", disk.toAbsolutePath().toString());
            }
            body.put("userNet", userNet);
            body.put("forwards", forwards);
            body.put("taps", taps);
            body.put("colo", colo);
            var vm = daemon.call("POST", "/api/v1/vms", body);
            System.out.printf("started VM %s pid=%d accel=%s rundir=%s (owned by doppeld at %s)%n", name, vm.path("pid").asLong(),
                    vm.path("accelerator").asText(), vm.path("runDir").asText(), daemon.socket());
            if (waitReady) {
                VmRunDir dir = VmRunDir.of(name);
                if (image != null) {
                    long t0 = System.nanoTime();
                    try (QgaClient qga = QgaClient.awaitAgent(name, dir.qgaSocket(), Duration.ofSeconds(readyTimeoutS),
                            waited -> System.out.printf("  booting: %d s, waiting for the guest agent (console: %s)%n",
                                    waited.toSeconds(), lastConsoleLine(dir)))) {
                        System.out.printf("guest ready: guest agent answers (host name %s) %.1f s after start%n",
                                qga.hostName(), (System.nanoTime() - t0) / 1e9);
                    }
                } else {
                    var line = new dev.doppel.vm.ConsoleLog(name, dir.consoleLog())
                            .awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
                    System.out.println("guest ready (console line " + line.index() + ")");
                }
            }
            return 0;
        }

        private static String lastConsoleLine(VmRunDir dir) {
            try {
                List<String> lines = Files.readAllLines(dir.consoleLog(), java.nio.charset.StandardCharsets.ISO_8859_1);
                for (int i = lines.size() - 1; i >= 0; i--) {
                    String t = lines.get(i).replaceAll("\\e\\[[0-9;?]*[A-Za-z]|[\\x00-\\x1f]", "").strip();
                    if (!t.isEmpty()) {
                        return t.length() > 100 ? t.substring(0, 100) + "…" : t;
                    }
                }
            } catch (IOException e) {
                return "?";
            }
            return "(empty)";
        }
    }

    @Command(name = "stop", description = "Stop a VM (QMP quit, SIGKILL after a grace period).")
    static final class Stop implements Callable<Integer> {
        @Parameters(index = "0", description = "VM name") String name;
        @Option(names = "--grace-ms", defaultValue = "5000") long graceMs;

        @Override
        public Integer call() throws Exception {
            try (DaemonMode daemon = DaemonMode.find()) {
                if (daemon != null) {
                    daemon.call("DELETE", "/api/v1/vms/" + name + "?graceMs=" + graceMs, null);
                    System.out.println("stopped VM " + name + " (through doppeld)");
                    return 0;
                }
            }
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
            Path overlay = DiskImageVm.overlayFor(name);
            if (Files.deleteIfExists(overlay)) {
                System.out.println("deleted its disk overlay " + overlay);
            }
            System.out.println("stopped VM " + name);
            return 0;
        }
    }

    @Command(name = "list", description = "List VMs with a run directory.")
    static final class ListVms implements Callable<Integer> {
        @Override
        public Integer call() throws IOException {
            System.out.printf("%-20s %8s %-6s %-8s %s%n", "NAME", "PID", "ACCEL", "STATE", "RUNDIR");
            try (DaemonMode daemon = DaemonMode.find()) {
                if (daemon != null) {
                    for (var v : daemon.call("GET", "/api/v1/vms", null)) {
                        System.out.printf("%-20s %8d %-6s %-8s %s%n", v.path("name").asText(), v.path("pid").asLong(),
                                v.path("accelerator").asText(), v.path("state").asText(), v.path("runDir").asText());
                    }
                    return 0;
                }
            }
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

package dev.doppel.cli;

import dev.doppel.remus.service.BackupService;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.VmLauncher;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code doppel backup serve}: the backup host's service, in the foreground. */
@Command(name = "backup", description = "The Remus backup side.", subcommands = {BackupCommand.Serve.class})
public final class BackupCommand {

    @Command(name = "serve", description = "Accept protected VMs, store their checkpoints, fail them over when their primary is lost.")
    static final class Serve implements Callable<Integer> {
        @Option(names = "--listen", required = true, description = "control address HOST:PORT (PORT 0 picks one)") String listen;
        @Option(names = "--store", defaultValue = "/dev/shm/doppel-backup", description = "where checkpoints are kept, on tmpfs (default ${DEFAULT-VALUE})") Path store;
        @Option(names = "--detection-ms", defaultValue = "500", description = "primary silent this long = lost (default ${DEFAULT-VALUE})") long detectionMs;
        @Option(names = "--seconds", defaultValue = "0", description = "stop after this many seconds (0 = until interrupted)") long seconds;
        @Option(names = "--coordinator", description = "ZooKeeper ensemble HOST:PORT,... deciding who runs each VM "
                + "(default: the one each primary names, i.e. its controller's embedded server); with --tls its secure client "
                + "ports, reached with this host's certificate") String coordinator;
        @Option(names = "--name", description = "this backup host's name in ownership records (default: backup@HOST of --listen)") String holder;
        @Option(names = "--forward", description = "host port forward for the user-mode network of a failed-over VM, QEMU hostfwd syntax "
                + "(e.g. tcp:127.0.0.1:15432-:5432: the same address as on the primary, which is free once the primary is gone)")
        java.util.List<String> forwards = new java.util.ArrayList<>();
        @Option(names = "--libvirt", description = "this host's libvirtd URI (e.g. qemu:///system): protected libvirt domains "
                + "fail over into it, same name and UUID, from the domain XML their primary sent") String libvirt;
        @Option(names = "--libvirt-map", description = "FROM=TO: a host path prefix of the primary's domain XML that is TO on this "
                + "host (repeatable; other paths must exist here too, as for libvirt's own migration)")
        java.util.List<String> libvirtMap = new java.util.ArrayList<>();
        @Mixin AccelOption accel;
        @Mixin TlsOption tls;

        @Option(names = "--detach", description = "with a daemon: return once serving; the daemon keeps serving (also across "
                + "its restarts) until 'doppel daemon api DELETE /api/v1/backup'") boolean detach;

        @Override
        public Integer call() throws Exception {
            try (DaemonMode daemon = DaemonMode.find()) {
                if (daemon != null) {
                    if (libvirt != null) {
                        throw new IllegalArgumentException("--libvirt: doppeld does not serve libvirt domains yet; "
                                + "run 'backup serve' without a daemon (DOPPEL_NO_DAEMON=1)");
                    }
                    return serveThroughDaemon(daemon);
                }
            }
            try (LibvirtTarget target = LibvirtTarget.open(libvirt, libvirtMap)) {
                return serve(target);
            }
        }

        private Integer serve(LibvirtTarget libvirtTarget) throws Exception {
            VmLauncher stock = VmLauncher.create(accel.forced());
            // A failed-over VM runs on the COLO-patched QEMU, like a 'vm start --colo' one: it can then be
            // protected again (the stock 10.0.0-10.0.6 binary never enters COLO as a primary).
            VmLauncher launcher = stock.onPatchedQemu();
            DateTimeFormatter t = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");
            try (GracefulStop stop = new GracefulStop("backup-serve", Duration.ofSeconds(20));
                 BackupService service = new BackupService(launcher, ProtectCommand.parse(listen), store, Duration.ofMillis(detectionMs),
                    new NicSpec.Netdev.User(forwards), coordinator, holder != null ? holder : "backup@" + listen, tls.load(), line -> System.out.println(LocalTime.now().format(t) + " " + line),
                    BackupService.Hooks.FOREGROUND.withRestoreTarget(libvirtTarget.restoreTarget()))) {
                long end = seconds > 0 ? System.nanoTime() + seconds * 1_000_000_000L : Long.MAX_VALUE;
                while (System.nanoTime() < end && !stop.await(Duration.ofSeconds(5))) {
                    service.protectedVms().values().forEach(p -> System.out.println(LocalTime.now().format(t) + " VM "
                            + p.vm() + " " + p.guard().state() + ", " + p.epochs().summary()));
                }
            }
            return 0;
        }

        /** The daemon serves (failed-over VMs become its VMs); this command reports, and ends the service unless detached. */
        private Integer serveThroughDaemon(DaemonMode daemon) throws Exception {
            java.util.Map<String, Object> body = new java.util.LinkedHashMap<>();
            body.put("listen", listen);
            body.put("detectionMs", detectionMs);
            body.put("coordinator", coordinator);
            body.put("holder", holder);
            body.put("forwards", forwards);
            dev.doppel.tls.PeerTls peer = tls.load();
            body.put("tls", peer.secure() ? peer.directory().toAbsolutePath().toString() : null);
            body.put("store", store.toAbsolutePath().toString());
            var v = daemon.call("POST", "/api/v1/backup", body);
            DateTimeFormatter t = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");
            System.out.println(LocalTime.now().format(t) + " backup service listening on " + listen + " (control port "
                    + v.path("port").asInt() + "), owned by doppeld at " + daemon.socket());
            if (detach) {
                return 0;
            }
            try (GracefulStop stop = new GracefulStop("backup-serve", Duration.ofSeconds(20))) {
                long end = seconds > 0 ? System.nanoTime() + seconds * 1_000_000_000L : Long.MAX_VALUE;
                while (System.nanoTime() < end && !stop.await(Duration.ofSeconds(5))) {
                    for (var p : daemon.call("GET", "/api/v1/backup", null).path("vms")) {
                        System.out.println(LocalTime.now().format(t) + " VM " + p.path("vm").asText() + " " + p.path("state").asText()
                                + ", " + p.path("summary").asText());
                    }
                }
                daemon.call("DELETE", "/api/v1/backup", null);
            }
            return 0;
        }
    }
}

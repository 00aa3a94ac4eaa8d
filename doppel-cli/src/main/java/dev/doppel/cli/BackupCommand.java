package dev.doppel.cli;

import dev.doppel.remus.service.BackupService;
import dev.doppel.vm.NicSpec;
import dev.doppel.vm.PatchedQemuPrefix;
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
        @Mixin AccelOption accel;
        @Mixin TlsOption tls;

        @Override
        public Integer call() throws Exception {
            VmLauncher stock = VmLauncher.create(accel.forced());
            // A failed-over VM runs on the COLO-patched QEMU, like a 'vm start --colo' one: it can then be
            // protected again (the stock 10.0.0-10.0.6 binary never enters COLO as a primary).
            VmLauncher launcher = new VmLauncher(dev.doppel.vm.QemuBinary.atPrefix(PatchedQemuPrefix.find()), stock.accelerator());
            DateTimeFormatter t = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");
            try (GracefulStop stop = new GracefulStop("backup-serve", Duration.ofSeconds(20));
                 BackupService service = new BackupService(launcher, ProtectCommand.parse(listen), store, Duration.ofMillis(detectionMs),
                    new NicSpec.Netdev.User(forwards), coordinator, holder != null ? holder : "backup@" + listen, tls.load(), line -> System.out.println(LocalTime.now().format(t) + " " + line))) {
                long end = seconds > 0 ? System.nanoTime() + seconds * 1_000_000_000L : Long.MAX_VALUE;
                while (System.nanoTime() < end && !stop.await(Duration.ofSeconds(5))) {
                    service.protectedVms().values().forEach(p -> System.out.println(LocalTime.now().format(t) + " VM "
                            + p.vm() + " " + p.guard().state() + ", " + p.epochs().summary()));
                }
            }
            return 0;
        }
    }
}

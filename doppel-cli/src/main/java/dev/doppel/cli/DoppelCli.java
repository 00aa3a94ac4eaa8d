package dev.doppel.cli;

import dev.doppel.cli.bench.BenchCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bin/doppel}: the operator's entry point. Subcommands grow with the controllers. */
@Command(name = "doppel", mixinStandardHelpOptions = true, version = "doppel 0.1.0",
        description = "High availability (Remus) and VM fork (SnowFlock) for QEMU guests.",
        subcommands = {VmCommand.class, DaemonCommand.class, QmpCommand.class, ForkCommand.class, ProtectCommand.class, BackupCommand.class, PkiCommand.class,
                StatusCommand.class, BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class DoppelCli {
    public static void main(String[] args) {
        int code = new CommandLine(new DoppelCli())
                .setExecutionExceptionHandler((ex, cmd, parsed) -> {
                    cmd.getErr().println("doppel: " + ex.getMessage());
                    if (System.getenv("DOPPEL_DEBUG") != null) {
                        ex.printStackTrace(cmd.getErr());
                    }
                    return 1;
                })
                .execute(args);
        System.exit(code);
    }
}

package dev.doppel.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.remus.primary.ProtectionStatus;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.nio.file.Files;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** {@code doppel status}: every VM on this host, with its protection figures when protected. */
@Command(name = "status", description = "VMs on this host and their protection state.")
public final class StatusCommand implements Callable<Integer> {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Override
    public Integer call() throws Exception {
        System.out.printf("%-20s %-8s %-12s %-22s %8s %9s %9s %9s %12s %6s  %s%n", "VM", "QEMU", "PROTECTION", "BACKUP",
                "EPOCHS", "PAUSE ms", "P50 ms", "P99 ms", "LAG ms", "LOST", "OUTPUT HELD / DISKS MIRRORED");
        for (VmRunDir dir : VmRunDir.all()) {
            VmRecord rec = VmRecord.readFrom(dir);
            String qemu = rec.alive() ? "running" : "dead";
            if (Files.exists(dir.protectionFile())) {
                ProtectionStatus s = MAPPER.readValue(dir.protectionFile().toFile(), ProtectionStatus.class);
                System.out.printf("%-20s %-8s %-12s %-22s %8d %9.1f %9.1f %9.1f %12d %6d  %s / %s%n", rec.name(), qemu, s.state(),
                        s.backup(), s.checkpoints(), s.lastPauseMs(), s.pauseP50Ms(), s.pauseP99Ms(), s.lagMs(), s.lostBackups(),
                        s.heldNetdevs().isEmpty() ? "-" : String.join(",", s.heldNetdevs()),
                        s.replicatedDisks().isEmpty() ? "-" : String.join(",", s.replicatedDisks()));
            } else {
                System.out.printf("%-20s %-8s %-12s%n", rec.name(), qemu, "unprotected");
            }
        }
        return 0;
    }
}

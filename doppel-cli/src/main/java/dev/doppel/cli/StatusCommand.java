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
        try (DaemonMode daemon = DaemonMode.find()) {
            if (daemon != null) {
                for (var v : daemon.call("GET", "/api/v1/vms", null)) {
                    var s = v.path("protection");
                    if (s.isMissingNode() || s.isNull()) {
                        System.out.printf("%-20s %-8s %-12s%n", v.path("name").asText(), v.path("state").asText(), "unprotected");
                    } else {
                        System.out.printf("%-20s %-8s %-12s %-22s %8d %9.1f %9.1f %9.1f %12d %6d  %s / %s%n", v.path("name").asText(),
                                v.path("state").asText(), s.path("state").asText(), s.path("backup").asText(), s.path("checkpoints").asLong(),
                                s.path("lastPauseMs").asDouble(), s.path("pauseP50Ms").asDouble(), s.path("pauseP99Ms").asDouble(),
                                s.path("lagMs").asLong(), s.path("lostBackups").asLong(), list(s.path("heldNetdevs")), list(s.path("replicatedDisks")));
                    }
                }
                return 0;
            }
        }
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

    private static String list(com.fasterxml.jackson.databind.JsonNode array) {
        java.util.List<String> out = new java.util.ArrayList<>();
        array.forEach(n -> out.add(n.asText()));
        return out.isEmpty() ? "-" : String.join(",", out);
    }
}

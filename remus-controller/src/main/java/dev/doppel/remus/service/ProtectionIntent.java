package dev.doppel.remus.service;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * What an operator asked for when protecting a VM ({@code doppel protect} options, or the daemon's
 * {@code POST …/protection} body). The daemon keeps it in the VM's run directory ({@value #FILE}) so
 * that a restarted daemon protects the VM again with the same settings.
 *
 * @param backup      the backup host's control address HOST:PORT
 * @param intervalMs  checkpoint interval
 * @param timeoutMs   backup lost after the guest stood still this long (0: 3 intervals, at least 300 ms)
 * @param memoryOnly  replicate memory and devices only (no output commit, no disk replication)
 * @param coordinator ZooKeeper ensemble, or null for the guard's embedded single server
 * @param holder      this primary's name in ownership records, or null for primary@HOSTNAME
 * @param tls         this host's certificate directory for the links to the backup, or null for plain TCP
 */
public record ProtectionIntent(String backup, long intervalMs, long timeoutMs, boolean memoryOnly, String coordinator,
                               String holder, String tls) {
    public static final String FILE = "protect-intent.json";
    private static final ObjectMapper MAPPER = new ObjectMapper();

    public ProtectionIntent {
        if (backup == null || backup.lastIndexOf(':') <= 0) {
            throw new IllegalArgumentException("backup must be HOST:PORT, got '" + backup + "'");
        }
        intervalMs = intervalMs <= 0 ? 50 : intervalMs;
    }

    public void write(Path runDir) throws IOException {
        Path tmp = runDir.resolve(FILE + ".tmp");
        MAPPER.writeValue(tmp.toFile(), this);
        Files.move(tmp, runDir.resolve(FILE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** The intent in {@code runDir}, or null if the VM is not to be protected. */
    public static ProtectionIntent read(Path runDir) throws IOException {
        Path f = runDir.resolve(FILE);
        return Files.exists(f) ? MAPPER.readValue(f.toFile(), ProtectionIntent.class) : null;
    }

    public static void delete(Path runDir) throws IOException {
        Files.deleteIfExists(runDir.resolve(FILE));
    }
}

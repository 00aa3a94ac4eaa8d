package dev.doppel.daemon.backup;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * How this host serves as a backup, kept in the daemon's state directory so that a restarted daemon
 * serves again on the same port (primaries re-protect to it by themselves).
 *
 * @param listen      control address HOST:PORT
 * @param detectionMs primary silent this long = lost
 * @param coordinator ZooKeeper ensemble, or null for the one each primary names
 * @param holder      this backup's name in ownership records, or null for backup@LISTEN
 * @param forwards    host port forwards for the user-mode NIC of a failed-over VM
 * @param tls         this host's certificate directory, or null for plain TCP
 * @param store       where checkpoints are kept (tmpfs), or null for /dev/shm/doppel-backup
 */
public record BackupSettings(String listen, long detectionMs, String coordinator, String holder, List<String> forwards,
                             String tls, String store) {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    static final String FILE = "backup.json";

    public BackupSettings {
        if (listen == null || listen.lastIndexOf(':') <= 0) {
            throw new IllegalArgumentException("listen must be HOST:PORT, got '" + listen + "'");
        }
        detectionMs = detectionMs <= 0 ? 500 : detectionMs;
        forwards = forwards == null ? List.of() : List.copyOf(forwards);
    }

    void write(Path stateDir) throws IOException {
        Files.createDirectories(stateDir);
        Path tmp = stateDir.resolve(FILE + ".tmp");
        MAPPER.writeValue(tmp.toFile(), this);
        Files.move(tmp, stateDir.resolve(FILE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    static BackupSettings read(Path stateDir) throws IOException {
        Path f = stateDir.resolve(FILE);
        return Files.exists(f) ? MAPPER.readValue(f.toFile(), BackupSettings.class) : null;
    }
}

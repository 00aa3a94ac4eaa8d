package dev.doppel.clone;

import dev.doppel.qmp.QmpClient;
import dev.doppel.tls.PeerTls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A remote clone's end of mutual TLS. The clone QEMU is the migration's incoming side, so it is the
 * TLS server (QEMU's migration/tls.c): with a {@code tls-creds-x509} object ({@code endpoint=server},
 * {@code verify-peer=on}) named in the {@code tls-creds} migration parameter, every connection to its
 * incoming port — the first one after {@code migrate-incoming}, and each one after
 * {@code migrate-recover} — must complete a handshake with a certificate of the installation's CA
 * before QEMU reads a byte of the migration stream. A peer that fails it is dropped; the listener
 * stays open and the migration state is untouched, so the real page server can still connect.
 */
final class IncomingTls {
    private static final Logger log = LoggerFactory.getLogger(IncomingTls.class);
    /** The credentials object's id in each clone QEMU. */
    static final String CREDS = "doppel-incoming-tls";
    /** QEMU's trace event for a failed incoming handshake: a stable line in the QEMU log to report. */
    private static final String TRACE = "migration_tls_incoming_handshake_error";

    private IncomingTls() {
    }

    /**
     * Makes the clone's incoming side require mutual TLS with {@code tls}'s host directory (before its
     * {@code migrate-incoming}), and has QEMU log each failed handshake (see {@link Rejections}).
     *
     * @throws ForkException naming the clone if QEMU refuses the credentials
     */
    static void require(String clone, QmpClient qmp, PeerTls tls) {
        Path dir = tls.directory();
        if (!Files.exists(dir.resolve("dh-params.pem"))) {
            log.warn("clone={} event=tls-no-dh-params dir={} note=\"QEMU generates DH parameters for each clone"
                    + " (50-300 ms of CPU); 'doppel pki issue' writes dh-params.pem\"", clone, dir);
        }
        try {
            qmp.execute("object-add", Map.of("qom-type", "tls-creds-x509", "id", CREDS, "endpoint", "server",
                    "dir", dir.toString(), "verify-peer", true));
            qmp.execute("migrate-set-parameters", Map.of("tls-creds", CREDS));
        } catch (RuntimeException e) {
            throw new ForkException(clone, "cannot require mutual TLS on the clone's incoming migration (" + dir + ")", e);
        }
        try {
            qmp.execute("trace-event-set-state", Map.of("name", TRACE, "enable", true));
        } catch (RuntimeException e) {
            // A QEMU without a printing trace backend still refuses the peer; it is only not reported.
            log.warn("clone={} rejected TLS peers will not be reported: {}", clone, e.getMessage());
        }
    }

    /** The handshake failures a clone QEMU traced to its log, read as they come (the guard polls). */
    static final class Rejections {
        private final Path qemuLog;
        private long offset;

        /** Watches what {@code qemuLog} gets from now on. */
        Rejections(Path qemuLog) {
            this.qemuLog = qemuLog;
            long size = 0;
            try {
                size = Files.size(qemuLog);
            } catch (IOException e) {
                // not written yet: start at 0
            }
            this.offset = size;
        }

        /** QEMU's reason for each handshake that failed since the last call (e.g. "No certificate was found."). */
        List<String> poll() {
            List<String> out = new ArrayList<>();
            try (FileChannel ch = FileChannel.open(qemuLog, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size <= offset) {
                    return out;
                }
                ByteBuffer buf = ByteBuffer.allocate((int) Math.min(size - offset, 1 << 20));
                ch.read(buf, offset);
                String text = new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8);
                int end = text.lastIndexOf('\n');
                if (end < 0) {
                    return out;   // a line still being written
                }
                offset += text.substring(0, end + 1).getBytes(StandardCharsets.UTF_8).length;
                for (String line : text.substring(0, end).split("\n")) {
                    int at = line.indexOf(TRACE + " err=");
                    if (at >= 0) {
                        out.add(line.substring(at + TRACE.length() + 5).trim());
                    }
                }
            } catch (NoSuchFileException e) {
                // the run directory is gone with the clone
            } catch (IOException e) {
                log.debug("cannot read {}: {}", qemuLog, e.getMessage());
            }
            return out;
        }
    }
}

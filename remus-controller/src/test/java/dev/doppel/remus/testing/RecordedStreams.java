package dev.doppel.remus.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.GZIPInputStream;

/** The recorded streams under src/test/resources/streams (see the README there). */
public final class RecordedStreams {
    /** Precopy of a 128 MiB dirtier guest with x-ignore-shared, trimmed. */
    public static final String PRECOPY = "precopy-xis-i440fx.bin.gz";
    /** COLO primary → backup: initial stream (trimmed) + 3 checkpoints. */
    public static final String COLO_P2B = "colo-primary-to-backup.bin.gz";
    /** COLO backup → primary: READY, then REPLY, RECEIVED, LOADED per checkpoint. */
    public static final String COLO_B2P = "colo-backup-to-primary.bin.gz";
    /** Precopy of a paused q35 VM (different machine type), trimmed. */
    public static final String Q35 = "precopy-q35-paused.bin.gz";

    private static final Map<String, byte[]> CACHE = new ConcurrentHashMap<>();

    private RecordedStreams() {
    }

    public static byte[] load(String name) {
        return CACHE.computeIfAbsent(name, n -> {
            try (InputStream in = RecordedStreams.class.getResourceAsStream("/streams/" + n)) {
                if (in == null) {
                    throw new IllegalStateException("missing test resource streams/" + n + " (see streams/README.md)");
                }
                return new GZIPInputStream(in).readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }).clone();
    }
}

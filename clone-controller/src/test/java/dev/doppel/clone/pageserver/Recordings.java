package dev.doppel.clone.pageserver;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.zip.GZIPInputStream;

/** The recordings the page-server unit tests replay (made by {@link RecordPageServerTranscripts} from real QEMU 10.0.2). */
final class Recordings {
    /** A fork descriptor: device-state-only x-ignore-shared migration to a file of an idle 256 MiB guest. */
    static final String DESCRIPTOR = "descriptor-i440fx-256m.bin.gz";
    /** Everything a real postcopy destination sent on the return path while the page server fed it, up to SHUT. */
    static final String RETURN_PATH = "return-path-i440fx-256m.bin.gz";

    private Recordings() {
    }

    static byte[] load(String name) {
        try (InputStream in = Recordings.class.getResourceAsStream("/pageserver/" + name)) {
            if (in == null) {
                throw new IllegalStateException("recording " + name + " missing (see src/test/resources/pageserver/README.md)");
            }
            return new GZIPInputStream(in).readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}

package dev.doppel.vm;

import java.util.List;
import org.slf4j.Logger;

/**
 * Closing what an owner holds, in order, where one failure must not keep the rest running (a QEMU
 * left behind because a socket failed to close first).
 */
public final class Closeables {
    private Closeables() {
    }

    /** Closes each non-null resource in order; failures are logged at debug level and skipped. */
    public static void closeQuietly(Logger log, AutoCloseable... resources) {
        for (AutoCloseable c : resources) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                log.debug("close: {}", e.toString());
            }
        }
    }

    /** Closes each non-null resource in order; failures are logged as warnings naming {@code owner}. */
    public static void closeAll(Logger log, String owner, List<? extends AutoCloseable> resources) {
        for (AutoCloseable c : resources) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                log.warn("{} cleanup: {}", owner, e.toString());
            }
        }
    }
}

package dev.doppel.clone;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * What every remote-fork test owns: a fork fixture (the controller and its VMs) and the other
 * hosts. Closed after each test, controller first (it stops the QEMUs inside the hosts), pass or fail.
 */
abstract class RemoteForkTestBase {
    @TempDir Path tmp;
    ForkFixture fx;
    RemoteHosts hosts;

    @AfterEach
    void cleanUp() throws Exception {
        try {
            if (fx != null) {
                fx.close();
            }
        } finally {
            fx = null;
            if (hosts != null) {
                hosts.close();
            }
            hosts = null;
        }
    }
}

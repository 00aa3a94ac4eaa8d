package dev.doppel.clone;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.hostnet.NetNamespace;
import java.util.ArrayList;
import java.util.List;

/**
 * The "other hosts" of a remote-fork test: network namespaces named {@code dpr-<letter>-<pid>}.
 * Closed after the test's controller (which stops the QEMUs inside), pass or fail; closing checks
 * that nothing is left.
 */
final class RemoteHosts implements AutoCloseable {
    final List<RemoteHost> hosts = new ArrayList<>();

    RemoteHosts(int n) {
        try {
            for (int i = 0; i < n; i++) {
                hosts.add(RemoteHost.create("dpr-" + (char) ('a' + i) + "-" + ProcessHandle.current().pid()));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    RemoteHost get(int i) {
        return hosts.get(i);
    }

    @Override
    public void close() {
        for (RemoteHost h : hosts) {
            h.close();
            if (NetNamespace.exists(h.name())) {
                throw new AssertionError("namespace " + h.name() + " left behind");
            }
        }
        hosts.clear();
    }
}

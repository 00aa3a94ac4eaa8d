package dev.doppel.daemon.fork;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.multicast.MulticastSegment;
import dev.doppel.daemon.ApiException;
import dev.doppel.hostnet.NetNamespace;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The other hosts the daemon's fork families put clones on. As everywhere in Doppel's remote fork
 * ({@link RemoteHost}), another host is a network namespace reached over a veth link of its own, so
 * page traffic crosses a network interface; its namespace is this daemon's prefix and the name.
 *
 * <p>A host is made on the first fork that names it and removed when no family has clones on it any
 * more (after a family ends, and when the daemon stops). A host with clones on it outlives the daemon
 * like the clones do, and the next daemon attaches to it when it adopts their family.
 */
public final class CloneHosts implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CloneHosts.class);
    private final Map<String, RemoteHost> hosts = new TreeMap<>();
    /** {@code dph-XXXX-}: namespaces are the machine's, and two daemons (tests) must not share a host. */
    private final String prefix;

    /** @param prefix this daemon's namespace prefix */
    public CloneHosts(String prefix) {
        this.prefix = prefix;
    }

    /** The hosts named (made or attached to as needed), in order. */
    public synchronized List<RemoteHost> acquire(String vm, List<String> names) {
        List<RemoteHost> out = new ArrayList<>();
        for (String name : names) {
            if (name == null || !name.matches("[a-z0-9][a-z0-9-]{0,15}")) {
                throw new ApiException(400, vm, "bad host name '" + name + "' (1-16 of a-z, 0-9 and '-')");
            }
            out.add(byNamespace(prefix + name));
        }
        return out;
    }

    /** The host whose namespace is {@code namespace}: known, left by a previous daemon (attached), or new. */
    private RemoteHost byNamespace(String namespace) {
        RemoteHost h = hosts.get(namespace);
        if (h == null) {
            h = NetNamespace.exists(namespace) ? attach(namespace) : RemoteHost.create(namespace);
            hosts.put(namespace, h);
        }
        return h;
    }

    /**
     * The host a previous daemon put clones on, for the adoption of their family.
     *
     * @throws IllegalStateException when its namespace is gone
     */
    public synchronized RemoteHost existing(String namespace) {
        RemoteHost h = hosts.get(namespace);
        if (h == null) {
            h = attach(namespace);
            hosts.put(namespace, h);
        }
        return h;
    }

    /**
     * A host a previous daemon left: no page server of that daemon lives on, so its multicast segments
     * there are removed.
     */
    private static RemoteHost attach(String namespace) {
        RemoteHost h = RemoteHost.attach(namespace);
        MulticastSegment.removeStale(h.namespace());
        return h;
    }

    /** The hosts' names as the API takes them, with whether a family has clones on each. */
    public synchronized Map<String, Boolean> inUse() {
        Map<String, Boolean> m = new TreeMap<>();
        hosts.forEach((ns, h) -> m.put(ns.substring(prefix.length()), h.inUse()));
        return m;
    }

    /** The API's name of the host with namespace {@code namespace} (null for null: this host). */
    public String nameOf(String namespace) {
        return namespace == null ? null : namespace.startsWith(prefix) ? namespace.substring(prefix.length()) : namespace;
    }

    /**
     * Removes the hosts of this daemon's prefix that a previous daemon left and no adopted family uses
     * (their clones were lost, or their family ended while no daemon ran).
     */
    public synchronized void removeLeftovers() {
        for (String line : dev.doppel.hostnet.HostCommand.run("ip", "netns", "list").lines().toList()) {
            String ns = line.split("\\s+")[0];
            if (ns.startsWith(prefix) && !hosts.containsKey(ns)) {
                try {
                    hosts.put(ns, attach(ns));
                } catch (RuntimeException e) {
                    // not a clone host any more (its link is gone): the namespace alone
                    log.warn("host={} event=leftover-without-link cause=\"{}\"", ns, e.getMessage());
                    dev.doppel.hostnet.HostCommand.tryRun(List.of("ip", "netns", "del", ns));
                }
            }
        }
        removeIdle();
    }

    /** Removes every host no family uses (its namespace and link). */
    public synchronized void removeIdle() {
        hosts.values().removeIf(h -> {
            if (h.inUse()) {
                return false;
            }
            try {
                h.close();
            } catch (RuntimeException e) {
                log.warn("host={} event=remove-failed cause=\"{}\"", h.name(), e.getMessage());
            }
            return true;
        });
    }

    /** The daemon stops: idle hosts go; hosts with clones stay for them (the next daemon attaches). */
    @Override
    public void close() {
        removeIdle();
    }
}

package dev.doppel.clone.net;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.NetNamespace;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Another host for remote clones, modelled as a network namespace: QEMU processes run inside it,
 * and it is reachable from this host (where the page server runs) only over a veth link with its
 * own subnet {@code 10.78.i.0/24} (this side .1, the host .2), so page traffic really crosses a
 * network interface. Clone NICs join the family's clone network through a per-family segment
 * ({@link CloneNetwork#segment}). Closing removes the link and the namespace; processes inside
 * must be stopped by their owners first.
 */
public final class RemoteHost implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RemoteHost.class);
    private static final AtomicInteger INDEX = new AtomicInteger();
    private static final int FIRST_PORT = 24000;

    private final NetNamespace namespace;
    private final int index;
    private final String link;
    private final AtomicInteger ports = new AtomicInteger(FIRST_PORT);
    private final Map<CloneNetwork, CloneNetwork> segments = new ConcurrentHashMap<>();

    private RemoteHost(NetNamespace namespace, int index, String link) {
        this.namespace = namespace;
        this.index = index;
        this.link = link;
    }

    /** Creates the namespace {@code name} and its link to this host. */
    public static RemoteHost create(String name) {
        int i = freeSubnet();
        String link = "dprl" + i + "x" + (ProcessHandle.current().pid() % 10000);
        NetNamespace ns = NetNamespace.create(name);
        try {
            HostCommand.tryRun(List.of("ip", "link", "del", link));   // a stale one from a killed run
            HostCommand.run("ip", "link", "add", link, "type", "veth", "peer", "name", "mgmt0", "netns", name);
            HostCommand.run("ip", "addr", "add", "10.78." + i + ".1/24", "dev", link);
            HostCommand.run("ip", "link", "set", link, "up");
            ns.address("mgmt0", "10.78." + i + ".2/24");
        } catch (RuntimeException e) {
            HostCommand.tryRun(List.of("ip", "link", "del", link));
            ns.close();
            throw e;
        }
        log.info("host={} event=created address=10.78.{}.2", name, i);
        return new RemoteHost(ns, i, link);
    }

    /**
     * Takes over a host {@link #create} made for a controller that died (its namespace and link live on
     * in the kernel, with the clones on it): the link is found by the host's address.
     */
    public static RemoteHost attach(String name) {
        NetNamespace ns = NetNamespace.existing(name);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("inet 10\\.78\\.(\\d+)\\.2/24")
                .matcher(ns.ip("-o", "-4", "addr", "show", "dev", "mgmt0"));
        if (!m.find()) {
            throw new IllegalStateException("namespace '" + name + "' is not a clone host (no 10.78.i.2/24 on mgmt0)");
        }
        int i = Integer.parseInt(m.group(1));
        String line = HostCommand.run("ip", "-o", "-4", "addr", "show", "to", "10.78." + i + ".0/24").strip();
        if (line.isEmpty()) {
            throw new IllegalStateException("clone host '" + name + "' has lost its link to this host (10.78." + i + ".1)");
        }
        String link = line.split("\\s+")[1];
        log.info("host={} event=attached address=10.78.{}.2 link={}", name, i, link);
        return new RemoteHost(ns, i, link);
    }

    /** Registers a family's segment a dead controller left here ({@link CloneNetwork#existingSegment}). */
    public synchronized void adoptSegment(CloneNetwork family, CloneNetwork segment) {
        segments.put(family, segment);
    }

    /** Whether any family still has a segment here. */
    public synchronized boolean inUse() {
        return !segments.isEmpty();
    }

    /**
     * The next 10.78.i.0/24 that no interface of this host uses: another process (a benchmark next to
     * a test run) may have hosts of its own, and two links with one subnet would misroute pages.
     */
    private static synchronized int freeSubnet() {
        while (true) {
            int i = INDEX.incrementAndGet();
            if (i > 250) {
                throw new IllegalStateException("no free host subnet left in 10.78.1-250.0/24");
            }
            String used = HostCommand.run("ip", "-o", "-4", "addr", "show", "to", "10.78." + i + ".0/24");
            if (used.isBlank()) {
                return i;
            }
        }
    }

    public String name() {
        return namespace.name();
    }

    /** Sockets created on this host's network (inside its namespace). */
    public dev.doppel.hostnet.HostSockets sockets() {
        return dev.doppel.hostnet.HostSockets.inNamespace(namespace.name());
    }

    public NetNamespace namespace() {
        return namespace;
    }

    /** The host's address as seen from here (where QEMUs on it listen for the page server). */
    public String address() {
        return "10.78." + index + ".2";
    }

    /** A TCP port not used before on this host (incoming migrations are one-shot listeners). */
    public int nextPort() {
        return ports.getAndIncrement();
    }

    /** The family's clone-network segment on this host, created on first use. */
    public synchronized CloneNetwork segmentFor(CloneNetwork family) {
        return segments.computeIfAbsent(family, f -> CloneNetwork.segment(f, namespace));
    }

    /** The family is gone: drop its segment here. */
    public synchronized void releaseSegment(CloneNetwork family) {
        CloneNetwork s = segments.remove(family);
        if (s != null) {
            s.close();
        }
    }

    @Override
    public void close() {
        segments.values().forEach(CloneNetwork::close);
        segments.clear();
        HostCommand.tryRun(List.of("ip", "link", "del", link));
        namespace.close();
        log.info("host={} event=removed", namespace.name());
    }

    @Override
    public String toString() {
        return "host " + name() + " (" + address() + ")";
    }
}

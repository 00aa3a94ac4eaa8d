package dev.doppel.remus.testbed;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.hostnet.NetNamespace;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Three hosts on one L2 segment, for Remus end-to-end tests and benchmarks: network namespaces
 * {@code primary}, {@code backup} and {@code client}, each with a bridge {@code br0} holding its link
 * to a switch (a bridge in the root namespace) and, on the primary and backup, a tap {@code tap0}
 * for the protected VM (the restored VM takes the same MAC and IP on the backup's tap); and a fourth
 * host, {@code coord}, for the coordination service (ZooKeeper), so that isolating the primary or
 * the backup also cuts it off the coordinator. Addresses are 10.83.N.0/24: hosts .1/.2/.3/.4, the
 * guest .10. Everything is removed by {@link #close()}.
 */
public final class RemusTestbed implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RemusTestbed.class);

    /** One host: its namespace, address and sockets. */
    public record Host(String role, NetNamespace ns, String ip, String uplink) {
        public HostSockets sockets() {
            return HostSockets.inNamespace(ns.name());
        }
    }

    public static final String GUEST_MAC = "52:54:00:83:00:10";
    public static final String TAP = "tap0";

    private final String id;
    private final String switchName;
    private final String subnet;
    private final List<Host> hosts = new ArrayList<>();
    private boolean closed;

    private int coordinators = 1;

    private RemusTestbed(String id, int net) {
        this.id = id;
        this.switchName = "dsw" + id;
        this.subnet = "10.83." + net;
    }

    /** Creates the hosts, with one coordination host; {@code id}: up to 8 characters unique on this machine. */
    public static RemusTestbed create(String id, int net) {
        return create(id, net, 1);
    }

    /** Creates the hosts with {@code coordinators} coordination hosts (3 for an ensemble a partition can cut). */
    public static RemusTestbed create(String id, int net, int coordinators) {
        if (!id.matches("[a-z0-9]{1,8}")) {
            throw new IllegalArgumentException("testbed id must be 1-8 lowercase letters/digits: " + id);
        }
        RemusTestbed t = new RemusTestbed(id, net);
        t.coordinators = coordinators;
        try {
            HostCommand.tryRun(List.of("ip", "link", "del", t.switchName));
            HostCommand.run("ip", "link", "add", t.switchName, "type", "bridge");
            HostCommand.run("ip", "link", "set", t.switchName, "up");
            t.addHost("primary", 1, true);
            t.addHost("backup", 2, true);
            t.addHost("client", 3, false);
            for (int i = 0; i < coordinators; i++) {
                t.addHost(coordinators == 1 ? "coord" : "coord" + (i + 1), 4 + i, false);
            }
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        log.info("testbed={} event=created subnet={}.0/24 switch={}", id, t.subnet, t.switchName);
        return t;
    }

    private void addHost(String role, int hostNumber, boolean withTap) {
        NetNamespace ns = NetNamespace.create("dpk" + id + "-" + role);
        // client and coord share a 'c': coordination hosts' uplinks end in z (or z1, z2, z3)
        String uplink = "dk" + id + (role.startsWith("coord") ? "z" + role.substring(5) : role.substring(0, 1));
        Host h = new Host(role, ns, subnet + "." + hostNumber, uplink);
        hosts.add(h);
        HostCommand.run("ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", ns.name());
        HostCommand.run("ip", "link", "set", uplink, "master", switchName);
        HostCommand.run("ip", "link", "set", uplink, "up");
        ns.bridge("br0");
        ns.ip("link", "set", "eth0", "master", "br0");
        ns.ip("link", "set", "eth0", "up");
        ns.address("br0", h.ip() + "/24");
        if (withTap) {
            ns.tap(TAP, "br0", true);
        }
    }

    public Host primary() {
        return hosts.get(0);
    }

    public Host backup() {
        return hosts.get(1);
    }

    public Host client() {
        return hosts.get(2);
    }

    /** The coordination service's host (the first of an ensemble's). */
    public Host coordinator() {
        return hosts.get(3);
    }

    /** Every coordination host. */
    public List<Host> coordinators() {
        return hosts.subList(3, 3 + coordinators);
    }

    /**
     * Cuts what {@code from} sends to {@code to} (a tc filter on {@code from}'s link redirects those
     * packets to its loopback, which is down: this kernel has no gact drop action). With the filter on
     * both hosts the cut is symmetric.
     */
    public void cut(Host from, Host to) {
        from.ns().exec("tc", "qdisc", "replace", "dev", "eth0", "clsact");
        from.ns().exec("tc", "filter", "add", "dev", "eth0", "egress", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "dst", to.ip() + "/32", "action", "mirred", "egress", "redirect", "dev", "lo");
    }

    /** Drops what {@code from} sends to one TCP/UDP port of {@code to} (a firewall that eats the SYNs). */
    public void cutPort(Host from, Host to, int port) {
        from.ns().exec("tc", "qdisc", "replace", "dev", "eth0", "clsact");
        from.ns().exec("tc", "filter", "add", "dev", "eth0", "egress", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "dst", to.ip() + "/32", "match", "ip", "dport", Integer.toString(port), "0xffff",
                "action", "mirred", "egress", "redirect", "dev", "lo");
    }

    /** Cuts both directions between {@code a} and {@code b}. */
    public void partition(Host a, Host b) {
        cut(a, b);
        cut(b, a);
    }

    /** The segment's switch: a bridge in this (the root) namespace, where a VM's tap may be plugged directly. */
    public String switchName() {
        return switchName;
    }

    /** The protected guest's address with prefix, for the guest's {@code doppel.ip}. */
    public String guestCidr() {
        return guestIp() + "/24";
    }

    public String guestIp() {
        return subnet + ".10";
    }

    /** Cuts a host off the segment (its link goes down), as if it lost power or its network. */
    public void isolate(Host h) {
        HostCommand.run("ip", "link", "set", h.uplink(), "down");
    }

    /** The switch port (uplink name) on which the switch last learned {@code mac}, or null. */
    public String switchPortOf(String mac) {
        String fdb = HostCommand.run("bridge", "fdb", "show", "br", switchName);
        for (String line : fdb.lines().toList()) {
            String[] w = line.trim().split("\\s+");
            if (w.length >= 3 && w[0].equalsIgnoreCase(mac) && w[1].equals("dev") && !line.contains("permanent")) {
                return w[2];
            }
        }
        return null;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Host h : hosts) {
            HostCommand.tryRun(List.of("ip", "link", "del", h.uplink()));
            try {
                h.ns().close();
            } catch (RuntimeException e) {
                log.warn("testbed={} cleanup of {}: {}", id, h.ns().name(), e.getMessage());
            }
        }
        HostCommand.tryRun(List.of("ip", "link", "del", switchName));
        log.info("testbed={} event=removed", id);
    }
}

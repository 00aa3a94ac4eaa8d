package dev.doppel.hostnet;

import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A network namespace owned by Doppel: a "host" in tests (primary, backup, client) or the isolated
 * clone network of a forked VM. {@link #close()} deletes it with every interface in it; processes
 * started inside must be stopped by their own owners first.
 */
public final class NetNamespace implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NetNamespace.class);

    private final String name;
    private volatile boolean closed;

    private NetNamespace(String name) {
        this.name = name;
    }

    /** Creates the namespace with its loopback up; a stale one of the same name is removed first. */
    public static NetNamespace create(String name) {
        if (name.length() > 40 || !name.matches("[A-Za-z0-9_.-]+")) {
            throw new IllegalArgumentException("bad namespace name '" + name + "'");
        }
        if (exists(name)) {
            log.warn("netns={} event=stale-removed", name);
            HostCommand.run("ip", "netns", "del", name);
        }
        HostCommand.run("ip", "netns", "add", name);
        NetNamespace ns = new NetNamespace(name);
        try {
            ns.ip("link", "set", "lo", "up");
        } catch (RuntimeException e) {
            ns.close();
            throw e;
        }
        log.info("netns={} event=created", name);
        return ns;
    }

    /** Takes over a namespace that exists (one a dead owner left for a successor); closing deletes it. */
    public static NetNamespace existing(String name) {
        if (!exists(name)) {
            throw new IllegalStateException("network namespace '" + name + "' does not exist");
        }
        return new NetNamespace(name);
    }

    public static boolean exists(String name) {
        return HostCommand.run("ip", "netns", "list").lines().anyMatch(l -> l.split("\\s+")[0].equals(name));
    }

    public String name() {
        return name;
    }

    /** Runs {@code ip ARGS} inside this namespace. */
    public String ip(String... args) {
        List<String> argv = new java.util.ArrayList<>(List.of("ip", "-n", name));
        argv.addAll(List.of(args));
        return HostCommand.run(argv);
    }

    /** Runs any command inside this namespace. */
    public String exec(String... argv) {
        return HostCommand.run(HostCommand.inNamespace(name, List.of(argv)));
    }

    /** Adds an address to an interface and brings it up. */
    public void address(String ifname, String cidr) {
        ip("addr", "add", cidr, "dev", ifname);
        ip("link", "set", ifname, "up");
    }

    /** Creates a Linux bridge in this namespace, up. */
    public void bridge(String bridgeName) {
        ip("link", "add", bridgeName, "type", "bridge");
        ip("link", "set", bridgeName, "up");
    }

    /** Creates a tap device for QEMU in this namespace and enslaves it to a bridge (null = none). */
    public void tap(String tapName, String bridgeName, boolean up) {
        ip("tuntap", "add", "dev", tapName, "mode", "tap");
        if (bridgeName != null) {
            ip("link", "set", tapName, "master", bridgeName);
        }
        if (up) {
            ip("link", "set", tapName, "up");
        }
    }

    /** A veth pair between this namespace and another (the other end keeps {@code peerName}). */
    public void vethTo(String localName, NetNamespace peer, String peerName) {
        ip("link", "add", localName, "type", "veth", "peer", "name", peerName, "netns", peer.name());
        ip("link", "set", localName, "up");
        peer.ip("link", "set", peerName, "up");
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        HostCommand.Result r = HostCommand.tryRun(List.of("ip", "netns", "del", name));
        if (r.exitCode() != 0 && exists(name)) {
            throw new HostCommandException("cannot delete netns " + name + ": " + r.stderr().strip());
        }
        log.info("netns={} event=deleted", name);
    }
}

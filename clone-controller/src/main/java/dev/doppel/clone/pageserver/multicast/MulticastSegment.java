package dev.doppel.clone.pageserver.multicast;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.hostnet.HostCommand;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The L2 segment that multicast pages travel on: a bridge on this (the origin's) host with a veth
 * link to each clone host ({@code mc<i>} there: several forks may use one host at once). A datagram the origin sends to the group leaves
 * its interface once and the bridge hands a copy to every host, as a switch does. Subnet
 * {@code 10.79.i.0/24}: origin .1, host k .(k+2). Removed by {@link #close()}.
 */
public final class MulticastSegment implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MulticastSegment.class);

    private final int subnet;
    private final String bridge;
    private final List<String> links = new ArrayList<>();

    private MulticastSegment(int subnet, String bridge) {
        this.subnet = subnet;
        this.bridge = bridge;
    }

    public static synchronized MulticastSegment create(List<RemoteHost> hosts) {
        int i = freeSubnet();
        long tag = ProcessHandle.current().pid() % 1000;
        MulticastSegment s = new MulticastSegment(i, "dpm" + i + "b" + tag);
        try {
            HostCommand.tryRun(List.of("ip", "link", "del", s.bridge));
            HostCommand.run("ip", "link", "add", s.bridge, "type", "bridge", "mcast_snooping", "0");
            HostCommand.run("ip", "addr", "add", "10.79." + i + ".1/24", "dev", s.bridge);
            HostCommand.run("ip", "link", "set", s.bridge, "up");
            for (int k = 0; k < hosts.size(); k++) {
                RemoteHost h = hosts.get(k);
                String link = "dpm" + i + "h" + k + "x" + tag;
                HostCommand.tryRun(List.of("ip", "link", "del", link));
                HostCommand.run("ip", "link", "add", link, "type", "veth", "peer", "name", s.hostInterface(), "netns", h.name());
                s.links.add(link);
                HostCommand.run("ip", "link", "set", link, "master", s.bridge);
                HostCommand.run("ip", "link", "set", link, "up");
                h.namespace().address(s.hostInterface(), "10.79." + i + "." + (k + 2) + "/24");
            }
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
        log.info("multicast-segment={} event=created subnet=10.79.{}.0/24 hosts={}", s.bridge, i, hosts.size());
        return s;
    }

    private static int freeSubnet() {
        for (int i = 1; i <= 250; i++) {
            if (HostCommand.run("ip", "-o", "-4", "addr", "show", "to", "10.79." + i + ".0/24").isBlank()) {
                return i;
            }
        }
        throw new IllegalStateException("no free multicast subnet left in 10.79.1-250.0/24");
    }

    /** The segment's interface inside each clone host. */
    public String hostInterface() {
        return "mc" + subnet;
    }

    /**
     * Removes the multicast segments a dead controller left on {@code host}: its interfaces there
     * (their veth peers here go with them) and the bridges here that had no other port. Only for a
     * host none of this process's forks uses.
     */
    public static void removeStale(dev.doppel.hostnet.NetNamespace host) {
        for (String line : host.ip("-o", "link", "show").lines().toList()) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^\\d+:\\s+mc(\\d+)@").matcher(line);
            if (!m.find()) {
                continue;
            }
            int subnet = Integer.parseInt(m.group(1));
            HostCommand.tryRun(List.of("ip", "-n", host.name(), "link", "del", "mc" + subnet));
            for (String b : HostCommand.run("ip", "-o", "link", "show", "type", "bridge").lines().toList()) {
                java.util.regex.Matcher bm = java.util.regex.Pattern.compile("^\\d+:\\s+(dpm" + subnet + "b\\d+):").matcher(b);
                if (bm.find() && HostCommand.run("ip", "-o", "link", "show", "master", bm.group(1)).isBlank()) {
                    HostCommand.tryRun(List.of("ip", "link", "del", bm.group(1)));
                    log.info("multicast-segment={} event=stale-removed host={}", bm.group(1), host.name());
                }
            }
        }
    }

    /** The origin's address on the segment (where page requests go). */
    public InetAddress origin() {
        try {
            return InetAddress.getByName("10.79." + subnet + ".1");
        } catch (UnknownHostException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The group the pages are sent to; one per segment. */
    public InetSocketAddress group() {
        try {
            return new InetSocketAddress(InetAddress.getByName("239.79." + subnet + ".1"), 41000 + subnet);
        } catch (UnknownHostException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The origin's interface on the segment. */
    public String bridge() {
        return bridge;
    }

    @Override
    public void close() {
        for (String l : links) {
            HostCommand.tryRun(List.of("ip", "link", "del", l));
        }
        HostCommand.tryRun(List.of("ip", "link", "del", bridge));
        log.info("multicast-segment={} event=removed", bridge);
    }
}

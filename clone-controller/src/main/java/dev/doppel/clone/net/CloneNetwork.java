package dev.doppel.clone.net;

import dev.doppel.hostnet.NetNamespace;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The isolated L2 network of one fork family: a Linux bridge inside a network namespace the
 * controller creates, with one tap per QEMU process. The namespace has no uplink, so nothing the
 * clones send can leave it. QEMU processes run inside the namespace (their taps live there).
 *
 * <p>A clone's tap stays down until the guest agent has given the clone its own MAC and IP: until
 * then the clone still carries its parent's addresses, and announcing them on the bridge would
 * steal the parent's traffic.
 */
public final class CloneNetwork implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CloneNetwork.class);
    public static final String BRIDGE = "br0";

    private static final AtomicInteger SEGMENTS = new AtomicInteger();

    private final NetNamespace namespace;
    private final AtomicInteger nextTap = new AtomicInteger();
    /** Tap name prefix: segments of several families may share one host namespace. */
    private final String tapPrefix;
    /** True for a family's own namespace (closing deletes it); false for a segment on a shared host. */
    private final boolean ownsNamespace;
    /** The network namespace of a family's clone network (to find one a dead controller left). */
    public static String namespaceOf(String familyName) {
        return "dpf-" + familyName;
    }

    /** A segment's bridge and uplink veth (host side), removed when the segment closes. */
    private final String segmentBridge;
    private final String segmentUplink;

    private CloneNetwork(NetNamespace namespace, String tapPrefix, boolean ownsNamespace, String segmentBridge, String segmentUplink) {
        this.namespace = namespace;
        this.tapPrefix = tapPrefix;
        this.ownsNamespace = ownsNamespace;
        this.segmentBridge = segmentBridge;
        this.segmentUplink = segmentUplink;
    }

    public static CloneNetwork create(String familyName) {
        NetNamespace ns = NetNamespace.create(namespaceOf(familyName));
        try {
            ns.bridge(BRIDGE);
            // Bridge forwards immediately; no STP delay for freshly attached clone ports.
            ns.ip("link", "set", BRIDGE, "type", "bridge", "forward_delay", "0");
        } catch (RuntimeException e) {
            ns.close();
            throw e;
        }
        log.info("netns={} event=clone-network-created", ns.name());
        return new CloneNetwork(ns, "tap", true, null, null);
    }

    /**
     * The clone network a dead controller left (its bridge and its members' taps live on in the
     * kernel). Taps not in {@code tapsInUse} (of processes that were only being prepared) are removed;
     * new taps are numbered after every tap that was there, so none collides with a member's.
     */
    public static CloneNetwork existing(String familyName, java.util.Collection<String> tapsInUse) {
        NetNamespace ns = NetNamespace.existing(namespaceOf(familyName));
        CloneNetwork net = new CloneNetwork(ns, "tap", true, null, null);
        int next = 0;
        for (String line : ns.ip("-o", "link", "show").lines().toList()) {
            // "7: tap3: <BROADCAST,...> mtu ..." (a tap on the bridge: "tap3@..." never, taps have no peer)
            String[] f = line.split(":\\s+", 3);
            if (f.length >= 2 && f[1].matches("tap\\d+")) {
                next = Math.max(next, Integer.parseInt(f[1].substring(3)) + 1);
                if (!tapsInUse.contains(f[1])) {
                    net.removeTap(f[1]);
                }
            }
        }
        net.nextTap.set(next);
        return net;
    }

    /**
     * The family's clone network extended onto another host: a bridge in {@code host}'s namespace,
     * joined to the family's bridge by a veth pair, so clones there share one L2 segment with the
     * parent and the local clones (a bridged segment; across real machines this link would be a
     * VXLAN tunnel). Closing the segment removes its bridge and link, not the host's namespace.
     */
    public static CloneNetwork segment(CloneNetwork family, NetNamespace host) {
        String id = freeSegmentId(host);
        String bridge = "br" + id;
        String hostLink = "up" + id;
        String familyLink = "dn" + id;
        host.bridge(bridge);
        try {
            host.ip("link", "set", bridge, "type", "bridge", "forward_delay", "0");
            host.vethTo(hostLink, family.namespace, familyLink);
            host.ip("link", "set", hostLink, "master", bridge);
            family.namespace.ip("link", "set", familyLink, "master", BRIDGE);
        } catch (RuntimeException e) {
            removeQuietly(host, hostLink);
            removeQuietly(host, bridge);
            throw e;
        }
        log.info("netns={} event=clone-network-segment bridge={} family={}", host.name(), bridge, family.namespace());
        return new CloneNetwork(host, id + "t", false, bridge, hostLink);
    }

    /**
     * The id of a segment no family has on {@code host} yet: a successor controller numbers from 1
     * again while the segments of the families it adopted are still there.
     */
    private static String freeSegmentId(NetNamespace host) {
        java.util.Set<String> used = linkNames(host);
        while (true) {
            String id = "s" + SEGMENTS.incrementAndGet();
            if (!used.contains("br" + id)) {
                return id;
            }
        }
    }

    /**
     * The segment of {@code family} on {@code host} that a dead controller left, found by one of its
     * taps in use ({@code tapInUse}, named after the segment: {@code s3t0} is on segment {@code s3}).
     * Taps of the segment not in {@code tapsInUse} are removed; new taps are numbered after the others.
     */
    public static CloneNetwork existingSegment(NetNamespace host, String tapInUse, java.util.Collection<String> tapsInUse) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(s\\d+)t\\d+").matcher(tapInUse);
        if (!m.matches()) {
            throw new IllegalArgumentException("tap '" + tapInUse + "' is not on a clone-network segment");
        }
        String id = m.group(1);
        java.util.Set<String> links = linkNames(host);
        if (!links.contains("br" + id) || !links.contains("up" + id)) {
            throw new IllegalStateException("clone-network segment " + id + " is gone from " + host.name());
        }
        CloneNetwork net = new CloneNetwork(host, id + "t", false, "br" + id, "up" + id);
        int next = 0;
        for (String link : links) {
            if (link.matches(java.util.regex.Pattern.quote(id) + "t\\d+")) {
                next = Math.max(next, Integer.parseInt(link.substring(id.length() + 1)) + 1);
                if (!tapsInUse.contains(link)) {
                    net.removeTap(link);
                }
            }
        }
        net.nextTap.set(next);
        return net;
    }

    /** The names of the links in a namespace ("7: s1t0: <...>" or "8: ups1@if9: <...>"). */
    private static java.util.Set<String> linkNames(NetNamespace ns) {
        java.util.Set<String> names = new java.util.HashSet<>();
        for (String line : ns.ip("-o", "link", "show").lines().toList()) {
            String[] f = line.split(":\\s+", 3);
            if (f.length >= 2) {
                names.add(f[1].replaceFirst("@.*", ""));
            }
        }
        return names;
    }

    public String namespace() {
        return namespace.name();
    }

    /** Whether this is a segment on another host (not the family's own namespace). */
    public boolean isSegment() {
        return !ownsNamespace;
    }

    public NetNamespace netns() {
        return namespace;
    }

    /** A new tap on the bridge, down (see class comment) unless {@code up}. Names fit IFNAMSIZ. */
    public String newTap(boolean up) {
        String name = tapPrefix + nextTap.getAndIncrement();
        namespace.tap(name, segmentBridge == null ? BRIDGE : segmentBridge, up);
        return name;
    }

    public void tapUp(String tap) {
        namespace.ip("link", "set", tap, "up");
    }

    public void removeTap(String tap) {
        try {
            namespace.ip("link", "del", tap);
        } catch (RuntimeException e) {
            log.debug("netns={} tap={} remove: {}", namespace.name(), tap, e.getMessage());
        }
    }

    @Override
    public void close() {
        if (ownsNamespace) {
            namespace.close();
        } else {
            removeQuietly(namespace, segmentUplink);   // a veth goes with its peer in the family's namespace
            removeQuietly(namespace, segmentBridge);
        }
    }

    private static void removeQuietly(NetNamespace ns, String link) {
        try {
            ns.ip("link", "del", link);
        } catch (RuntimeException e) {
            log.debug("netns={} link={} remove: {}", ns.name(), link, e.getMessage());
        }
    }
}

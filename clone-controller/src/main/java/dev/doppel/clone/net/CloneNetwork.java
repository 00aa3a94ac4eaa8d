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

    private final NetNamespace namespace;
    private final AtomicInteger nextTap = new AtomicInteger();

    private CloneNetwork(NetNamespace namespace) {
        this.namespace = namespace;
    }

    public static CloneNetwork create(String familyName) {
        NetNamespace ns = NetNamespace.create("dpf-" + familyName);
        try {
            ns.bridge(BRIDGE);
            // Bridge forwards immediately; no STP delay for freshly attached clone ports.
            ns.ip("link", "set", BRIDGE, "type", "bridge", "forward_delay", "0");
        } catch (RuntimeException e) {
            ns.close();
            throw e;
        }
        log.info("netns={} event=clone-network-created", ns.name());
        return new CloneNetwork(ns);
    }

    public String namespace() {
        return namespace.name();
    }

    public NetNamespace netns() {
        return namespace;
    }

    /** A new tap on the bridge, down (see class comment) unless {@code up}. Names fit IFNAMSIZ. */
    public String newTap(boolean up) {
        String name = "tap" + nextTap.getAndIncrement();
        namespace.tap(name, BRIDGE, up);
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
        namespace.close();
    }
}

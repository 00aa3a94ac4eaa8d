package dev.doppel.vm;

import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * A virtio-net NIC with a fixed MAC and PCI slot on one netdev backend.
 *
 * @param id      netdev id, e.g. {@code net0}; the device is {@code nic-<id>}
 * @param mac     the MAC address (the Remus backup and every clone derive theirs from it)
 * @param backend the host side of the link
 * @param pciSlot the virtio-net-pci slot
 */
public record NicSpec(String id, String mac, Netdev backend, int pciSlot) {
    private static final Pattern MAC = Pattern.compile("([0-9a-f]{2}:){5}[0-9a-f]{2}");

    public NicSpec {
        mac = mac.toLowerCase(Locale.ROOT);
        if (!MAC.matcher(mac).matches()) {
            throw new IllegalArgumentException("bad MAC address '" + mac + "'");
        }
        PciSlots.check(pciSlot);
    }

    public String deviceId() {
        return "nic-" + id;
    }

    /** The host side of a NIC. */
    public sealed interface Netdev {
        /** An existing tap device (created by the controller, e.g. in a bridge inside a namespace). */
        record Tap(String ifname) implements Netdev {
        }

        /**
         * QEMU's user-mode network (SLIRP); for demos and tests that need no host bridge. Each
         * forward is QEMU's {@code hostfwd} syntax, e.g. {@code tcp:127.0.0.1:15432-:5432}.
         */
        record User(List<String> hostForwards) implements Netdev {
            private static final Pattern FORWARD = Pattern.compile("(tcp|udp):[0-9.]*:[0-9]+-[0-9.]*:[0-9]+");

            public User {
                hostForwards = List.copyOf(hostForwards);
                for (String f : hostForwards) {
                    if (!FORWARD.matcher(f).matches()) {
                        throw new IllegalArgumentException("bad forward '" + f + "' (want e.g. tcp:127.0.0.1:15432-:5432)");
                    }
                }
            }

            public User() {
                this(List.of());
            }
        }

        /** A unix stream socket carrying ethernet frames (QEMU "stream" netdev); server or client side. */
        record UnixStream(java.nio.file.Path socket, boolean server) implements Netdev {
        }
    }

    String netdevArgument() {
        if (backend instanceof Netdev.Tap t) {
            return "tap,id=" + id + ",ifname=" + t.ifname() + ",script=no,downscript=no";
        }
        if (backend instanceof Netdev.UnixStream s) {
            return "{\"type\":\"stream\",\"id\":\"" + id + "\",\"server\":" + s.server()
                    + ",\"addr\":{\"type\":\"unix\",\"path\":" + JsonText.quote(s.socket().toString()) + "}}";
        }
        StringBuilder user = new StringBuilder("user,id=" + id);
        if (backend instanceof Netdev.User u) {
            u.hostForwards().forEach(f -> user.append(",hostfwd=").append(f));
        }
        return user.toString();
    }

    String deviceArgument() {
        return "virtio-net-pci,id=" + deviceId() + ",netdev=" + id + ",mac=" + mac + ",addr=" + PciSlots.hex(pciSlot);
    }
}

package dev.doppel.clone.identity;

import dev.doppel.vm.qga.QgaClient;
import dev.doppel.vm.qga.QgaException;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives a VM of a fork family that runs a stock distribution — {@code qemu-guest-agent} inside, no
 * Doppel agent — its own identity through the standard QEMU guest agent, one step per guest command:
 * <ol>
 *   <li>{@code clock}: {@code guest-set-time} to the host's time (the clone was paused and started
 *       from a snapshot);</li>
 *   <li>{@code rng}: host random bytes written to {@code /dev/urandom} (they go into the kernel's
 *       input pool, uncredited) and then the {@code RNDRESEEDCRNG} ioctl, so the kernel's CRNG is
 *       rekeyed from that pool at once; without it every clone would go on with the parent's CRNG
 *       state and hand out the same "random" bytes (the Debian cloud kernel has no vmgenid driver);</li>
 *   <li>{@code hostname}: {@code /etc/hostname}, {@code /etc/hosts}' 127.0.1.1 line, {@code hostname};</li>
 *   <li>{@code network}: the NIC that still carries the parent's MAC (found with
 *       {@code guest-network-get-interfaces}) gets the clone's MAC and only the clone's IPv4 address,
 *       set by hand with {@code ip}; read back to check nothing in the guest took it away;</li>
 *   <li>{@code ssh-host-keys}: every host key type the guest had is made anew (after the reseed, so
 *       the keys come from the clone's own randomness), and a running sshd is restarted.</li>
 * </ol>
 * Why addresses by {@code ip} through the agent rather than a DHCP server on the clone network: the
 * clone's tap stays down until its identity is set (until then it answers with the parent's MAC and
 * IP), and DHCP would need the tap up first; the address is known before the clone's first frame,
 * no daemon runs per family, and it works whatever DHCP client the guest has (or none).
 *
 * <p>Each step logs a progress line; a failed step throws {@link CloneIdentityException} naming the
 * parent, the clone, the step and the agent's answer.
 */
public final class QgaCloneIdentity {
    private static final Logger log = LoggerFactory.getLogger(QgaCloneIdentity.class);
    private static final Duration STEP_TIMEOUT = Duration.ofSeconds(60);
    /** {@code RNDRESEEDCRNG} from linux/random.h: _IO('R', 0x07). */
    private static final String RESEED_SCRIPT = "binmode STDIN; local $/; my $d = <STDIN>;"
            + " open(my $f, '>', '/dev/urandom') or die \"open /dev/urandom: $!\\n\";"
            + " defined(syswrite($f, $d)) or die \"write /dev/urandom: $!\\n\";"
            + " ioctl($f, 0x5207, 0) or die \"RNDRESEEDCRNG: $!\\n\";";
    private static final String HOSTNAME_SCRIPT = "set -e; printf '%s\\n' \"$1\" > /etc/hostname;"
            + " if grep -q '^127\\.0\\.1\\.1' /etc/hosts; then sed -i \"s/^127\\.0\\.1\\.1.*/127.0.1.1\\t$1/\" /etc/hosts;"
            + " else printf '127.0.1.1\\t%s\\n' \"$1\" >> /etc/hosts; fi; hostname \"$1\"";
    private static final String NETWORK_SCRIPT = "set -e; ip link set dev \"$1\" address \"$2\";"
            + " ip -4 addr flush dev \"$1\"; ip addr add \"$3\" dev \"$1\"; ip link set dev \"$1\" up";
    private static final String SSH_KEYS_SCRIPT = "set -e; n=0;"
            + " for k in /etc/ssh/ssh_host_*_key; do [ -e \"$k\" ] || continue;"
            + " t=${k#/etc/ssh/ssh_host_}; t=${t%_key}; rm -f \"$k\" \"$k.pub\";"
            + " ssh-keygen -q -N '' -t \"$t\" -f \"$k\"; n=$((n+1)); done;"
            + " if [ \"$n\" = 0 ] && [ -d /etc/ssh ]; then ssh-keygen -A; fi;"
            + " if command -v systemctl >/dev/null; then systemctl try-restart ssh.service sshd.service 2>/dev/null || true; fi;"
            + " for p in /etc/ssh/ssh_host_*_key.pub; do [ -e \"$p\" ] && ssh-keygen -lf \"$p\"; done; true";

    /**
     * Who gets which identity.
     *
     * @param parent   the VM the clone was forked from (errors and logs)
     * @param vm       the clone
     * @param hostname its new host name
     * @param oldMac   the MAC its NIC still has from the parent
     * @param mac      its own MAC
     * @param cidr     its own IPv4 address with prefix
     */
    public record Target(String parent, String vm, String hostname, String oldMac, String mac, String cidr) {
    }

    /** How long each step took, in step order, ms. */
    public record Timings(Map<String, Double> stepMs) {
        public double totalMs() {
            return stepMs.values().stream().mapToDouble(Double::doubleValue).sum();
        }
    }

    private QgaCloneIdentity() {
    }

    /**
     * Gives {@code t.vm()} its own clock, RNG state, host name, addresses and SSH host keys.
     * {@code entropy} are fresh host random bytes (32 or more), used for this clone only.
     *
     * @throws CloneIdentityException at the first step that fails
     */
    public static Timings applyToClone(QgaClient qga, Target t, byte[] entropy) {
        Map<String, Double> ms = new LinkedHashMap<>();
        step(t, "clock", ms, () -> qga.setTime(Instant.now()));
        step(t, "rng", ms, () -> check(t, "rng", qga.runWithInput(STEP_TIMEOUT, entropy, "/usr/bin/perl", "-e", RESEED_SCRIPT)));
        step(t, "hostname", ms, () -> check(t, "hostname", qga.run(STEP_TIMEOUT, "/bin/sh", "-c", HOSTNAME_SCRIPT, "sh", t.hostname())));
        step(t, "network", ms, () -> moveNic(qga, t));
        step(t, "ssh-host-keys", ms, () -> {
            QgaClient.ExecStatus s = check(t, "ssh-host-keys", qga.run(STEP_TIMEOUT, "/bin/sh", "-c", SSH_KEYS_SCRIPT));
            log.debug("vm={} clone={} ssh host keys: {}", t.parent(), t.vm(), s.stdout().strip().replace('\n', ';'));
        });
        return new Timings(ms);
    }

    /**
     * A family's first VM boots with its own MAC (QEMU's) but, with no DHCP server on the isolated clone
     * network, without an address there: this gives its NIC (the one with {@code t.mac()}) {@code t.cidr()}.
     *
     * @throws CloneIdentityException if the NIC is missing or the address did not stick
     */
    public static Timings applyAddress(QgaClient qga, Target t) {
        Map<String, Double> ms = new LinkedHashMap<>();
        step(t, "network", ms, () -> moveNic(qga, t));
        return new Timings(ms);
    }

    private static void moveNic(QgaClient qga, Target t) throws QgaException {
        String nic = nicWithMac(qga, t, t.oldMac());
        check(t, "network", qga.run(STEP_TIMEOUT, "/bin/sh", "-c", NETWORK_SCRIPT, "sh", nic, t.mac(), t.cidr()));
        String ip = t.cidr().substring(0, t.cidr().indexOf('/'));
        QgaClient.NetworkInterface after = qga.networkInterfaces().stream().filter(n -> n.name().equals(nic)).findFirst()
                .orElseThrow(() -> new CloneIdentityException(t.parent(), t.vm(), "network", nic + " vanished"));
        boolean ok = t.mac().equalsIgnoreCase(after.mac()) && after.addresses().stream().anyMatch(a -> a.address().equals(ip))
                && after.addresses().stream().filter(a -> a.type().equals("ipv4")).count() == 1;
        if (!ok) {
            throw new CloneIdentityException(t.parent(), t.vm(), "network", "read back " + after + ", want only "
                    + t.cidr() + " with MAC " + t.mac());
        }
    }

    private static String nicWithMac(QgaClient qga, Target t, String mac) throws QgaException {
        List<QgaClient.NetworkInterface> all = qga.networkInterfaces();
        return all.stream().filter(n -> mac.equalsIgnoreCase(n.mac())).map(QgaClient.NetworkInterface::name).findFirst()
                .orElseThrow(() -> new CloneIdentityException(t.parent(), t.vm(), "network",
                        "no NIC with MAC " + mac + " in the guest (" + all.stream().map(n -> n.name() + "=" + n.mac()).toList() + ")"));
    }

    private static QgaClient.ExecStatus check(Target t, String step, QgaClient.ExecStatus s) {
        if (!s.succeeded()) {
            String why = s.signal() != null ? "killed by signal " + s.signal() : "exit " + s.exitCode();
            throw new CloneIdentityException(t.parent(), t.vm(), step, why + ": " + s.stderr().strip());
        }
        return s;
    }

    private interface Step {
        void run() throws QgaException;
    }

    private static void step(Target t, String name, Map<String, Double> ms, Step body) {
        long t0 = System.nanoTime();
        try {
            body.run();
        } catch (QgaException e) {
            throw new CloneIdentityException(t.parent(), t.vm(), name, e);
        }
        double took = (System.nanoTime() - t0) / 1e6;
        ms.put(name, took);
        log.info("vm={} clone={} event=identity-step step={} ms={}", t.parent(), t.vm(), name, String.format(Locale.ROOT, "%.0f", took));
    }
}

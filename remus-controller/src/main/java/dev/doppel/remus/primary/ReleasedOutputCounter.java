package dev.doppel.remus.primary;

import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How much held output each commit released, measured by the kernel rather than by Doppel: the
 * receive counters of the NICs' tap devices. Every frame a tap receives from QEMU has passed the
 * {@link OutputHold} (the filter sits in front of the tap), and the hold lets frames through only at a
 * release, so the counters' growth from one commit to the next is exactly what that epoch held.
 *
 * <p>QEMU's {@code filter-buffer} has no queue length to ask for (QEMU 10.0, {@code net/filter-buffer.c}),
 * hence the taps. Their names come from QEMU ({@code info network}: {@code ifname=} of each held netdev);
 * their counters from {@code /proc/<qemu pid>/net/dev}, which shows the network namespace QEMU runs in.
 * Backends that are not taps (user networking, sockets) are not counted.
 */
final class ReleasedOutputCounter {
    private static final Logger log = LoggerFactory.getLogger(ReleasedOutputCounter.class);
    /** {@code info network} lines such as {@code n0: index=0,type=tap,ifname=tap0,...} (indented under their NIC). */
    private static final Pattern TAP_LINE = Pattern.compile("(?m)^[\\s\\\\]*([^:\\s]+): index=\\d+,type=tap,ifname=([^,\\s]+)");

    /** Frames and bytes released since the previous sample. */
    record Released(long frames, long bytes) {
    }

    private final String vm;
    private final Path procNetDev;
    private final List<String> taps;
    private long frames = -1;
    private long bytes = -1;

    private ReleasedOutputCounter(String vm, Path procNetDev, List<String> taps) {
        this.vm = vm;
        this.procNetDev = procNetDev;
        this.taps = taps;
    }

    /**
     * A counter over the taps of {@code netdevs}, or null when none of them is a tap or QEMU's pid is
     * unknown (the release is then not measured; holding is unaffected).
     */
    static ReleasedOutputCounter of(String vm, QmpClient qmp, long qemuPid, List<String> netdevs) {
        if (qemuPid <= 0) {
            return null;
        }
        String network;
        try {
            network = qmp.execute("human-monitor-command", Map.of("command-line", "info network"), Duration.ofSeconds(2)).asText();
        } catch (QmpException e) {
            log.warn("vm={} event=output-counter-unavailable cause=\"{}\"", vm, e.getMessage());
            return null;
        }
        Map<String, String> tapOf = tapsByNetdev(network);
        List<String> taps = netdevs.stream().filter(tapOf::containsKey).map(tapOf::get).toList();
        if (taps.isEmpty()) {
            log.info("vm={} event=output-counter-unavailable cause=\"no held netdev is a tap\" netdevs={}", vm, netdevs);
            return null;
        }
        ReleasedOutputCounter c = new ReleasedOutputCounter(vm, Path.of("/proc", Long.toString(qemuPid), "net", "dev"), taps);
        c.sample();   // the baseline: what passed before the hold began is not counted
        return c;
    }

    /** netdev id → tap interface name, from QEMU's {@code info network}. */
    static Map<String, String> tapsByNetdev(String infoNetwork) {
        Map<String, String> out = new HashMap<>();
        Matcher m = TAP_LINE.matcher(infoNetwork);
        while (m.find()) {
            out.put(m.group(1), m.group(2));
        }
        return out;
    }

    /** What the taps received since the previous call; null when the counters cannot be read (QEMU gone). */
    synchronized Released sample() {
        Map<String, long[]> counters;
        try {
            counters = receiveCounters(Files.readAllLines(procNetDev));
        } catch (IOException e) {
            return null;
        }
        long f = 0;
        long b = 0;
        for (String tap : taps) {
            long[] c = counters.get(tap);
            if (c != null) {
                b += c[0];
                f += c[1];
            }
        }
        Released r = frames < 0 ? new Released(0, 0) : new Released(Math.max(0, f - frames), Math.max(0, b - bytes));
        frames = f;
        bytes = b;
        return r;
    }

    /** interface → {rx bytes, rx packets}, from the lines of {@code /proc/net/dev}. */
    static Map<String, long[]> receiveCounters(List<String> procNetDev) {
        Map<String, long[]> out = new HashMap<>();
        for (String line : procNetDev) {
            int colon = line.indexOf(':');
            if (colon < 0 || line.startsWith("Inter-") || line.trim().startsWith("face")) {
                continue;
            }
            String[] f = line.substring(colon + 1).trim().split("\\s+");
            if (f.length >= 2) {
                out.put(line.substring(0, colon).trim(), new long[] {Long.parseLong(f[0]), Long.parseLong(f[1])});
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return vm + " taps " + taps;
    }
}

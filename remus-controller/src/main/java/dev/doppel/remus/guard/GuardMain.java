package dev.doppel.remus.guard;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Entry point of a guard process ({@link GuardProcess} builds this command line):
 * {@code --vm NAME --qemu-pid PID --holder NAME --socket PATH --dead-man-log PATH (--coordinator HOST:PORT,... | --embed HOST:PORT --zk-dir DIR) [--tls HOST_PKI_DIR]
 * [--session-ms N] [--claim-wait-ms N] [--verdict-wait-ms N]}. Exits 0 when released or when its QEMU is gone, 2 when it
 * could not take the lease (the reason is its last log line).
 */
public final class GuardMain {
    private GuardMain() {
    }

    public static void main(String[] args) throws Exception {
        VmGuard.Config config;
        try {
            config = parse(List.of(args));
        } catch (IllegalArgumentException e) {
            System.err.println("doppel guard: " + e.getMessage());
            System.exit(64);
            return;
        }
        VmGuard guard;
        try {
            guard = VmGuard.start(config);
        } catch (Exception e) {
            System.err.println("doppel guard: VM '" + config.vm() + "': cannot guard: " + e.getMessage());
            System.exit(2);
            return;
        }
        guard.awaitEnd();
        System.exit(0);
    }

    static VmGuard.Config parse(List<String> args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String key = args.get(i);
            if (!key.startsWith("--") || i + 1 >= args.size()) {
                throw new IllegalArgumentException("expected --option value, got '" + key + "'");
            }
            opts.put(key.substring(2), args.get(++i));
        }
        String vm = required(opts, "vm");
        String coordinator = opts.get("coordinator");
        String embed = opts.get("embed");
        if ((coordinator == null) == (embed == null)) {
            throw new IllegalArgumentException("give exactly one of --coordinator and --embed");
        }
        InetSocketAddress embedAt = null;
        if (embed != null) {
            int colon = embed.lastIndexOf(':');
            embedAt = new InetSocketAddress(embed.substring(0, colon), Integer.parseInt(embed.substring(colon + 1)));
        }
        return new VmGuard.Config(vm, Long.parseLong(required(opts, "qemu-pid")), required(opts, "holder"),
                Path.of(required(opts, "socket")), Path.of(required(opts, "dead-man-log")), coordinator, embedAt,
                opts.containsKey("tls") ? Path.of(opts.get("tls")) : null,
                embed == null ? null : Path.of(required(opts, "zk-dir")),
                Duration.ofMillis(Long.parseLong(opts.getOrDefault("session-ms", "2000"))),
                Duration.ofMillis(Long.parseLong(opts.getOrDefault("claim-wait-ms", "10000"))),
                Duration.ofMillis(Long.parseLong(opts.getOrDefault("verdict-wait-ms", "0"))));
    }

    private static String required(Map<String, String> opts, String key) {
        String v = opts.get(key);
        if (v == null) {
            throw new IllegalArgumentException("--" + key + " is required");
        }
        return v;
    }
}

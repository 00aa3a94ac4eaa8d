package dev.doppel.clone.identity;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.NetNamespace;
import dev.doppel.vm.qga.QgaClient;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * What a VM's identity looks like from outside, read with stock clients from a host address on the
 * family's clone network (inside its namespace) and through the guest agent: host name, the first
 * bytes of {@code /dev/urandom}, the SSH host key {@code ssh-keyscan} is shown, and whether Debian's
 * {@code psql} gets an answer on an address. Used by the real-guest fork test and {@code bench fork-real}.
 */
public final class IdentityProbe {
    private IdentityProbe() {
    }

    /** The first 32 bytes of the guest's /dev/urandom, hex. */
    public static String urandom32(QgaClient qga) throws IOException {
        QgaClient.ExecStatus s = qga.run(Duration.ofSeconds(60), "/bin/sh", "-c", "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'");
        if (!s.succeeded() || s.stdout().length() != 64) {
            throw new IOException("reading /dev/urandom: " + s.stderr() + s.stdout());
        }
        return s.stdout();
    }

    /** The ed25519 host key sshd on {@code ip} presents, as ssh-keyscan prints it (type and base64). */
    public static String sshKey(NetNamespace ns, String ip) throws IOException, InterruptedException {
        String last = "";
        for (int attempt = 0; attempt < 10; attempt++) {
            Result res = inNamespace(ns, Map.of(), "ssh-keyscan", "-T", "15", "-t", "ed25519", ip);
            for (String line : res.out().split("\n")) {
                if (line.startsWith(ip + " ssh-ed25519 ")) {
                    return line.substring(ip.length() + 1).strip();
                }
            }
            last = res.out();
            Thread.sleep(1000);
        }
        throw new IOException("ssh-keyscan " + ip + " got no ed25519 key: " + last);
    }

    /** Debian's psql (user, database, password {@code doppel}) to {@code ip}; IOException if it fails. */
    public static String psql(NetNamespace ns, String ip, String sql) throws IOException, InterruptedException {
        Result res = inNamespace(ns, Map.of("PGPASSWORD", "doppel", "PGCONNECT_TIMEOUT", "10"),
                "psql", "-h", ip, "-U", "doppel", "-d", "doppel", "-v", "ON_ERROR_STOP=1", "-Atqc", sql);
        if (res.exit() != 0) {
            throw new IOException("psql " + ip + " exit " + res.exit() + ": " + res.out());
        }
        return res.out();
    }

    /** Waits until psql gets an answer from {@code ip}. */
    public static void awaitPsql(NetNamespace ns, String ip, Duration timeout) throws IOException, InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        String last = "";
        while (System.nanoTime() < end) {
            try {
                if (psql(ns, ip, "select 1").strip().equals("1")) {
                    return;
                }
            } catch (IOException notYet) {
                last = notYet.getMessage();
            }
            Thread.sleep(250);
        }
        throw new IOException("PostgreSQL at " + ip + " did not answer psql within " + timeout + ": " + last);
    }

    private record Result(int exit, String out) {
    }

    private static Result inNamespace(NetNamespace ns, Map<String, String> env, String... argv) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(HostCommand.inNamespace(ns.name(), List.of(argv))).redirectErrorStream(true);
        pb.environment().putAll(env);
        Process p = pb.start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Result(-1, String.join(" ", argv) + " hung");
        }
        return new Result(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
    }
}

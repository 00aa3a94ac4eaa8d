package dev.doppel.cli.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Debian's stock {@code psql} (and {@code pgbench}) against the real guest's PostgreSQL (user, database
 * and password {@code doppel}), through a forwarded host port: the client, and the oracle, of the
 * real-guest tests and of {@code bench remus-pg}.
 */
public final class Psql {
    private Psql() {
    }

    /** Runs {@code sql} in one connection; its unaligned output, or IOException if psql failed. */
    public static String run(int port, String sql) throws IOException, InterruptedException {
        return psql(port, sql, "-Atqc");
    }

    /** Like {@link #run}, but with PostgreSQL's command tags printed (e.g. "INSERT 0 1": the commit's acknowledgement). */
    public static String runEcho(int port, String sql) throws IOException, InterruptedException {
        return psql(port, sql, "-Atc");
    }

    private static String psql(int port, String sql, String flags) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("psql", "-h", "127.0.0.1", "-p", Integer.toString(port),
                "-U", "doppel", "-d", "doppel", "-v", "ON_ERROR_STOP=1", flags, sql).redirectErrorStream(true);
        pb.environment().put("PGPASSWORD", "doppel");
        pb.environment().put("PGCONNECT_TIMEOUT", "5");
        Process p = pb.start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("psql hung: " + sql);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IOException("psql exit " + p.exitValue() + ": " + out.strip());
        }
        return out;
    }

    /** Waits until PostgreSQL answers a query. */
    public static void awaitReady(int port, Duration timeout) throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        IOException last = null;
        while (System.nanoTime() < end) {
            try {
                run(port, "select 1");
                return;
            } catch (IOException e) {
                last = e;
            }
            Thread.sleep(500);
        }
        throw new IllegalStateException("PostgreSQL on port " + port + " did not answer within " + timeout, last);
    }

    /**
     * {@code pgbench} (TPC-B-like, {@code clients} connections) for {@code seconds}; returns PostgreSQL's
     * transactions per second as pgbench reports them (without the initial connection time).
     */
    public static double pgbench(int port, int clients, int seconds) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("pgbench", "-h", "127.0.0.1", "-p", Integer.toString(port), "-U", "doppel",
                "-n", "-c", Integer.toString(clients), "-j", "1", "-T", Integer.toString(seconds), "doppel").redirectErrorStream(true);
        pb.environment().put("PGPASSWORD", "doppel");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(seconds + 120L, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IOException("pgbench failed: " + out.strip());
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("tps = ([0-9.]+) \\(without initial connection time\\)").matcher(out);
        if (!m.find()) {
            throw new IOException("no tps in pgbench's output: " + out.strip());
        }
        return Double.parseDouble(m.group(1));
    }

    /** {@code pgbench -i}: its tables at scale 1. */
    public static void pgbenchInit(int port) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("pgbench", "-h", "127.0.0.1", "-p", Integer.toString(port), "-U", "doppel", "-i",
                "-q", "-s", "1", "doppel").redirectErrorStream(true);
        pb.environment().put("PGPASSWORD", "doppel");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IOException("pgbench -i failed: " + out.strip());
        }
    }
}

package dev.doppel.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Debian's stock {@code psql} against the real guest's PostgreSQL (user, database and password
 * {@code doppel}), through a forwarded host port: the client, and the oracle, of the real-guest tests.
 */
final class Psql {
    private Psql() {
    }

    /** Runs {@code sql} in one connection; its unaligned output, or IOException if psql failed. */
    static String run(int port, String sql) throws IOException, InterruptedException {
        return psql(port, sql, "-Atqc");
    }

    /** Like {@link #run}, but with PostgreSQL's command tags printed (e.g. "INSERT 0 1": the commit's acknowledgement). */
    static String runEcho(int port, String sql) throws IOException, InterruptedException {
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
    static void awaitReady(int port, Duration timeout) throws InterruptedException {
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
        throw new AssertionError("PostgreSQL did not answer within " + timeout, last);
    }
}

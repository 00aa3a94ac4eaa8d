package dev.doppel.cli.bench;

import java.io.IOException;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A client that commits one insert per psql connection (autocommit), as fast as it is answered, and
 * records each commit PostgreSQL acknowledged: psql printed "INSERT 0 1" and exited 0. A failed one is
 * retried with a new id (its row may or may not exist; only acknowledged ones are checked). New
 * connections each time: after a failover it simply reconnects.
 */
public final class PsqlInserter implements AutoCloseable {
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Thread thread;
    private volatile String lastError = "";

    public PsqlInserter(int port, String table, AtomicInteger nextId, Set<Integer> acknowledged) {
        thread = new Thread(() -> {
            while (running.get()) {
                int id = nextId.incrementAndGet();
                try {
                    String out = Psql.runEcho(port, "insert into " + table + "(id) values (" + id + ")");
                    if (out.contains("INSERT 0 1")) {
                        acknowledged.add(id);
                    }
                } catch (IOException e) {
                    lastError = e.getMessage();
                    pause();
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "psql-inserter");
        thread.setDaemon(true);
        thread.start();
    }

    /** The last failure (a refused or cut connection while the VM failed over), for messages. */
    public String lastError() {
        return lastError;
    }

    private static void pause() {
        try {
            Thread.sleep(200);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() throws InterruptedException {
        running.set(false);
        thread.join(120_000);
    }
}

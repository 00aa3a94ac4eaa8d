package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.cli.bench.Psql;
import dev.doppel.cli.bench.PsqlInserter;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The user's own VM under Remus: the real Debian guest with PostgreSQL (scripts/build-real-guest),
 * started with {@code vm start --image}, protected with {@code protect}, and judged by Debian's stock
 * {@code psql} on the host, which inserts rows one committed transaction per connection and records
 * every commit PostgreSQL acknowledged. Five rounds: kill -9 of the primary QEMU at a random moment,
 * failover, and the restored VM protected again to the other backup service for the next round. After
 * each failover: every acknowledged row is in the table, PostgreSQL was never restarted (its postmaster
 * start time is the one from the first boot), and the client reconnected (its connections end in the
 * dead QEMU's user-mode network) and committed again.
 */
@Tag("integration")
@Timeout(1800)
class RealGuestRemusIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(RealGuestRemusIntegrationTest.class);
    private static final Pattern CHECKPOINTING = Pattern.compile("PROTECTED\\s+checkpoints=[1-9]");
    private static final Pattern FAILOVER = Pattern.compile("event=failover-done failover_ms=([0-9.]+)");
    private static final int ROUNDS = Integer.getInteger("doppel.pg.rounds", 5);
    private HaHosts hosts;

    @AfterEach
    void stopAll() throws Exception {
        if (hosts != null) {
            hosts.close();
        }
    }

    @Test
    void everyAcknowledgedCommitSurvivesKill9OfThePrimaryRoundAfterRound() throws Exception {
        Path image = ImageVmProtectIntegrationTest.realGuestImage();
        hosts = new HaHosts("pg");
        int pgPort = HaHosts.freePort();
        String forward = "tcp:127.0.0.1:" + pgPort + "-:5432";
        int[] backupPorts = {HaHosts.freePort(), HaHosts.freePort()};
        List<CliChild> backups = List.of(hosts.backup(backupPorts[0], "--forward", forward),
                hosts.backup(backupPorts[1], "--forward", forward));

        String vm = "pg" + ProcessHandle.current().pid();
        hosts.vm(vm);
        CliChild.run(Duration.ofSeconds(600), "vm", "start", vm, "--image", image.toString(), "--mem", "512M", "--colo", "--user-net",
                "--forward", forward, "--wait-ready");
        Psql.awaitReady(pgPort, Duration.ofSeconds(180));
        Psql.run(pgPort, "create table acked(id int primary key, at timestamptz default now())");
        String postmasterStart = Psql.run(pgPort, "select pg_postmaster_start_time()").strip();

        Set<Integer> acknowledged = new ConcurrentSkipListSet<>();
        AtomicInteger nextId = new AtomicInteger();
        Random random = new Random();
        List<Double> failoverMs = new ArrayList<>();
        for (int round = 0; round < ROUNDS; round++) {
            int to = backupPorts[round % 2];
            CliChild backup = backups.get(round % 2);
            CliChild protect = hosts.protect(vm, to, 50);
            protect.awaitLine(CHECKPOINTING, Duration.ofSeconds(600));
            long failoversBefore = backup.count(FAILOVER);

            try (PsqlInserter inserter = new PsqlInserter(pgPort, "acked", nextId, acknowledged)) {
                int ackedBefore = acknowledged.size();
                Thread.sleep(2000 + random.nextInt(4000));
                long qemuPid = VmRecord.readFrom(VmRunDir.of(vm)).pid();
                ProcessHandle.of(qemuPid).orElseThrow().destroyForcibly();
                int ackedAtKill = acknowledged.size();
                backup.awaitCount(FAILOVER, failoversBefore + 1, Duration.ofSeconds(120));
                vm = vm + "-bk";   // the backup service's name for it: the dead primary's run directory is still here
                hosts.vm(vm);
                // The client reconnects to the same address (the backup's copy has the same forward) and commits again.
                long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
                while (acknowledged.size() < ackedAtKill + 5 && System.nanoTime() < deadline) {
                    Thread.sleep(200);
                }
                assertTrue(acknowledged.size() >= ackedAtKill + 5, "round " + round + ": no commits after the failover: "
                        + inserter.lastError());
                assertTrue(ackedAtKill > ackedBefore, "round " + round + ": nothing committed while protected: " + inserter.lastError());
            }
            Set<Integer> inTable = new TreeSet<>();
            for (String line : Psql.run(pgPort, "select id from acked").split("\n")) {
                if (!line.isBlank()) {
                    inTable.add(Integer.parseInt(line.strip()));
                }
            }
            List<Integer> lost = acknowledged.stream().filter(id -> !inTable.contains(id)).toList();
            assertEquals(List.of(), lost, "round " + round + ": acknowledged commits missing after the failover");
            assertEquals(postmasterStart, Psql.run(pgPort, "select pg_postmaster_start_time()").strip(),
                    "round " + round + ": PostgreSQL was restarted");
            Matcher m = FAILOVER.matcher(backup.last(FAILOVER));
            failoverMs.add(m.find() ? Double.parseDouble(m.group(1)) : Double.NaN);
            log.info("round {}: {} commits acknowledged so far, all in the table; failover {} ms; now {}", round, acknowledged.size(),
                    failoverMs.get(failoverMs.size() - 1), vm);
        }
        log.info("{} kill -9 rounds: {} acknowledged commits, 0 lost, failover ms {}", ROUNDS, acknowledged.size(), failoverMs);
    }
}

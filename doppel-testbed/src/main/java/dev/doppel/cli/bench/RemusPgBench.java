package dev.doppel.cli.bench;

import dev.doppel.hostnet.HostCommand;
import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.fencing.EmbeddedCoordinator;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bench remus-pg}: the user's kind of VM under Remus, measured with PostgreSQL's own tools. The
 * real Debian guest ({@code scripts/build-real-guest}) is started with {@code vm start --image}, and every
 * step runs as the separate CLI processes an operator would run ({@code backup serve} ×2, {@code protect};
 * TLS, a ZooKeeper server in this process). pgbench measures transactions per second unprotected and
 * protected in the same run; then kill -9 rounds: psql commits one row per connection while the primary
 * QEMU is killed at a random moment, and after each failover every acknowledged commit must be in the
 * table and PostgreSQL must not have restarted; the restored VM is protected again to the other backup
 * service for the next round.
 */
@Command(name = "remus-pg", description = "PostgreSQL in the real guest under Remus: pgbench tps protected vs not, kill -9 rounds with psql commits.")
public final class RemusPgBench implements Callable<Integer> {
    private static final Pattern CHECKPOINTING = Pattern.compile("PROTECTED\\s+checkpoints=[1-9]");
    private static final Pattern FAILOVER = Pattern.compile("event=failover-done failover_ms=([0-9.]+)");

    @Option(names = "--kills", defaultValue = "5", description = "kill -9 rounds (default ${DEFAULT-VALUE})") int kills;
    @Option(names = "--seconds", defaultValue = "20", description = "seconds per pgbench phase (default ${DEFAULT-VALUE})") int seconds;
    @Option(names = "--interval", defaultValue = "50", description = "checkpoint interval in ms (default ${DEFAULT-VALUE})") int intervalMs;
    @Option(names = "--mem", defaultValue = "512M", description = "guest memory (default ${DEFAULT-VALUE})") String mem;
    @Option(names = "--image", description = "the guest disk (default: the real guest scripts/build-real-guest built)") Path image;

    private final List<AutoCloseable> owned = new ArrayList<>();
    private final List<String> vms = new ArrayList<>();
    private Path work;

    @Override
    public Integer call() throws Exception {
        Path disk = dev.doppel.vm.RealGuestDisk.require(image);
        Thread cleanup = new Thread(this::cleanUp, "remus-pg-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);   // Ctrl-C or kill: no VM, child or file left
        try {
            return run(disk);
        } finally {
            cleanUp();
            Runtime.getRuntime().removeShutdownHook(cleanup);
        }
    }

    private int run(Path disk) throws Exception {
        work = Files.createTempDirectory(Path.of("/dev/shm"), "doppel-bench-pg-");
        Pki.init(work.resolve("pki"), "bench remus-pg CA");
        String tls = Pki.issue(work.resolve("pki"), "127.0.0.1").toString();
        EmbeddedCoordinator zk = own(EmbeddedCoordinator.standalone(new InetSocketAddress("127.0.0.1", 0), work.resolve("zk"),
                HostSockets.LOCAL, PeerTls.load(Path.of(tls))));
        int pgPort = freePort();
        String forward = "tcp:127.0.0.1:" + pgPort + "-:5432";
        String vm = "rpg" + ProcessHandle.current().pid();
        vms.add(vm);

        progress("booting " + disk + " (" + mem + ", TCG if no usable KVM) until PostgreSQL answers");
        long t0 = System.nanoTime();
        CliChild.run(Duration.ofMinutes(10), "vm", "start", vm, "--image", disk.toString(), "--mem", mem, "--colo", "--user-net",
                "--forward", forward, "--wait-ready");
        Psql.awaitReady(pgPort, Duration.ofMinutes(3));
        double bootS = (System.nanoTime() - t0) / 1e9;
        Psql.pgbenchInit(pgPort);
        Psql.run(pgPort, "create table acked(id int primary key)");
        String postmasterStart = Psql.run(pgPort, "select pg_postmaster_start_time()").strip();

        progress("pgbench, unprotected, " + seconds + " s");
        double tpsPlain = Psql.pgbench(pgPort, 2, seconds);
        int[] ports = {freePort(), freePort()};
        List<CliChild> backups = new ArrayList<>();
        for (int port : ports) {
            backups.add(own(CliChild.start("backup", "serve", "--listen", "127.0.0.1:" + port, "--store",
                    Files.createDirectories(work.resolve("store-" + port)).toString(), "--tls", tls, "--coordinator", zk.connectString(),
                    "--forward", forward)));
        }
        protect(vm, ports[0], tls, zk);
        progress("pgbench, protected (" + intervalMs + " ms epochs, output held, disk mirrored), " + seconds + " s");
        double tpsProtected = Psql.pgbench(pgPort, 2, seconds);

        Set<Integer> acknowledged = new ConcurrentSkipListSet<>();
        AtomicInteger nextId = new AtomicInteger();
        Random random = new Random();
        List<Double> failoverMs = new ArrayList<>();
        int lost = 0;
        for (int k = 0; k < kills; k++) {
            CliChild backup = backups.get(k % 2);
            long failoversBefore = backup.count(FAILOVER);
            try (PsqlInserter inserter = new PsqlInserter(pgPort, "acked", nextId, acknowledged)) {
                Thread.sleep(2000 + random.nextInt(4000));
                long pid = VmRecord.readFrom(VmRunDir.of(vm)).pid();
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
                int atKill = acknowledged.size();
                progress(String.format("kill %d of %d: kill -9 of %s's QEMU (pid %d) after %d acknowledged commits", k + 1, kills, vm, pid,
                        atKill));
                backup.awaitCount(FAILOVER, failoversBefore + 1, Duration.ofMinutes(2));
                vm = vm + "-bk";
                vms.add(vm);
                long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
                while (acknowledged.size() < atKill + 3 && System.nanoTime() < deadline) {
                    Thread.sleep(200);
                }
                if (acknowledged.size() < atKill + 3) {
                    throw new IllegalStateException("no commits after failover " + (k + 1) + ": " + inserter.lastError());
                }
            }
            Set<Integer> inTable = new TreeSet<>();
            for (String line : Psql.run(pgPort, "select id from acked").split("\n")) {
                if (!line.isBlank()) {
                    inTable.add(Integer.parseInt(line.strip()));
                }
            }
            int lostNow = (int) acknowledged.stream().filter(id -> !inTable.contains(id)).count();
            lost += lostNow;
            if (!postmasterStart.equals(Psql.run(pgPort, "select pg_postmaster_start_time()").strip())) {
                throw new IllegalStateException("PostgreSQL restarted after failover " + (k + 1));
            }
            Matcher m = FAILOVER.matcher(backup.last(FAILOVER));
            failoverMs.add(m.find() ? Double.parseDouble(m.group(1)) : Double.NaN);
            progress(String.format("failover %d: %.0f ms, %d acknowledged commits so far, %d missing", k + 1,
                    failoverMs.get(failoverMs.size() - 1), acknowledged.size(), lostNow));
            if (k + 1 < kills) {
                protect(vm, ports[(k + 1) % 2], tls, zk);
            }
        }

        BenchReport r = new BenchReport("Remus on the real guest: PostgreSQL 15 in Debian 12, " + mem + ", " + intervalMs + " ms epochs");
        r.note("guest disk", disk);
        r.figure("boot_s", "boot to PostgreSQL answering (s)", bootS);
        r.figure("tps_unprotected", "pgbench tps, unprotected (2 clients)", tpsPlain);
        r.figure("tps_protected", "pgbench tps, protected", tpsProtected);
        r.figure("tps_ratio", "protected / unprotected", tpsProtected / tpsPlain);
        r.figure("kills", "kill -9 rounds (restored VM protected again each round)", kills);
        r.figure("acked_commits", "commits acknowledged to psql", acknowledged.size());
        r.figure("acked_lost", "acknowledged commits missing after failover", lost);
        long[] ms = failoverMs.stream().mapToLong(Math::round).toArray();
        r.figure("failover_ms_p50", "failover p50 (ms)", new Percentiles(ms, ms.length).at(50));
        r.note("failover ms per round", failoverMs);
        r.print(System.out);
        return lost == 0 ? 0 : 1;
    }

    private void protect(String vm, int port, String tls, EmbeddedCoordinator zk) throws IOException, InterruptedException {
        progress("protecting " + vm + " to 127.0.0.1:" + port + " (full synchronisation of memory and disk)");
        CliChild p = own(CliChild.start("protect", vm, "--backup", "127.0.0.1:" + port, "--tls", tls, "--coordinator",
                zk.connectString(), "--interval", Integer.toString(intervalMs)));
        p.awaitCount(CHECKPOINTING, 1, Duration.ofMinutes(10));
    }

    private <T extends AutoCloseable> T own(T c) {
        synchronized (owned) {
            owned.add(c);
        }
        return c;
    }

    private synchronized void cleanUp() {
        List<AutoCloseable> all;
        synchronized (owned) {
            all = new ArrayList<>(owned);
            owned.clear();
        }
        for (int i = all.size() - 1; i >= 0; i--) {
            try {
                all.get(i).close();
            } catch (Exception e) {
                System.err.println("remus-pg: cleanup: " + e.getMessage());
            }
        }
        for (String name : vms) {
            if (Files.exists(VmRunDir.root().resolve("vms").resolve(name))) {
                try {
                    CliChild.run(Duration.ofMinutes(1), "vm", "stop", name);
                } catch (IOException | InterruptedException e) {
                    System.err.println("remus-pg: cleanup of " + name + ": " + e.getMessage());
                }
            }
        }
        vms.clear();
        if (work != null) {
            HostCommand.tryRun(List.of("rm", "-rf", work.toString()));
            work = null;
        }
    }

    private static void progress(String line) {
        System.err.println("remus-pg: " + line);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}

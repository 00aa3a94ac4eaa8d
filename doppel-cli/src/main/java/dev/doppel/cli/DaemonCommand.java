package dev.doppel.cli;

import dev.doppel.daemon.Daemon;
import dev.doppel.daemon.DaemonConfig;
import dev.doppel.daemon.client.DaemonClient;
import dev.doppel.vm.PatchedQemuPrefix;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code doppel daemon run|start|stop|status} and {@code doppel daemon api METHOD PATH [JSON]}. */
@Command(name = "daemon", description = "doppeld: the host daemon that owns this host's VMs and serves the REST API.",
        subcommands = {DaemonCommand.Run.class, DaemonCommand.Start.class, DaemonCommand.Stop.class, DaemonCommand.Status.class,
                DaemonCommand.Api.class})
public final class DaemonCommand {

    /** Options shared by run and start. */
    static class Where {
        @Option(names = "--socket", description = "the API's unix socket (default /run/doppel/daemon/doppeld.sock)") Path socket;
        @Option(names = "--state-dir", description = "the daemon's own files (default /var/lib/doppel/daemon)") Path stateDir;
    }

    @Command(name = "run", description = "Run the daemon in the foreground (SIGINT/SIGTERM stop it; VMs keep running).")
    static final class Run extends Where implements Callable<Integer> {
        @Option(names = "--listen", description = "also serve the API on TCP HOST:PORT (needs --tls and --token-file)") String listen;
        @Option(names = "--tls", description = "this host's certificate directory from 'doppel pki issue HOST' (server-cert.pem, server-key.pem)") Path tls;
        @Option(names = "--token-file", description = "the bearer token TCP clients must send (at least 16 characters)") Path tokenFile;
        @picocli.CommandLine.Mixin AccelOption accel;

        @Override
        public Integer call() throws Exception {
            InetSocketAddress tcp = listen == null ? null : ProtectCommand.parse(listen);
            Path qemu;
            try {
                qemu = PatchedQemuPrefix.find();
            } catch (RuntimeException e) {
                System.err.println("no COLO-patched QEMU (" + e.getMessage() + "): VMs can be started, not protected");
                qemu = null;
            }
            DaemonConfig config = new DaemonConfig(stateDir, socket, tcp, tls, tokenFile, qemu,
                    accel.forced() == null ? null : accel.forced().toString());
            Daemon d = Daemon.start(config);
            Thread hook = new Thread(d::close, "daemon-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);
            System.out.println("doppeld running: pid " + ProcessHandle.current().pid() + ", API on " + config.socket()
                    + (tcp == null ? "" : " and https://" + listen + " (port " + d.tcpPort() + ")"));
            d.awaitStop();
            return 0;
        }
    }

    @Command(name = "start", description = "Start the daemon in the background (its log: STATE_DIR/doppeld.log) and wait until it answers.")
    static final class Start extends Where implements Callable<Integer> {
        @Parameters(description = "more options for 'daemon run' (e.g. --listen HOST:PORT --tls DIR --token-file F)") List<String> more = new ArrayList<>();

        @Override
        public Integer call() throws Exception {
            Path sock = socket != null ? socket : DaemonConfig.DEFAULT_SOCKET;
            Path state = stateDir != null ? stateDir : DaemonConfig.DEFAULT_STATE;
            if (DaemonClient.answers(sock)) {
                System.out.println("a daemon already answers on " + sock);
                return 0;
            }
            Files.createDirectories(state);
            List<String> cmd = new ArrayList<>(List.of("setsid", Path.of(System.getProperty("doppel.root", "."), "bin", "doppel").toString(),
                    "daemon", "run", "--socket", sock.toString(), "--state-dir", state.toString()));
            cmd.addAll(more);
            Path logFile = state.resolve("doppeld.log");
            new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (System.nanoTime() < deadline) {
                if (DaemonClient.answers(sock)) {
                    System.out.println("doppeld started; API on " + sock + ", log " + logFile);
                    return 0;
                }
                Thread.sleep(200);
            }
            System.err.println("doppeld did not answer on " + sock + " within 60 s; see " + logFile);
            return 1;
        }
    }

    @Command(name = "stop", description = "Stop the daemon (no VM is stopped; protection resumes when a daemon runs again).")
    static final class Stop extends Where implements Callable<Integer> {
        @Override
        public Integer call() throws Exception {
            Path sock = socket != null ? socket : DaemonConfig.DEFAULT_SOCKET;
            Path state = stateDir != null ? stateDir : DaemonConfig.DEFAULT_STATE;
            Path pidFile = state.resolve("doppeld.pid");
            long pid = Files.exists(pidFile) ? Long.parseLong(Files.readString(pidFile).strip()) : -1;
            try (DaemonClient c = new DaemonClient(sock)) {
                DaemonClient.Answer a = c.call("POST", "/api/v1/daemon/stop", null, 10);
                System.out.println(a.body().strip());
            }
            if (pid > 0) {
                ProcessHandle.of(pid).ifPresent(h -> h.onExit().orTimeout(60, java.util.concurrent.TimeUnit.SECONDS).join());
            }
            System.out.println("doppeld stopped; VMs keep running");
            return 0;
        }
    }

    @Command(name = "status", description = "What the daemon says about this host.")
    static final class Status extends Where implements Callable<Integer> {
        @Override
        public Integer call() throws Exception {
            Path sock = socket != null ? socket : DaemonConfig.DEFAULT_SOCKET;
            try (DaemonClient c = new DaemonClient(sock)) {
                System.out.println(c.call("GET", "/api/v1/host", null, 10).body().strip());
                return 0;
            } catch (java.io.IOException e) {
                System.err.println("no daemon answers on " + sock + ": " + e.getMessage());
                return 1;
            }
        }
    }

    @Command(name = "api", description = "Call the daemon's API: METHOD PATH [JSON], e.g. 'daemon api GET /api/v1/vms'.")
    static final class Api extends Where implements Callable<Integer> {
        @Parameters(index = "0") String method;
        @Parameters(index = "1") String path;
        @Parameters(index = "2", arity = "0..1") String json;

        @Override
        public Integer call() throws Exception {
            Path sock = socket != null ? socket : DaemonConfig.DEFAULT_SOCKET;
            try (DaemonClient c = new DaemonClient(sock)) {
                DaemonClient.Answer a = c.call(method.toUpperCase(java.util.Locale.ROOT), path, json, 1800);
                System.out.println(a.body().strip());
                return a.ok() ? 0 : 1;
            }
        }
    }
}

package dev.doppel.cli.bench;

import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import java.io.EOFException;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code doppel bench qmp}: sequential {@code query-status} round trips against a booted guest. */
@Command(name = "qmp", description = "QMP round-trip latency and throughput (query-status) on a booted guest.")
public final class QmpBench implements Callable<Integer> {
    @Option(names = "--seconds", defaultValue = "10", description = "measurement time (default ${DEFAULT-VALUE})") int seconds;
    @Option(names = "--mem", defaultValue = "256", description = "guest RAM in MiB (default ${DEFAULT-VALUE})") long memMiB;
    @Option(names = "--workload", defaultValue = "ticker", description = "guest workload while measuring (default ${DEFAULT-VALUE})") String workload;
    @Option(names = "--warmup", defaultValue = "3", description = "seconds of untimed calls before each phase (default ${DEFAULT-VALUE})") int warmupSeconds;
    @Mixin BenchAccelOption accel;

    @Override
    public Integer call() throws Exception {
        VmLauncher launcher = VmLauncher.create(accel.forced());
        String name = "bench-qmp-" + ProcessHandle.current().pid();
        var spec = VmLauncher.guestSpec(name, GuestImage.locate(), workload, Map.of()).memoryMiB(memMiB).build();
        try (VmProcess vm = launcher.start(spec)) {
            System.err.println("booting guest …");
            vm.console().awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
            QmpClient qmp = vm.qmp();
            // Warm-up, untimed: with 500 calls the p50 of the following 20,000 was 10-20 µs higher
            // than later ones (JIT compilation of the client's path); 3 s is ~15,000 calls.
            long warm = System.nanoTime() + Duration.ofSeconds(warmupSeconds).toNanos();
            while (System.nanoTime() < warm) {
                qmp.execute("query-status");
            }
            long[] rtt = new long[4_000_000];
            int n = 0;
            long start = System.nanoTime();
            long end = start + Duration.ofSeconds(seconds).toNanos();
            while (System.nanoTime() < end && n < rtt.length) {
                long t0 = System.nanoTime();
                qmp.execute("query-status");
                rtt[n++] = System.nanoTime() - t0;
            }
            double elapsed = (System.nanoTime() - start) / 1e9;
            Percentiles p = new Percentiles(rtt, n);
            // Baseline on the same monitor, same QEMU, right after: bare request/reply on one polling
            // thread, no client library. (QEMU serves one client per socket, so the client disconnects first.)
            qmp.close();
            Percentiles raw = rawRoundTrips(vm.runDir().qmpSocket(), SHORT_ID_REQUEST, seconds, warmupSeconds);
            // Same floor with the id this client used to send: what the request's length alone costs.
            Percentiles rawLongId = rawRoundTrips(vm.runDir().qmpSocket(), LONG_ID_REQUEST, seconds, warmupSeconds);
            vm.kill();
            new BenchReport("QMP round trips (query-status, sequential, one connection)")
                    .note("accelerator", launcher.accelerator())
                    .note("qemu", launcher.qemu().version())
                    .figure("calls", "calls", n)
                    .figure("seconds", "seconds", Math.round(elapsed * 100) / 100.0)
                    .figure("ops_per_s", "ops/s", Math.round(n / elapsed))
                    .figure("rtt_p50_us", "rtt p50 (µs)", p.at(50) / 1000)
                    .figure("rtt_p99_us", "rtt p99 (µs)", p.at(99) / 1000)
                    .figure("rtt_max_us", "rtt max (µs)", p.at(100) / 1000)
                    .figure("raw_rtt_p50_us", "baseline: bare socket, one polling thread, rtt p50 (µs)", raw.at(50) / 1000)
                    .figure("raw_rtt_p99_us", "baseline: bare socket rtt p99 (µs)", raw.at(99) / 1000)
                    .figure("raw_long_id_rtt_p50_us", "bare socket, id \"doppel-12345\" (+12 bytes), rtt p50 (µs)",
                            rawLongId.at(50) / 1000)
                    .figure("client_vs_raw_p50", "client p50 ÷ bare p50", Math.round(100.0 * p.at(50) / raw.at(50)) / 100.0)
                    .figure("accel", "accel", launcher.accelerator().accelerator().qemuName())
                    .print(System.out);
        }
        return 0;
    }

    private static final String SHORT_ID_REQUEST = "{\"execute\":\"query-status\",\"id\":1}\n";
    private static final String LONG_ID_REQUEST = "{\"execute\":\"query-status\",\"id\":\"doppel-12345\"}\n";

    /**
     * The floor: the same request bytes as the client's ({@code "id":1}: QEMU reads its monitor input a
     * byte at a time, so the request's length matters) over the same QMP socket, with no client library:
     * one thread, a non-blocking JDK socket, write, then busy-poll until the reply's newline.
     */
    private static Percentiles rawRoundTrips(Path socket, String request, int seconds, int warmupSeconds)
            throws Exception {
        try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
            ByteBuffer in = ByteBuffer.allocateDirect(65536);
            readLine(ch, in);                                   // greeting (blocking)
            send(ch, "{\"execute\":\"qmp_capabilities\"}\n");
            readLine(ch, in);
            ch.configureBlocking(false);
            ByteBuffer msg = ByteBuffer.allocateDirect(64);
            msg.put(request.getBytes(StandardCharsets.US_ASCII)).flip();
            long warm = System.nanoTime() + Duration.ofSeconds(warmupSeconds).toNanos();
            while (System.nanoTime() < warm) {
                roundTrip(ch, msg, in);
            }
            long[] rtt = new long[4_000_000];
            int n = 0;
            long end = System.nanoTime() + Duration.ofSeconds(seconds).toNanos();
            while (System.nanoTime() < end && n < rtt.length) {
                long t0 = System.nanoTime();
                roundTrip(ch, msg, in);
                rtt[n++] = System.nanoTime() - t0;
            }
            return new Percentiles(rtt, n);
        }
    }

    private static void roundTrip(SocketChannel ch, ByteBuffer msg, ByteBuffer in) throws IOException {
        msg.rewind();
        while (msg.hasRemaining()) {
            ch.write(msg);
        }
        readLine(ch, in);
    }

    private static void send(SocketChannel ch, String text) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.US_ASCII));
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /** Reads until a newline (QMP replies end with CRLF); the stream carries only our replies. */
    private static void readLine(SocketChannel ch, ByteBuffer in) throws IOException {
        while (true) {
            in.clear();
            int n = ch.read(in);
            if (n < 0) {
                throw new EOFException("QMP monitor closed");
            }
            if (n > 0 && in.get(n - 1) == '\n') {
                return;
            }
        }
    }
}

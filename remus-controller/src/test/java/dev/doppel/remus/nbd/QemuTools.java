package dev.doppel.remus.nbd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs qemu-io / qemu-img as real NBD clients, with a timeout, capturing their output. */
final class QemuTools {
    private QemuTools() {
    }

    record Result(int exitCode, String output) {
        boolean ok() {
            return exitCode == 0 && !output.contains("failed") && !output.contains("error");
        }
    }

    static String url(NbdServer server) {
        return "nbd://127.0.0.1:" + server.address().getPort() + "/" + server.exportName();
    }

    /**
     * {@code qemu-io -f raw -t writeback URL -c cmd...}: write-back like the primary's mirror target
     * (qemu-io's default, writethrough, follows every write with a FLUSH, and a FLUSH is an epoch
     * boundary on the backup).
     */
    static Result qemuIo(NbdServer server, String... commands) throws IOException, InterruptedException {
        List<String> argv = new ArrayList<>(List.of("qemu-io", "-f", "raw", "-t", "writeback", url(server)));
        for (String c : commands) {
            argv.add("-c");
            argv.add(c);
        }
        return run(argv);
    }

    static Result run(List<String> argv) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
        p.getOutputStream().close();
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("timed out: " + argv);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Result(p.exitValue(), out);
    }
}

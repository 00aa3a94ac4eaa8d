package dev.doppel.clone;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Rogue peers against a clone's TLS-only incoming migration port: plain TCP, and openssl s_client. */
final class TlsRogues {
    static final byte[] MIGRATION_HEADER = {'Q', 'E', 'V', 'M', 0, 0, 0, 3};

    private TlsRogues() {
    }

    /** Connects, sends a migration header and some bytes, reads until the clone hangs up; bytes read. */
    static int plainRogue(InetSocketAddress incoming) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(incoming, 5000);
            s.setSoTimeout(10_000);
            try {
                s.getOutputStream().write(MIGRATION_HEADER);
                s.getOutputStream().write("0123456789abcdef".repeat(64).getBytes(StandardCharsets.US_ASCII));
                s.getOutputStream().flush();
            } catch (IOException e) {
                // QEMU read the first bytes, found no TLS and reset the connection while we still wrote:
                // refused even sooner (seen in the suite); nothing came back
                return 0;
            }
            InputStream in = s.getInputStream();
            int got = 0;
            try {
                byte[] b = new byte[4096];
                int n;
                while ((n = in.read(b)) >= 0) {
                    got += n;
                }
            } catch (IOException e) {
                // reset by the clone: what a refused peer sees
            }
            return got;
        }
    }

    /** openssl s_client with {@code args}, sending a migration header; its output. The clone must send no migration data. */
    static String openssl(InetSocketAddress incoming, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("openssl", "s_client", "-connect",
                incoming.getAddress().getHostAddress() + ":" + incoming.getPort(), "-quiet"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().write(MIGRATION_HEADER);
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(20, TimeUnit.SECONDS), "openssl s_client did not end: " + out);
        assertTrue(!out.contains("QEVM"), "the clone answered with migration data: " + out);
        return out;
    }
}

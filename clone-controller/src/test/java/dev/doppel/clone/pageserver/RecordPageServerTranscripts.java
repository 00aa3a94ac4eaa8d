package dev.doppel.clone.pageserver;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.doppel.clone.pageserver.wire.ForkDescriptor;
import dev.doppel.vm.MemoryBackend;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import dev.doppel.vm.testing.TestVms;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Records what the page-server unit tests replay. A tool, not a test (the default run excludes the
 * "record" group):
 * <pre>
 *   mvn -o -B -pl clone-controller -am test -Dtest=RecordPageServerTranscripts \
 *       -Ddoppel.test.groups=record -Ddoppel.test.excludedGroups= -Dsurefire.failIfNoSpecifiedTests=false
 * </pre>
 * A parent guest on a shared memory file is stopped and migrated with x-ignore-shared to a file (the
 * fork descriptor, as ForkService writes it); a postcopy destination with the identical device
 * model is then fed by a {@link PageServer} through a TCP proxy that keeps every byte the
 * destination sends back (the return path), until the clean end's SHUT.
 */
@Tag("record")
class RecordPageServerTranscripts {
    private static final Path OUT = Path.of("src/test/resources/pageserver");

    @AutoClose
    TestVms vms = new TestVms();

    @Test
    void descriptorAndReturnPathOfAnIdleGuest() throws Exception {
        Path ram = Path.of("/dev/shm/rc-record-" + ProcessHandle.current().pid() + ".ram");
        Path descriptor = Files.createTempFile("rc-record", ".state");
        try {
            VmSpec parentSpec = vms.guestSpec("rc-record", "none", Map.of()).memory(MemoryBackend.File.shared(ram)).build();
            VmProcess parent = vms.startReady(parentSpec);
            Thread.sleep(2000);
            parent.qmp().execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "x-ignore-shared", "state", true))));
            parent.qmp().execute("stop");
            parent.qmp().execute("migrate", Map.of("uri", "file:" + descriptor));
            awaitStatus(parent, "completed");
            byte[] desc = Files.readAllBytes(descriptor);

            VmSpec cloneSpec = parentSpec.toBuilder().name(parentSpec.name() + "-clone").memory(new MemoryBackend.Anonymous())
                    .incomingDefer(true).build();
            VmProcess clone = vms.start(cloneSpec);
            clone.qmp().execute("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "postcopy-ram", "state", true))));
            int port;
            try (ServerSocket probe = new ServerSocket(0)) {
                port = probe.getLocalPort();
            }
            clone.qmp().execute("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:" + port));
            ByteArrayOutputStream returnPath = new ByteArrayOutputStream();
            try (SnapshotPages pages = new SnapshotPages(ForkDescriptor.parse(desc), ram, MemoryBackend.RAM_BLOCK_ID);
                 PageServer server = new PageServer("record", pages, PageServerOptions.defaults());
                 RecordingProxy proxy = new RecordingProxy(new InetSocketAddress("127.0.0.1", port), returnPath)) {
                ClonePageSession s = server.serve("rc-record-clone", proxy.address());
                s.serving().get(30, TimeUnit.SECONDS);
                Thread.sleep(3000);
                s.finish().get(60, TimeUnit.SECONDS);
                System.out.println("stats " + s.stats());
            }
            assertEquals("completed", clone.qmp().execute("query-migrate").path("status").asText());
            write(Recordings.DESCRIPTOR, desc);
            write(Recordings.RETURN_PATH, returnPath.toByteArray());
            System.out.println("descriptor " + desc.length + " bytes, return path " + returnPath.size() + " bytes");
        } finally {
            Files.deleteIfExists(ram);
            Files.deleteIfExists(descriptor);
        }
    }

    private static void awaitStatus(VmProcess vm, String status) throws InterruptedException {
        for (int i = 0; i < 3000; i++) {
            if (vm.qmp().execute("query-migrate").path("status").asText().equals(status)) {
                return;
            }
            Thread.sleep(10);
        }
        throw new AssertionError(vm.name() + " never reached migration status " + status);
    }

    private static void write(String name, byte[] bytes) throws IOException {
        Files.createDirectories(OUT);
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(OUT.resolve(name)))) {
            out.write(bytes);
        }
    }

    /** Forwards one connection both ways and keeps a copy of what the destination sends. */
    private static final class RecordingProxy implements AutoCloseable {
        private final ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        private final InetSocketAddress target;
        private final ByteArrayOutputStream copy;

        RecordingProxy(InetSocketAddress target, ByteArrayOutputStream copy) throws IOException {
            this.target = target;
            this.copy = copy;
            Thread t = new Thread(this::run, "recording-proxy");
            t.setDaemon(true);
            t.start();
        }

        InetSocketAddress address() {
            return new InetSocketAddress(InetAddress.getLoopbackAddress(), listener.getLocalPort());
        }

        private void run() {
            try (Socket in = listener.accept(); Socket out = new Socket(target.getAddress(), target.getPort())) {
                Thread up = new Thread(() -> pump(in, out, null), "proxy-up");
                up.setDaemon(true);
                up.start();
                pump(out, in, copy);
                up.join();
            } catch (IOException | InterruptedException e) {
                // connection over
            }
        }

        private static void pump(Socket from, Socket to, ByteArrayOutputStream keep) {
            byte[] buf = new byte[65536];
            try (InputStream i = from.getInputStream(); OutputStream o = to.getOutputStream()) {
                int n;
                while ((n = i.read(buf)) > 0) {
                    o.write(buf, 0, n);
                    o.flush();
                    if (keep != null) {
                        synchronized (keep) {
                            keep.write(buf, 0, n);
                        }
                    }
                }
            } catch (IOException e) {
                // one side closed
            }
        }

        @Override
        public void close() throws IOException {
            listener.close();
        }
    }
}

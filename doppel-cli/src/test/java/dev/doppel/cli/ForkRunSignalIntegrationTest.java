package dev.doppel.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.doppel.clone.ForkOptions;
import dev.doppel.hostnet.NetNamespace;
import dev.doppel.vm.VmRunDir;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Ctrl-C of {@code doppel fork run} while it watches its clones: the command must remove everything it made
 * (QEMU processes, the clone network's namespace, the generation files, the disk overlays, the run
 * directories) before the JVM exits. A real child JVM running the CLI, real QEMU, a real SIGINT. (Before
 * {@link GracefulStop}, the JVM exited once the child-process reaper had killed QEMU, and the namespace and
 * the files stayed.)
 */
class ForkRunSignalIntegrationTest {

    private final String name = "sig" + ProcessHandle.current().pid();
    private final List<String> output = new CopyOnWriteArrayList<>();
    private Process cli;

    @AfterEach
    void stopCli() throws InterruptedException {
        if (cli != null && cli.isAlive()) {
            cli.destroy();                                  // SIGTERM: the CLI cleans up
            if (!cli.waitFor(60, TimeUnit.SECONDS)) {
                cli.destroyForcibly();
            }
        }
    }

    @Test
    void ctrlCWhileWatchingTheClonesRemovesWhatTheForkMade() throws Exception {
        cli = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                "-Ddoppel.guest.dir=" + System.getProperty("doppel.guest.dir"),
                DoppelCli.class.getName(), "fork", "run", "--clones", "2", "--seconds", "300", "--name", name)
                .redirectErrorStream(true).start();
        Thread reader = new Thread(this::readOutput, "cli-output");
        reader.setDaemon(true);
        reader.start();

        awaitOutput("forked into 2 clones", 180);
        assertTrue(NetNamespace.exists("dpf-" + name), "the clone network exists while the clones run: " + output);
        assertTrue(qemuProcesses() >= 3, "parent and 2 clones run");
        assertTrue(Files.isDirectory(generations()), "the fork froze the parent's memory into " + generations());
        assertTrue(Files.isDirectory(overlays()), "the clones' disk overlays are in " + overlays());

        new ProcessBuilder("kill", "-INT", Long.toString(cli.pid())).inheritIO().start().waitFor();
        assertTrue(cli.waitFor(60, TimeUnit.SECONDS), "the CLI ends within 60 s of Ctrl-C: " + tail());
        assertEquals(130, cli.exitValue(), tail());
        assertTrue(output.stream().anyMatch(l -> l.contains("stopped; cleaning up")), tail());

        assertEquals(0, qemuProcesses(), "no QEMU of the run is left: " + tail());
        assertTrue(!NetNamespace.exists("dpf-" + name), "the clone network's namespace is removed");
        assertTrue(!Files.exists(generations()), "the generation files are removed: " + generations());
        assertTrue(!Files.exists(overlays()), "the disk overlays are removed: " + overlays());
        assertEquals(List.of(), runDirs(), "the run directories are removed");
    }

    private void readOutput() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(cli.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                output.add(line);
            }
        } catch (IOException ignored) {
            // the CLI ended
        }
    }

    private void awaitOutput(String text, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (output.stream().anyMatch(l -> l.contains(text))) {
                return;
            }
            if (!cli.isAlive()) {
                fail("the CLI ended (" + cli.exitValue() + ") before printing '" + text + "': " + tail());
            }
            Thread.sleep(100);
        }
        fail("no '" + text + "' within " + seconds + " s: " + tail());
    }

    /** QEMU processes of this run: their {@code -name} starts with the parent's name (clones are name-f1cN). */
    private long qemuProcesses() {
        return ProcessHandle.allProcesses()
                .filter(p -> p.info().commandLine().map(c -> c.contains("qemu-system") && c.contains("-name " + name)).orElse(false))
                .count();
    }

    private Path generations() {
        return ForkOptions.defaults().memoryDir().resolve(name);
    }

    private Path overlays() {
        return ForkOptions.defaults().diskDir().resolve(name);
    }

    private List<Path> runDirs() throws IOException {
        Path vms = VmRunDir.root().resolve("vms");
        if (!Files.isDirectory(vms)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(vms)) {
            return s.filter(p -> p.getFileName().toString().startsWith(name)).toList();
        }
    }

    private String tail() {
        int n = output.size();
        return String.join("\n", output.subList(Math.max(0, n - 15), n));
    }
}

package dev.doppel.cli;

import dev.doppel.cli.bench.CliChild;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.ForkOptions;
import dev.doppel.hostnet.NetNamespace;
import dev.doppel.vm.VmRunDir;
import java.time.Duration;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
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
    private CliChild run;

    @AfterEach
    void stopCli() throws InterruptedException {
        if (run != null) {
            run.close();                                    // SIGTERM: the CLI cleans up
        }
    }

    @Test
    void ctrlCWhileWatchingTheClonesRemovesWhatTheForkMade() throws Exception {
        run = CliChild.start("fork", "run", "--clones", "2", "--seconds", "300", "--name", name);
        Process cli = run.process();
        run.awaitLine("forked into 2 clones", Duration.ofSeconds(180));
        assertTrue(NetNamespace.exists("dpf-" + name), "the clone network exists while the clones run: " + run.tail());
        assertTrue(qemuProcesses() >= 3, "parent and 2 clones run");
        assertTrue(Files.isDirectory(generations()), "the fork froze the parent's memory into " + generations());
        assertTrue(Files.isDirectory(overlays()), "the clones' disk overlays are in " + overlays());

        new ProcessBuilder("kill", "-INT", Long.toString(cli.pid())).inheritIO().start().waitFor();
        assertTrue(cli.waitFor(60, TimeUnit.SECONDS), "the CLI ends within 60 s of Ctrl-C: " + run.tail());
        assertEquals(130, cli.exitValue(), run.tail());
        assertTrue(run.output().stream().anyMatch(l -> l.contains("stopped; cleaning up")), run.tail());

        assertEquals(0, qemuProcesses(), "no QEMU of the run is left: " + run.tail());
        assertTrue(!NetNamespace.exists("dpf-" + name), "the clone network's namespace is removed");
        assertTrue(!Files.exists(generations()), "the generation files are removed: " + generations());
        assertTrue(!Files.exists(overlays()), "the disk overlays are removed: " + overlays());
        assertEquals(List.of(), runDirs(), "the run directories are removed");
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
}

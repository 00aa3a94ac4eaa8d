package dev.doppel.remus.testbed;

import dev.doppel.vm.ChildProcesses;
import java.util.ArrayList;
import java.util.List;

/**
 * A CPU-hogging neighbour: one busy shell loop per core, for as long as it is open. The failover-loss
 * issue's split brain appeared only with a second workload on the 2-core machine (checkpoints took
 * 1.8–2.7 s); the campaign runs half its kills beside this. The loops are started through
 * {@link ChildProcesses} (they die with the JVM) and killed by {@link #close}.
 */
public final class CpuHog implements AutoCloseable {
    private final List<Process> loops = new ArrayList<>();

    public CpuHog(int threads) {
        for (int i = 0; i < threads; i++) {
            loops.add(ChildProcesses.start(List.of("sh", "-c", "while :; do :; done"), java.nio.file.Path.of("/dev/null"), "cpu hog " + i, true));
        }
    }

    /** One loop per core. */
    public static CpuHog allCores() {
        return new CpuHog(Runtime.getRuntime().availableProcessors());
    }

    @Override
    public void close() {
        for (Process p : loops) {
            p.destroyForcibly();
            try {
                p.waitFor();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            ChildProcesses.released(p);
        }
        loops.clear();
    }
}

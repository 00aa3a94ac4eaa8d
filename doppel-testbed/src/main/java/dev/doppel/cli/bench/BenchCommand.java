package dev.doppel.cli.bench;

import picocli.CommandLine.Command;

/**
 * {@code doppel bench …}: measurements, not tests. Every benchmark prints a readable table and, as
 * its last line, one JSON object with its figures (tools read that line).
 */
@Command(name = "bench", description = "Benchmarks: a table, then one JSON line of figures.",
        subcommands = {QmpBench.class, ForkBench.class, RemoteForkBench.class, RemusBench.class, RemusKvBench.class, RemusPgBench.class, ForkRealBench.class, FailoverBench.class,
                RemusCampaignBench.class, HaFaultsBench.class, DaemonBench.class})
public final class BenchCommand {
}

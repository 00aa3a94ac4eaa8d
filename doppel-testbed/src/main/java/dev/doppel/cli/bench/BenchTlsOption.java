package dev.doppel.cli.bench;

import dev.doppel.tls.PeerTls;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Option;

/**
 * {@code --tls DIR | --insecure} for the benches: the same option as the CLI's {@code TlsOption}
 * (doppel-cli depends on this module, not the reverse, so the benches declare it themselves).
 */
public final class BenchTlsOption {
    @ArgGroup(exclusive = true, multiplicity = "1")
    Choice choice;

    static final class Choice {
        @Option(names = "--tls", paramLabel = "DIR", description = "this host's certificate directory from 'doppel pki issue HOST' "
                + "(mutual TLS on every link to other hosts, also to the ZooKeeper ensemble's secure client ports)") Path dir;
        @Option(names = "--insecure", description = "plain TCP between hosts: no authentication, no encryption") boolean insecure;
    }

    public PeerTls load() throws IOException {
        return choice.insecure ? PeerTls.INSECURE : PeerTls.load(choice.dir);
    }
}

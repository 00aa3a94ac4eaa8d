package dev.doppel.cli;

import dev.doppel.tls.PeerTls;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Option;

/**
 * {@code --tls DIR | --insecure}: the links between hosts run over mutual TLS with the host identity
 * in DIR (made by {@code doppel pki}); plain TCP only when asked for by name.
 */
public final class TlsOption {
    @ArgGroup(exclusive = true, multiplicity = "1")
    Choice choice;

    /**
     * The choice itself, for a command that needs it only sometimes ({@code fork run} with
     * {@code --host}): an {@code @ArgGroup(exclusive = true, multiplicity = "0..1")} field of this type.
     */
    public static final class Choice {
        @Option(names = "--tls", paramLabel = "DIR", description = "this host's certificate directory from 'doppel pki issue HOST' "
                + "(mutual TLS on every link to other hosts, also to the ZooKeeper ensemble's secure client ports)") Path dir;
        @Option(names = "--insecure", description = "plain TCP between hosts: no authentication, no encryption") boolean insecure;

        public PeerTls load() throws IOException {
            return insecure ? PeerTls.INSECURE : PeerTls.load(dir);
        }
    }

    public PeerTls load() throws IOException {
        return choice.load();
    }
}

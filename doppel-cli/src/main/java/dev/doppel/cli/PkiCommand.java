package dev.doppel.cli;

import dev.doppel.tls.Pki;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code doppel pki init | issue HOST}: the certificate authority and host certificates for mutual TLS. */
@Command(name = "pki", description = "Certificates for mutual TLS between Doppel hosts.",
        subcommands = {PkiCommand.Init.class, PkiCommand.Issue.class})
public final class PkiCommand {
    static final String DEFAULT_DIR = "/var/lib/doppel/pki";

    @Command(name = "init", description = "Create the certificate authority (DIR/ca).")
    static final class Init implements Callable<Integer> {
        @Option(names = "--dir", defaultValue = DEFAULT_DIR, description = "PKI directory (default ${DEFAULT-VALUE})") Path dir;
        @Option(names = "--name", defaultValue = "Doppel CA", description = "the CA's name (default ${DEFAULT-VALUE})") String name;

        @Override
        public Integer call() throws Exception {
            Path ca = Pki.init(dir, name);
            System.out.println("CA created: " + ca.resolve("ca-cert.pem") + " (keep " + ca.resolve("ca-key.pem") + " private)");
            return 0;
        }
    }

    @Command(name = "issue", description = "Issue a certificate for HOST into DIR/HOST (give that directory to --tls on HOST).")
    static final class Issue implements Callable<Integer> {
        @Parameters(index = "0", description = "host name or address, as peers connect to it") String host;
        @Option(names = "--dir", defaultValue = DEFAULT_DIR, description = "PKI directory (default ${DEFAULT-VALUE})") Path dir;

        @Override
        public Integer call() throws Exception {
            Path out = Pki.issue(dir, host);
            System.out.println("certificate for " + host + " in " + out + " (use: --tls " + out + ")");
            return 0;
        }
    }
}

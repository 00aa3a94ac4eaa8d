package dev.doppel.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code doppel unprotect VM}: ends a protection the daemon holds (the VM runs on). */
@Command(name = "unprotect", description = "Stop protecting a VM that the daemon protects (the backup stands down; the VM runs on).")
public final class UnprotectCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "VM name") String name;

    @Override
    public Integer call() throws Exception {
        try (DaemonMode daemon = DaemonMode.find()) {
            if (daemon == null) {
                throw new IllegalStateException("no daemon answers: without one, a protection ends with its 'doppel protect' (Ctrl-C)");
            }
            daemon.call("DELETE", "/api/v1/vms/" + name + "/protection", null);
            System.out.println("protection of " + name + " stopped; the VM keeps running");
            return 0;
        }
    }
}

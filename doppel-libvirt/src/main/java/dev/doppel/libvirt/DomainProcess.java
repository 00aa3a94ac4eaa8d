package dev.doppel.libvirt;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The QEMU process of a running libvirt domain on this host. libvirt's API does not give it (only its pid file
 * under the daemon's run directory does, which depends on how the daemon runs), but Doppel's fencing needs it:
 * the primary's guard kills that process when the VM's lease is lost, and a dead primary is a reaped process.
 * libvirt passes the domain's UUID to QEMU ({@code -uuid}), so the process is found by it.
 */
public final class DomainProcess {
    private DomainProcess() {
    }

    /**
     * The QEMU whose command line carries {@code -uuid uuid}, if exactly one runs.
     *
     * @throws IllegalStateException if more than one process claims the UUID (then fencing could kill the wrong one)
     */
    public static Optional<ProcessHandle> qemuOf(String domain, String uuid) {
        List<ProcessHandle> found = new ArrayList<>();
        ProcessHandle.allProcesses().forEach(h -> {
            List<String> argv = argv(h.pid());
            if (!argv.isEmpty() && argv.get(0).contains("qemu-system") && carriesUuid(argv, uuid)) {
                found.add(h);
            }
        });
        if (found.size() > 1) {
            throw new IllegalStateException("domain '" + domain + "': " + found.size() + " QEMU processes carry UUID " + uuid
                    + " (pids " + found.stream().map(ProcessHandle::pid).toList() + ")");
        }
        return found.stream().findFirst();
    }

    static boolean carriesUuid(List<String> argv, String uuid) {
        for (int i = 0; i + 1 < argv.size(); i++) {
            if (argv.get(i).equals("-uuid") && argv.get(i + 1).equalsIgnoreCase(uuid)) {
                return true;
            }
        }
        return false;
    }

    private static List<String> argv(long pid) {
        try {
            byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
            List<String> out = new ArrayList<>();
            int start = 0;
            for (int i = 0; i < raw.length; i++) {
                if (raw[i] == 0) {
                    out.add(new String(raw, start, i - start, StandardCharsets.UTF_8));
                    start = i + 1;
                }
            }
            return out;
        } catch (IOException e) {
            return List.of(); // gone meanwhile, or a kernel thread
        }
    }
}

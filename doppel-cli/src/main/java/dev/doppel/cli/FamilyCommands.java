package dev.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code doppel fork start|clone|list|kill|wait}: fork families that live in this host's daemon
 * (they outlive the command, and the daemon too). Each is one call of the daemon's API; without a
 * daemon they say so, since a family needs an owner that stays (unlike {@code fork run}, which owns
 * its family for the length of the command).
 */
final class FamilyCommands {
    private FamilyCommands() {
    }

    private static DaemonMode daemon() {
        DaemonMode d = DaemonMode.find();
        if (d == null) {
            throw new IllegalStateException("fork families live in the daemon, and none answers"
                    + " (start one: doppel daemon start; or use 'doppel fork run', which owns its family while it runs)");
        }
        return d;
    }

    private static void printMember(JsonNode m, String indent) {
        String state = m.path("running").asBoolean() ? "running"
                : "ended" + (m.path("exitCode").isNumber() ? " (exit " + m.path("exitCode").asInt() + ")" : "");
        System.out.printf("%-30s %-14s %-18s %8d  %-10s %s%n", indent + m.path("name").asText(), m.path("ip").asText(),
                m.path("mac").asText(), m.path("pid").asLong(), m.path("host").isTextual() ? m.path("host").asText() : "-", state);
        for (JsonNode c : m.path("children")) {
            printMember(c, indent + "  ");
        }
    }

    @Command(name = "start", description = "Boot a forkable VM in the daemon: the root of a new fork family (needs a daemon).")
    static final class Start implements Callable<Integer> {
        @Parameters(index = "0", description = "the family's (and its root VM's) name") String name;
        @Option(names = "--mem", description = "guest RAM in MiB (default 256, with --image 1024)") Long memMiB;
        @Option(names = "--image", description = "your own BIOS-bootable disk image with qemu-guest-agent (not written: the family runs on overlays)") Path image;
        @Option(names = "--run", description = "Doppel guest's workload (default dirtier)") String run;

        @Override
        public Integer call() throws Exception {
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("name", name);
            if (memMiB != null) {
                body.put("memMiB", memMiB);
            }
            if (image != null) {
                body.put("image", image.toAbsolutePath().toString());
            }
            if (run != null) {
                body.put("run", run);
            }
            try (DaemonMode d = daemon()) {
                JsonNode root = d.call("POST", "/api/v1/families", body);
                System.out.printf("family %s started: root at %s (pid %d), on doppeld %s%n", root.path("name").asText(),
                        root.path("ip").asText(), root.path("pid").asLong(), d.socket());
            }
            return 0;
        }
    }

    @Command(name = "clone", description = "Fork a VM of a daemon's family (its root or a clone) into N clones.")
    static final class Clone implements Callable<Integer> {
        @Parameters(index = "0", description = "the VM to fork") String vm;
        @Option(names = {"-n", "--clones"}, defaultValue = "1", description = "number of clones (default ${DEFAULT-VALUE})") int clones;
        @Option(names = "--host", description = "put the clones round-robin on these other hosts (repeatable); they fetch"
                + " memory from the daemon's page server") java.util.List<String> hosts;

        @Override
        public Integer call() throws Exception {
            try (DaemonMode d = daemon()) {
                JsonNode made = d.call("POST", "/api/v1/families/" + vm + "/fork", hosts == null || hosts.isEmpty()
                        ? Map.of("clones", clones) : Map.of("clones", clones, "hosts", hosts));
                System.out.printf("forked %s into %d clones%n", vm, made.size());
                System.out.printf("%-30s %-14s %-18s %8s  %-10s %s%n", "CLONE", "IP", "MAC", "PID", "HOST", "STATE");
                for (JsonNode c : made) {
                    printMember(c, "");
                }
            }
            return 0;
        }
    }

    @Command(name = "list", description = "The daemon's fork families as trees.")
    static final class ListFamilies implements Callable<Integer> {
        @Override
        public Integer call() throws Exception {
            try (DaemonMode d = daemon()) {
                JsonNode roots = d.call("GET", "/api/v1/families", null);
                if (roots.isEmpty()) {
                    System.out.println("no fork families");
                    return 0;
                }
                System.out.printf("%-30s %-14s %-18s %8s  %-10s %s%n", "VM", "IP", "MAC", "PID", "HOST", "STATE");
                for (JsonNode r : roots) {
                    printMember(r, "");
                }
            }
            return 0;
        }
    }

    @Command(name = "kill", description = "Kill a clone, or a family's root with its whole family.")
    static final class Kill implements Callable<Integer> {
        @Parameters(index = "0", description = "the VM") String vm;

        @Override
        public Integer call() throws Exception {
            try (DaemonMode d = daemon()) {
                d.call("DELETE", "/api/v1/families/" + vm, null);
                System.out.printf("%s killed%n", vm);
            }
            return 0;
        }
    }

    @Command(name = "wait", description = "Wait for a family VM's exit; prints its exit code (vmexit CODE, -1 when killed) and exits with it.")
    static final class Wait implements Callable<Integer> {
        @Parameters(index = "0", description = "the VM") String vm;
        @Option(names = "--timeout", defaultValue = "600", description = "seconds (default ${DEFAULT-VALUE})") int timeoutS;

        @Override
        public Integer call() throws Exception {
            try (DaemonMode d = daemon()) {
                int code = d.call("POST", "/api/v1/families/" + vm + "/wait?timeoutMs=" + timeoutS * 1000L, null).path("exitCode").asInt();
                System.out.printf("%s exited: %d%n", vm, code);
                return code & 0xff;
            }
        }
    }
}

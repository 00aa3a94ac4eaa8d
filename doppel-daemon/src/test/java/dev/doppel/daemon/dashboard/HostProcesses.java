package dev.doppel.daemon.dashboard;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** The host's processes by what their command line names (a unique VM name, a temporary directory). */
final class HostProcesses {
    private HostProcesses() {
    }

    /** Live processes other than this JVM whose command line contains {@code text}. */
    static List<ProcessHandle> mentioning(String text) {
        long self = ProcessHandle.current().pid();
        return ProcessHandle.allProcesses().filter(p -> p.pid() != self && p.isAlive() && commandLine(p.pid()).contains(text)).toList();
    }

    /** Waits until no process mentions {@code text}; returns the command lines of those left. */
    static List<String> awaitNoneMentioning(String text, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<ProcessHandle> left = mentioning(text);
        while (!left.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(200);
            left = mentioning(text);
        }
        return left.stream().map(p -> p.pid() + ": " + commandLine(p.pid())).toList();
    }

    static String commandLine(long pid) {
        try {
            return new String(Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline")), StandardCharsets.UTF_8).replace('\0', ' ');
        } catch (IOException e) {
            return "";   // gone meanwhile
        }
    }
}

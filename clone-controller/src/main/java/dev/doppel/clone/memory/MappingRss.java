package dev.doppel.clone.memory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What a process's guest-RAM mapping really costs, read from {@code /proc/PID/smaps}: resident pages
 * (file pages faulted in from the generation file plus private copies) and the private dirty part
 * (pages the VM wrote since the fork: its own copies).
 */
public record MappingRss(long rssKiB, long privateDirtyKiB, long sizeKiB) {
    /** Sums the mappings of {@code pid} whose path contains {@code pathFragment}; zeros if none. */
    public static MappingRss of(long pid, String pathFragment) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc", Long.toString(pid), "smaps"));
        long rss = 0;
        long dirty = 0;
        long size = 0;
        boolean inMapping = false;
        for (String l : lines) {
            if (isHeader(l)) {
                inMapping = l.contains(pathFragment);
            } else if (inMapping) {
                if (l.startsWith("Rss:")) {
                    rss += kib(l);
                } else if (l.startsWith("Private_Dirty:")) {
                    dirty += kib(l);
                } else if (l.startsWith("Size:")) {
                    size += kib(l);
                }
            }
        }
        return new MappingRss(rss, dirty, size);
    }

    /** smaps mapping headers start with an address range "start-end perms …". */
    private static boolean isHeader(String line) {
        int dash = line.indexOf('-');
        int space = line.indexOf(' ');
        return dash > 0 && space > dash && line.substring(0, dash).chars().allMatch(c -> Character.digit(c, 16) >= 0);
    }

    private static long kib(String line) {
        String[] parts = line.trim().split("\\s+");
        return Long.parseLong(parts[1]);
    }

    public double rssMiB() {
        return rssKiB / 1024.0;
    }

    public double privateDirtyMiB() {
        return privateDirtyKiB / 1024.0;
    }
}

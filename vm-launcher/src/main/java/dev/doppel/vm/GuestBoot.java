package dev.doppel.vm;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Direct kernel boot: kernel, initramfs and the kernel command line. Doppel's own guest selects its
 * workload with {@code doppel.*} parameters (see guest/README.md).
 */
public record GuestBoot(Path kernel, Path initramfs, Map<String, String> parameters) {
    public GuestBoot {
        parameters = Map.copyOf(new LinkedHashMap<>(parameters));
    }

    /** The kernel command line: serial console first, then the parameters in a stable order. */
    public String commandLine() {
        String params = parameters.entrySet().stream()
                .sorted(Map.Entry.comparingByKey())
                .map(e -> e.getValue().isEmpty() ? e.getKey() : e.getKey() + "=" + e.getValue())
                .collect(Collectors.joining(" "));
        return ("console=ttyS0 panic=-1 " + params).trim();
    }

    public GuestBoot withParameter(String key, String value) {
        Map<String, String> p = new LinkedHashMap<>(parameters);
        p.put(key, value);
        return new GuestBoot(kernel, initramfs, p);
    }
}

package dev.doppel.vm;

import java.util.Locale;

/** Parses sizes such as 512, 512M, 1G (MiB when no unit). */
public final class MemorySize {
    private MemorySize() {
    }

    public static long mib(String text) {
        String t = text.trim().toUpperCase(Locale.ROOT);
        if (t.endsWith("IB")) {
            t = t.substring(0, t.length() - 2);
        }
        long factor = 1;
        if (t.endsWith("G")) {
            factor = 1024;
            t = t.substring(0, t.length() - 1);
        } else if (t.endsWith("M")) {
            t = t.substring(0, t.length() - 1);
        }
        try {
            return Long.parseLong(t) * factor;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad memory size '" + text + "' (use e.g. 512M or 1G)");
        }
    }
}

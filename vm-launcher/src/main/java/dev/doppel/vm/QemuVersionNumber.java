package dev.doppel.vm;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A QEMU release number as printed by {@code qemu-system-x86_64 --version}, e.g. 10.0.2. */
public record QemuVersionNumber(int major, int minor, int micro, String packageSuffix) implements Comparable<QemuVersionNumber> {
    private static final Pattern VERSION_LINE = Pattern.compile("QEMU emulator version (\\d+)\\.(\\d+)\\.(\\d+)\\s*(?:\\((.*)\\))?");

    /** Parses the first line of {@code --version} output. */
    public static QemuVersionNumber parse(String versionOutput) {
        Matcher m = VERSION_LINE.matcher(versionOutput);
        if (!m.find()) {
            throw new IllegalArgumentException("not a QEMU --version output: '" + versionOutput.lines().findFirst().orElse("") + "'");
        }
        return new QemuVersionNumber(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)),
                Integer.parseInt(m.group(3)), m.group(4) == null ? "" : m.group(4));
    }

    public boolean atLeast(int major, int minor, int micro) {
        return compareTo(new QemuVersionNumber(major, minor, micro, "")) >= 0;
    }

    @Override
    public int compareTo(QemuVersionNumber o) {
        int c = Integer.compare(major, o.major);
        if (c == 0) {
            c = Integer.compare(minor, o.minor);
        }
        return c != 0 ? c : Integer.compare(micro, o.micro);
    }

    @Override
    public String toString() {
        return major + "." + minor + "." + micro + (packageSuffix.isEmpty() ? "" : " (" + packageSuffix + ")");
    }
}

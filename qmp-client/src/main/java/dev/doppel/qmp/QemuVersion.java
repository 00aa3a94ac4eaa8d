package dev.doppel.qmp;

import com.fasterxml.jackson.databind.JsonNode;

/** QEMU's version as in the greeting and {@code query-version}: {@code {"qemu": {major, minor, micro}, "package"}}. */
public record QemuVersion(int major, int minor, int micro, String pkg) implements Comparable<QemuVersion> {

    /** Parses a QAPI {@code VersionInfo} object; throws IllegalArgumentException if it is not one. */
    public static QemuVersion fromVersionInfo(JsonNode versionInfo) {
        JsonNode q = versionInfo == null ? null : versionInfo.get("qemu");
        if (q == null || !q.path("major").isInt() || !q.path("minor").isInt() || !q.path("micro").isInt()) {
            throw new IllegalArgumentException("not a QEMU VersionInfo: " + versionInfo);
        }
        return new QemuVersion(q.get("major").asInt(), q.get("minor").asInt(), q.get("micro").asInt(),
                versionInfo.path("package").asText(""));
    }

    /** True if this version is at least {@code major.minor}. */
    public boolean atLeast(int major, int minor) {
        return this.major > major || (this.major == major && this.minor >= minor);
    }

    /** True if this version is at least {@code major.minor.micro} (e.g. a release with a fix). */
    public boolean atLeast(int major, int minor, int micro) {
        return compareTo(new QemuVersion(major, minor, micro, "")) >= 0;
    }

    @Override
    public int compareTo(QemuVersion o) {
        int c = Integer.compare(major, o.major);
        if (c == 0) {
            c = Integer.compare(minor, o.minor);
        }
        return c != 0 ? c : Integer.compare(micro, o.micro);
    }

    @Override
    public String toString() {
        return major + "." + minor + "." + micro + (pkg == null || pkg.isEmpty() ? "" : " (" + pkg + ")");
    }
}

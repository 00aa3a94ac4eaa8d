package dev.doppel.qmp.commands;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.QemuVersion;

/** {@code query-version}: {@code {"qemu": {"major", "minor", "micro"}, "package"}}. */
public record VersionInfo(int major, int minor, int micro, String pkg) {

    public static VersionInfo from(JsonNode r) {
        QemuVersion v = QemuVersion.fromVersionInfo(r);
        return new VersionInfo(v.major(), v.minor(), v.micro(), v.pkg());
    }

    public QemuVersion asQemuVersion() {
        return new QemuVersion(major, minor, micro, pkg);
    }

    @Override
    public String toString() {
        return major + "." + minor + "." + micro + (pkg == null || pkg.isEmpty() ? "" : " (" + pkg + ")");
    }
}

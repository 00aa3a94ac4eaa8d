package dev.doppel.vm;

/** QEMU's comma-separated option syntax: a literal comma inside a value is written twice. */
final class QemuOptionText {
    private QemuOptionText() {
    }

    static String escape(String value) {
        return value.replace(",", ",,");
    }
}

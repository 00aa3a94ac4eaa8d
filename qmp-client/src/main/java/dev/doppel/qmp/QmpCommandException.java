package dev.doppel.qmp;

/**
 * QEMU answered a command with an {@code error} member, e.g.
 * {@code VM 'web1': 'blockdev-add' failed: GenericError: Could not open '/x': No such file or directory}.
 */
public class QmpCommandException extends QmpException {

    private final String id;
    private final String errorClass;
    private final String description;

    public QmpCommandException(String vmName, String command, String id, String errorClass, String description) {
        super(vmName, command, "'" + command + "' failed: " + errorClass + ": " + description, null);
        this.id = id;
        this.errorClass = errorClass;
        this.description = description;
    }

    /** QMP error class: {@code GenericError}, {@code CommandNotFound}, {@code DeviceNotFound}, ... */
    public String errorClass() {
        return errorClass;
    }

    /** QEMU's human readable {@code desc}. */
    public String description() {
        return description;
    }

    /** The id the command was sent with. */
    public String id() {
        return id;
    }
}

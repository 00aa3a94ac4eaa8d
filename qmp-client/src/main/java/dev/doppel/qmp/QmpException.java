package dev.doppel.qmp;

/**
 * Root of every QMP failure. Unchecked. The message always starts with {@code VM '<name>': } and names the
 * command or the phase; the root cause (I/O error, JSON error, the connection failure behind a failed call) is
 * kept as {@link #getCause()}.
 */
public class QmpException extends RuntimeException {

    private final String vmName;
    private final String command;
    private final String detail;

    /**
     * @param vmName  the VM this connection belongs to
     * @param command the QMP command concerned, or null when the failure is about a phase (connect, greeting...)
     * @param detail  what went wrong, without the VM prefix
     * @param cause   the root cause, or null
     */
    public QmpException(String vmName, String command, String detail, Throwable cause) {
        super("VM '" + vmName + "': " + detail, cause);
        this.vmName = vmName;
        this.command = command;
        this.detail = detail;
    }

    public QmpException(String vmName, String command, String detail) {
        this(vmName, command, detail, null);
    }

    /** The VM name given in the client options. */
    public String vmName() {
        return vmName;
    }

    /** The QMP command concerned, or null if the failure is not about one command. */
    public String command() {
        return command;
    }

    /** The message without the {@code VM 'x': } prefix. */
    public String detail() {
        return detail;
    }
}

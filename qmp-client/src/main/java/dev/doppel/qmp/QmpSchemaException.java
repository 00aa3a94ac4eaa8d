package dev.doppel.qmp;

import java.util.List;

/**
 * A command failed validation against the QEMU's own schema ({@code query-qmp-schema}) before it was sent:
 * unknown command, unknown member, missing required member. Nothing was sent to QEMU.
 */
public class QmpSchemaException extends QmpException {

    private final List<String> problems;

    public QmpSchemaException(String vmName, String command, List<String> problems) {
        super(vmName, command, "'" + command + "' does not match the QMP schema: " + String.join("; ", problems), null);
        this.problems = List.copyOf(problems);
    }

    public QmpSchemaException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
        this.problems = List.of(detail);
    }

    /** One line per problem, e.g. {@code unknown member 'arguments.foo'}. */
    public List<String> problems() {
        return problems;
    }
}

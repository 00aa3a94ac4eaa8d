package dev.doppel.qmp;

/** The peer broke QMP framing (malformed JSON, a message over the size limit, a non-object message). QMP cannot resynchronise, so the connection is closed and every pending call fails with this type, its cause being the connection-level instance. */
public class QmpProtocolException extends QmpException {

    public QmpProtocolException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
    }

    public QmpProtocolException(String vmName, String command, String detail) {
        super(vmName, command, detail, null);
    }
}

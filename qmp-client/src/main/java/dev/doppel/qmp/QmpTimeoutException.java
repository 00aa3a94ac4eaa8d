package dev.doppel.qmp;

/** No reply (or event) within the given time. For a command, the call is abandoned: its late reply, if any, is logged and dropped by the reader. */
public class QmpTimeoutException extends QmpException {

    public QmpTimeoutException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
    }

    public QmpTimeoutException(String vmName, String command, String detail) {
        super(vmName, command, detail, null);
    }
}

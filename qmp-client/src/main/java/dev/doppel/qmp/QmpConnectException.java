package dev.doppel.qmp;

/** Connecting the transport failed (socket missing, refused, deadline passed); raised on the caller side by {@code connect*}. */
public class QmpConnectException extends QmpException {

    public QmpConnectException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
    }

    public QmpConnectException(String vmName, String command, String detail) {
        super(vmName, command, detail, null);
    }
}

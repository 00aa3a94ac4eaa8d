package dev.doppel.qmp;

/**
 * The QMP connection ended (peer closed it, EOF in the middle of a message, read/write error, or
 * {@link QmpClient#close()}) while a call or event wait was pending, or a call was made on a closed client.
 * The cause is the connection-level reason when there is one.
 */
public class QmpDisconnectedException extends QmpException {

    public QmpDisconnectedException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
    }

    public QmpDisconnectedException(String vmName, String command, String detail) {
        super(vmName, command, detail, null);
    }
}

package dev.doppel.qmp;

/** No valid QMP greeting arrived: nothing within the greeting timeout, the peer closed first, or the first message was not a greeting. Raised by {@code connect*}. */
public class QmpGreetingException extends QmpException {

    public QmpGreetingException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
    }

    public QmpGreetingException(String vmName, String command, String detail) {
        super(vmName, command, detail, null);
    }
}

package dev.doppel.qmp;

/** {@code qmp_capabilities} failed or got no reply, so the connection never left capabilities-negotiation mode. Raised by {@code connect*}. */
public class QmpNegotiationException extends QmpException {

    public QmpNegotiationException(String vmName, String command, String detail, Throwable cause) {
        super(vmName, command, detail, cause);
    }

    public QmpNegotiationException(String vmName, String command, String detail) {
        super(vmName, command, detail, null);
    }
}

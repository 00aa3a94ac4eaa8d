package dev.doppel.libvirt;

import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpClientOptions;

/** A {@link QmpClient} for the QEMU of a libvirt domain, through libvirt (see {@link LibvirtQmpConnection}). */
public final class LibvirtQmp {
    private LibvirtQmp() {
    }

    /**
     * Connects to the running domain {@code domain}: {@code options.vmName()} names it in logs and errors
     * (usually the domain name).
     *
     * @throws LibvirtCallException                if there is no such domain
     * @throws dev.doppel.qmp.QmpGreetingException if the domain is not running or QEMU does not answer
     */
    public static QmpClient connect(LibvirtConnection connection, String domain, QmpClientOptions options) {
        return QmpClient.connect(LibvirtQmpConnection.forDomain(connection, domain), options);
    }

    /** {@link #connect(LibvirtConnection, String, QmpClientOptions)} with default options named after the domain. */
    public static QmpClient connect(LibvirtConnection connection, String domain) {
        return connect(connection, domain, QmpClientOptions.defaults(domain));
    }
}

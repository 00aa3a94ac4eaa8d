package dev.doppel.libvirt;

/**
 * A libvirt call failed. The message names the connection, the domain when there is one, the step and
 * libvirt's own error text ("libvirt qemu:///system: domain 'web1': lookup failed: Domain not found: ...").
 */
public class LibvirtCallException extends RuntimeException {
    private final String domain;

    public LibvirtCallException(String uri, String domain, String step, Throwable cause) {
        super("libvirt " + uri + ": " + (domain == null ? "" : "domain '" + domain + "': ") + step + " failed: "
                + (cause == null ? "(no cause)" : cause.getMessage()), cause);
        this.domain = domain;
    }

    /** The domain the failed call was about, or null for a connection-level call. */
    public String domain() {
        return domain;
    }
}

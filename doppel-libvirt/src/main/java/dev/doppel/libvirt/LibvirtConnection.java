package dev.doppel.libvirt;

import com.sun.jna.Pointer;
import org.libvirt.Connect;
import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One open connection to a libvirt daemon (libvirt-java {@link Connect}), with libvirt's event loop running for
 * it (see {@link LibvirtEventLoop}). Thread safe: libvirt's connection objects are. Closing it ends every
 * callback registered through it.
 */
public final class LibvirtConnection implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LibvirtConnection.class);

    private final String uri;
    private final PointerConnect connect;
    private final AtomicBoolean closed = new AtomicBoolean();

    private LibvirtConnection(String uri, PointerConnect connect) {
        this.uri = uri;
        this.connect = connect;
    }

    /**
     * Opens a read-write connection, e.g. {@code qemu:///system} or {@code qemu:///system?socket=/run/x/libvirt-sock}.
     *
     * @throws LibvirtCallException if the daemon cannot be reached or refuses
     */
    public static LibvirtConnection open(String uri) {
        Objects.requireNonNull(uri, "uri");
        try {
            LibvirtEventLoop.acquire();
        } catch (LibvirtException e) {
            throw new LibvirtCallException(uri, null, "registering libvirt's event loop", e);
        }
        try {
            PointerConnect c = new PointerConnect(uri);
            LibvirtConnection connection = new LibvirtConnection(uri, c);
            // The daemon going away (killed, restarted) ends the connection: say so once, with libvirt's reason.
            c.registerCloseListener((conn, reason) -> log.warn("libvirt {}: connection closed ({})", uri, reason));
            return connection;
        } catch (LibvirtException | RuntimeException e) {
            LibvirtEventLoop.release();
            throw new LibvirtCallException(uri, null, "opening the connection", e);
        }
    }

    public String uri() {
        return uri;
    }

    /**
     * The domain named {@code name}, running or only defined.
     *
     * @throws LibvirtCallException if there is none (libvirt's "Domain not found") or the call fails
     */
    public Domain domain(String name) {
        try {
            return connect.domainLookupByName(name);
        } catch (LibvirtException e) {
            throw new LibvirtCallException(uri, name, "lookup", e);
        }
    }

    /** True while the connection is open and the daemon answers. */
    public boolean isAlive() {
        try {
            return !closed.get() && connect.isAlive();
        } catch (LibvirtException e) {
            return false;
        }
    }

    /** libvirt-java's connection, for calls this class does not wrap. */
    public Connect libvirt() {
        return connect;
    }

    /** The C {@code virConnectPtr}, for the calls libvirt-java 0.5.4 lacks (see {@link QemuMonitorEventSource}). */
    Pointer pointer() {
        return connect.pointer();
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            connect.unregisterCloseListener();
        } catch (LibvirtException | RuntimeException e) {
            log.debug("libvirt {}: unregistering the close listener failed: {}", uri, e.getMessage());
        }
        try {
            connect.close();
        } catch (LibvirtException e) {
            log.warn("libvirt {}: closing the connection failed: {}", uri, e.getMessage());
        } finally {
            LibvirtEventLoop.release();
        }
    }

    @Override
    public String toString() {
        return "LibvirtConnection[" + uri + (closed.get() ? " closed" : "") + "]";
    }

    /** libvirt-java keeps the {@code virConnectPtr} in a protected field; a subclass is the one way to read it. */
    private static final class PointerConnect extends Connect {
        PointerConnect(String uri) throws LibvirtException {
            super(uri, false);
        }

        Pointer pointer() {
            return vcp.getPointer();
        }
    }
}

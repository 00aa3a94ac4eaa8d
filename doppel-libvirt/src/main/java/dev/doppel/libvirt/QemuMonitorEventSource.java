package dev.doppel.libvirt;

import com.sun.jna.Callback;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * QEMU monitor events of one domain, as libvirtd passes them on ({@code virConnectDomainQemuMonitorEventRegister}
 * in libvirt-qemu.so): every event QEMU emits on the monitor libvirt owns ({@code STOP}, {@code RESUME},
 * {@code MIGRATION}, {@code BLOCK_JOB_READY} …), with QEMU's own timestamp and data.
 *
 * <p>Direct JNA because libvirt-java 0.5.4 binds only {@code virDomainQemuMonitorCommand} and
 * {@code virDomainQemuAgentCommand} from libvirt-qemu (its {@code LibvirtQemu} interface), not the event
 * registration. The callback runs on libvirt's event loop thread.
 */
final class QemuMonitorEventSource implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(QemuMonitorEventSource.class);

    /** Receives one event: its name, QEMU's timestamp and its {@code data} as JSON text (null if none). */
    interface Sink {
        void onEvent(String event, long seconds, int micros, String dataJson);
    }

    /** {@code virConnectDomainQemuMonitorEventCallback}. */
    interface MonitorEventCallback extends Callback {
        void invoke(Pointer conn, Pointer dom, String event, long seconds, int micros, String details, Pointer opaque);
    }

    interface LibvirtQemuEvents extends Library {
        LibvirtQemuEvents INSTANCE = Native.load("virt-qemu", LibvirtQemuEvents.class);

        int virConnectDomainQemuMonitorEventRegister(Pointer conn, Pointer dom, String event, MonitorEventCallback cb,
                                                     Pointer opaque, Pointer freecb, int flags);

        int virConnectDomainQemuMonitorEventDeregister(Pointer conn, int callbackId);
    }

    /** The few libvirt.so calls needed around the registration, with a domain reference of our own. */
    interface LibvirtDomains extends Library {
        LibvirtDomains INSTANCE = Native.load("virt", LibvirtDomains.class);

        Pointer virDomainLookupByUUIDString(Pointer conn, String uuid);

        int virDomainFree(Pointer dom);

        String virGetLastErrorMessage();
    }

    private final LibvirtConnection connection;
    private final String domainName;
    private final Pointer domain;
    // JNA frees a callback's native stub when the Java object is collected: keep it reachable while registered.
    private final MonitorEventCallback callback;
    private final int callbackId;
    private final AtomicBoolean closed = new AtomicBoolean();

    private QemuMonitorEventSource(LibvirtConnection connection, String domainName, Pointer domain,
                                   MonitorEventCallback callback, int callbackId) {
        this.connection = connection;
        this.domainName = domainName;
        this.domain = domain;
        this.callback = callback;
        this.callbackId = callbackId;
    }

    /**
     * Registers for all QEMU monitor events of the domain with UUID {@code uuid}.
     *
     * @throws LibvirtCallException if the domain is gone or libvirt refuses the registration
     */
    static QemuMonitorEventSource register(LibvirtConnection connection, String domainName, String uuid, Sink sink) {
        Pointer dom = LibvirtDomains.INSTANCE.virDomainLookupByUUIDString(connection.pointer(), uuid);
        if (dom == null) {
            throw new LibvirtCallException(connection.uri(), domainName, "lookup by UUID " + uuid,
                    new IllegalStateException(LibvirtDomains.INSTANCE.virGetLastErrorMessage()));
        }
        MonitorEventCallback cb = (conn, d, event, seconds, micros, details, opaque) -> {
            try {
                sink.onEvent(event, seconds, micros, details);
            } catch (RuntimeException e) {
                log.error("domain '{}': QEMU monitor event {} dropped: the sink failed", domainName, event, e);
            }
        };
        int id = LibvirtQemuEvents.INSTANCE.virConnectDomainQemuMonitorEventRegister(connection.pointer(), dom, null, cb,
                null, null, 0);
        if (id < 0) {
            String why = LibvirtDomains.INSTANCE.virGetLastErrorMessage();
            LibvirtDomains.INSTANCE.virDomainFree(dom);
            throw new LibvirtCallException(connection.uri(), domainName, "registering for QEMU monitor events",
                    new IllegalStateException(why));
        }
        return new QemuMonitorEventSource(connection, domainName, dom, cb, id);
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (connection.isAlive()
                && LibvirtQemuEvents.INSTANCE.virConnectDomainQemuMonitorEventDeregister(connection.pointer(), callbackId) < 0) {
            log.debug("domain '{}': deregistering QEMU monitor events failed: {}", domainName,
                    LibvirtDomains.INSTANCE.virGetLastErrorMessage());
        }
        LibvirtDomains.INSTANCE.virDomainFree(domain);
        log.trace("domain '{}': QEMU monitor events closed (callback {} kept until now: {})", domainName, callbackId, callback);
    }
}

package dev.doppel.libvirt;

import org.libvirt.Library;
import org.libvirt.LibvirtException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * libvirt's default event loop, which delivers every callback (lifecycle events, QEMU monitor events, the
 * connection's close notice). It is one per process in libvirt ({@code virEventRegisterDefaultImpl}), so this
 * is a process-wide, reference-counted thread: the first open {@link LibvirtConnection} starts it, the last one
 * closed stops it. It must be registered before a connection is opened, or that connection never gets events.
 */
final class LibvirtEventLoop {
    private static final Logger log = LoggerFactory.getLogger(LibvirtEventLoop.class);
    private static final Object LOCK = new Object();
    private static boolean registered;
    private static int users;
    private static Thread thread;

    private LibvirtEventLoop() {
    }

    /** Registers libvirt's event implementation once per process and starts the loop thread if it is not running. */
    static void acquire() throws LibvirtException {
        synchronized (LOCK) {
            if (!registered) {
                Library.initEventLoop();
                registered = true;
            }
            if (users++ == 0) {
                Thread t = new Thread(LibvirtEventLoop::run, "libvirt-event-loop");
                t.setDaemon(true);
                thread = t;
                t.start();
            }
        }
    }

    /** Stops the loop thread when the last user leaves. */
    static void release() {
        synchronized (LOCK) {
            if (users == 0 || --users > 0) {
                return;
            }
            Thread t = thread;
            thread = null;
            // stopEventLoop only wakes a loop that has already entered runEventLoop: a thread that starts late
            // would miss one call, so repeat it until the thread is gone.
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (t.isAlive() && System.nanoTime() < deadline) {
                try {
                    Library.stopEventLoop();
                    t.join(50);
                } catch (LibvirtException e) {
                    log.warn("stopping libvirt's event loop failed: {}", e.getMessage());
                    break;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            if (t.isAlive()) {
                log.warn("libvirt's event loop thread did not stop within 5 s");
            }
        }
    }

    private static void run() {
        try {
            Library.runEventLoop();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (LibvirtException | RuntimeException e) {
            log.error("libvirt's event loop failed; no further libvirt events are delivered", e);
        }
    }
}

package dev.doppel.remus.failover;

/**
 * A VM a failover restored on this host: a QEMU of Doppel's launcher ({@link LaunchedVm}) or a domain of another
 * manager (a libvirt domain, in doppel-libvirt), which the backup service reports and ends the same way.
 */
public interface RestoredVm {
    /** Its name on this host. */
    String name();

    /** Its QEMU process. */
    long pid();

    boolean isAlive();

    /** Where it runs, for messages: "pid 4711", "libvirt domain web1 (pid 4711)". */
    String describe();

    /** Lets go of its QMP monitor, so that whoever protects it next can have it (QEMU serves one client). */
    void releaseMonitor();

    /**
     * The restoring service ends and the VM is to end with it: a QEMU of Doppel's launcher is stopped. A domain
     * that another manager owns is only let go: it stays that manager's (libvirt: {@code virsh destroy} stops it).
     */
    void close();
}

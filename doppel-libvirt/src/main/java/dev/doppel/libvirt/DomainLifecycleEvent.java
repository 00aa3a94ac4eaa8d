package dev.doppel.libvirt;

import org.libvirt.event.DomainEvent;
import org.libvirt.event.DomainEventType;
import org.libvirt.event.StoppedDetail;

import java.time.Instant;
import java.util.Locale;

/**
 * One libvirt domain lifecycle event, as Doppel reads it.
 *
 * @param domain        the domain's name
 * @param uuid          the domain's UUID
 * @param kind          what happened, in Doppel's terms (see {@link Kind})
 * @param cause         libvirt's event type and detail, e.g. {@code stopped/destroyed}, {@code stopped/failed}
 * @param receivedAt    when this process received it
 * @param receivedNanos {@link System#nanoTime()} at receipt, for latency measurements
 */
public record DomainLifecycleEvent(String domain, String uuid, Kind kind, String cause, Instant receivedAt,
                                   long receivedNanos) {

    /** What happened to the domain. */
    public enum Kind {
        DEFINED, UNDEFINED, STARTED, SUSPENDED, RESUMED,
        /** QEMU ended in an orderly way: destroyed, shut down, migrated away, saved. */
        STOPPED,
        /** QEMU died unexpectedly (killed, exited on an error) or the guest panicked: the domain is lost. */
        CRASHED,
        /** The guest is shutting down (QEMU still runs). */
        SHUTDOWN,
        PMSUSPENDED,
        OTHER
    }

    /** True for the kinds after which the domain no longer runs. */
    public boolean ended() {
        return kind == Kind.STOPPED || kind == Kind.CRASHED;
    }

    static DomainLifecycleEvent from(String domain, String uuid, DomainEvent event, Instant at, long nanos) {
        DomainEventType type = event.getType();
        Enum<?> detail = detailOf(event);
        String cause = lower(type) + "/" + (detail == null ? "unknown" : lower(detail));
        return new DomainLifecycleEvent(domain, uuid, kindOf(type, detail), cause, at, nanos);
    }

    static Kind kindOf(DomainEventType type, Enum<?> detail) {
        if (type == null) {
            return Kind.OTHER;
        }
        return switch (type) {
            case DEFINED -> Kind.DEFINED;
            case UNDEFINED -> Kind.UNDEFINED;
            case STARTED -> Kind.STARTED;
            case SUSPENDED -> Kind.SUSPENDED;
            case RESUMED -> Kind.RESUMED;
            // libvirt says "stopped/failed" when QEMU's monitor closed without libvirt asking (SIGKILL, a QEMU
            // abort), and "stopped/crashed" after a guest crash with on_crash=destroy: both are a lost VM.
            case STOPPED -> detail == StoppedDetail.FAILED || detail == StoppedDetail.CRASHED ? Kind.CRASHED : Kind.STOPPED;
            case CRASHED -> Kind.CRASHED;
            case SHUTDOWN -> Kind.SHUTDOWN;
            case PMSUSPENDED -> Kind.PMSUSPENDED;
            default -> Kind.OTHER;
        };
    }

    private static Enum<?> detailOf(DomainEvent event) {
        try {
            Object d = event.getDetail();
            return d instanceof Enum<?> e ? e : null;
        } catch (RuntimeException e) {
            return null; // a detail number newer than libvirt-java knows
        }
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }
}

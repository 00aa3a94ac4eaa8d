package dev.doppel.clone;

import dev.doppel.clone.identity.CloneIdentityException;
import dev.doppel.clone.identity.QgaCloneIdentity;
import dev.doppel.vm.qga.QgaClient;
import dev.doppel.vm.qga.QgaException;
import java.time.Duration;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fork path's side of {@link QgaCloneIdentity}, for families of real guests (a stock distribution
 * with qemu-guest-agent): connects to the member's current qemu-ga socket, applies the identity,
 * brings the clone's tap up only then, and completes the member's {@link ForkableVm#identity()}.
 */
final class RealGuestIdentities {
    private static final Logger log = LoggerFactory.getLogger(RealGuestIdentities.class);
    /** A freshly started clone's agent answers at once; a booting root's only once the guest is up. */
    static final Duration CLONE_AGENT_TIMEOUT = Duration.ofSeconds(60);
    static final Duration ROOT_AGENT_TIMEOUT = Duration.ofSeconds(600);

    private RealGuestIdentities() {
    }

    /** Clone: clock, RNG, host name ({@code clone.name()}), MAC and IP, SSH host keys; then its tap comes up. */
    static void giveClone(ForkableVm clone, byte[] entropy) {
        ForkableVm parent = clone.parent();
        long t0 = System.nanoTime();
        QgaCloneIdentity.Target target = new QgaCloneIdentity.Target(parent.name(), clone.name(), clone.name(),
                parent.address().mac(), clone.address().mac(), clone.address().cidr());
        try (QgaClient qga = agent(target, clone, CLONE_AGENT_TIMEOUT)) {
            QgaCloneIdentity.Timings t = QgaCloneIdentity.applyToClone(qga, target, entropy);
            clone.process().tapUp();
            double ms = (System.nanoTime() - t0) / 1e6;
            clone.identity().complete(null);
            log.info("vm={} clone={} event=identity-set via=qemu-ga hostname={} ip={} mac={} ms={} steps_ms={}", parent.name(),
                    clone.name(), clone.name(), clone.address().ip(), clone.address().mac(), fmt(ms), t.stepMs().keySet().stream()
                            .map(k -> k + ":" + fmt(t.stepMs().get(k))).toList());
        } catch (CloneIdentityException | ForkException e) {
            fail(clone, e);
        }
    }

    /** Root: waits for the booting guest's agent, then gives its NIC the family's root address. */
    static void giveRootAddress(ForkableVm root) {
        long t0 = System.nanoTime();
        QgaCloneIdentity.Target target = new QgaCloneIdentity.Target(root.name(), root.name(), null,
                root.address().mac(), root.address().mac(), root.address().cidr());
        try (QgaClient qga = agent(target, root, ROOT_AGENT_TIMEOUT)) {
            QgaCloneIdentity.applyAddress(qga, target);
            root.identity().complete(null);
            log.info("vm={} event=identity-set via=qemu-ga ip={} ms={} (from QEMU start: guest boot and agent)", root.name(),
                    root.address().ip(), fmt((System.nanoTime() - t0) / 1e6));
        } catch (CloneIdentityException | ForkException e) {
            fail(root, e);
        }
    }

    private static QgaClient agent(QgaCloneIdentity.Target target, ForkableVm vm, Duration timeout) {
        try {
            return QgaClient.awaitAgent(vm.name(), vm.qgaSocket(), timeout,
                    waited -> log.info("vm={} event=identity-waiting-for-agent waited_s={}", vm.name(), waited.toSeconds()));
        } catch (QgaException e) {
            throw new CloneIdentityException(target.parent(), target.vm(), "agent", e);
        }
    }

    private static void fail(ForkableVm vm, RuntimeException e) {
        log.warn("vm={} event=identity-failed cause=\"{}\" (a clone stays off the clone network)", vm.name(), e.getMessage());
        vm.identity().completeExceptionally(e);
    }

    private static String fmt(double ms) {
        return String.format(Locale.ROOT, "%.0f", ms);
    }
}

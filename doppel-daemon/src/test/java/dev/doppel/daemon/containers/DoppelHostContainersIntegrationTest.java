package dev.doppel.daemon.containers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.Network;
import org.testcontainers.lifecycle.Startables;

/**
 * The ground the multi-host daemon test stands on: two {@link DoppelHostContainer}s on one network.
 * In each, the patched QEMU runs (its version, and Doppel's test guest booted under TCG up to its
 * console line DOPPEL-READY), Java runs Doppel's jar, Doppel's CLI starts a VM on the patched QEMU
 * (the in-container conventions the daemon relies on), and host A reaches host B over TCP by B's alias.
 */
@Tag("integration")
@Timeout(600)
class DoppelHostContainersIntegrationTest {
    private static final Logger log = LoggerFactory.getLogger(DoppelHostContainersIntegrationTest.class);

    /** The guest as vm-launcher boots it (QemuCommandLine): pinned machine, no defaults, kernel + initramfs, serial console. */
    private static final String BOOT_GUEST = """
            rm -f /tmp/console.log /tmp/qemu.pid
            qemu-system-x86_64 -name doppel-ctr-smoke-$(hostname) -machine pc-i440fx-10.0 -accel tcg -m 128M -smp 1 \
              -nodefaults -no-user-config -display none \
              -kernel /opt/doppel/guest/vmlinuz -initrd /opt/doppel/guest/initramfs.img \
              -append 'console=ttyS0 panic=-1 doppel.run=ticker' \
              -serial file:/tmp/console.log -pidfile /tmp/qemu.pid -daemonize || exit 3
            i=0
            until grep -q DOPPEL-READY /tmp/console.log; do
              i=$((i + 1)); [ $i -le 240 ] || break; sleep 0.25
            done
            kill "$(cat /tmp/qemu.pid)"
            cat /tmp/console.log
            """;

    @Test
    void twoHostsRunThePatchedQemuAndJavaAndReachEachOtherByAlias() throws Exception {
        try (Network network = Network.newNetwork();
                DoppelHostContainer a = new DoppelHostContainer("hosta", network);
                DoppelHostContainer b = new DoppelHostContainer("hostb", network)) {
            long t0 = System.nanoTime();
            Startables.deepStart(a, b).join();
            log.info("event=containers-started ms={}", (System.nanoTime() - t0) / 1_000_000);

            for (DoppelHostContainer h : new DoppelHostContainer[] {a, b}) {
                ExecResult v = h.execInContainer("qemu-system-x86_64", "--version");
                assertEquals(0, v.getExitCode(), h.alias() + ": qemu-system-x86_64 --version: " + v.getStderr());
                assertTrue(v.getStdout().contains("Doppel COLO patches"), h.alias() + " runs the patched QEMU: " + v.getStdout());

                ExecResult prefix = h.execInContainer("/opt/doppel/scripts/build-qemu-colo");
                assertEquals("/opt/qemu-colo", prefix.getStdout().strip(), "how Doppel finds the patched QEMU in " + h.alias());

                ExecResult java = h.execInContainer("java", "-version");
                assertEquals(0, java.getExitCode(), java.getStderr());
                assertTrue(java.getStderr().contains("version \"17."), h.alias() + ": " + java.getStderr());

                ExecResult jar = h.execInContainer("java", "-jar", "/opt/doppel/doppel.jar", "--help");
                assertEquals(0, jar.getExitCode(), h.alias() + ": doppel --help: " + jar.getStdout() + jar.getStderr());
                assertTrue(jar.getStdout().contains("Usage: doppel"), jar.getStdout());
            }

            long boot = System.nanoTime();
            ExecResult console = b.sh(Duration.ofSeconds(120), BOOT_GUEST);
            long bootMs = (System.nanoTime() - boot) / 1_000_000;
            log.info("event=guest-booted-in-container host=hostb ms={}", bootMs);
            assertEquals(0, console.getExitCode(), "QEMU in hostb: " + console.getStdout() + console.getStderr());
            assertTrue(console.getStdout().contains("DOPPEL-READY"),
                    "Doppel's guest boots under TCG inside hostb; console:\n" + console.getStdout() + console.getStderr());

            // The conventions the daemon relies on: Doppel's CLI in hosta starts its guest on the patched QEMU
            // (found through /opt/doppel/scripts/build-qemu-colo), with the guest from /opt/doppel/guest.
            long cli = System.nanoTime();
            ExecResult started = a.sh(Duration.ofSeconds(180), "java -jar /opt/doppel/doppel.jar vm start smoke1 --run ticker "
                    + "--mem 128M --colo --wait-ready && java -jar /opt/doppel/doppel.jar vm list");
            log.info("event=cli-vm-started-in-container host=hosta ms={}", (System.nanoTime() - cli) / 1_000_000);
            assertEquals(0, started.getExitCode(), "hosta: doppel vm start --colo: " + started.getStdout() + started.getStderr());
            assertTrue(started.getStdout().lines().anyMatch(l -> l.startsWith("smoke1") && l.contains("running")),
                    "hosta: doppel vm list shows smoke1 running: " + started.getStdout());
            ExecResult stopped = a.execInContainer("java", "-jar", "/opt/doppel/doppel.jar", "vm", "stop", "smoke1");
            assertEquals(0, stopped.getExitCode(), "hosta: doppel vm stop: " + stopped.getStdout() + stopped.getStderr());

            ExecResult listen = b.execInContainer("sh", "-c",
                    "setsid socat TCP-LISTEN:7000,reuseaddr,fork SYSTEM:'echo hello from $(hostname)' >/tmp/socat.log 2>&1 </dev/null &");
            assertEquals(0, listen.getExitCode(), listen.getStderr());
            String[] reply = {""};
            boolean answered = DoppelHostContainer.await(Duration.ofSeconds(20), () -> {
                try {
                    ExecResult r = a.execInContainer("socat", "-T", "5", "-", "TCP:hostb:7000");
                    reply[0] = r.getStdout() + r.getStderr();
                    return r.getExitCode() == 0 && r.getStdout().contains("hello from hostb");
                } catch (Exception e) {
                    reply[0] = e.toString();
                    return false;
                }
            });
            assertTrue(answered, "hosta reaches hostb:7000 by alias over the shared network: " + reply[0]);
            log.info("event=smoke-done ms={}", (System.nanoTime() - t0) / 1_000_000);
        }
    }
}

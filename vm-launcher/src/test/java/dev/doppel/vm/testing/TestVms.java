package dev.doppel.vm.testing;

import dev.doppel.vm.ChildProcesses;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.VmLauncher;
import dev.doppel.vm.VmProcess;
import dev.doppel.vm.VmSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;

/**
 * Owner of the VMs a test starts: declare it as a field with {@code @AutoClose} and every VM is
 * stopped after the test, pass or fail. Shared by the integration tests of all modules.
 */
public final class TestVms implements AutoCloseable {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static volatile VmLauncher launcher;

    private final List<AutoCloseable> owned = Collections.synchronizedList(new ArrayList<>());

    /** One launcher per JVM: the accelerator decision is logged once. */
    public static VmLauncher launcher() {
        if (launcher == null) {
            synchronized (TestVms.class) {
                if (launcher == null) {
                    launcher = VmLauncher.fromEnvironment();
                }
            }
        }
        return launcher;
    }

    public static GuestImage guest() {
        return GuestImage.locate();
    }

    /** A unique VM name with a readable prefix (run dirs must not collide across tests). */
    public static String uniqueName(String prefix) {
        return prefix + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
    }

    /** A spec for Doppel's guest running {@code workload}. */
    public VmSpec.Builder guestSpec(String prefix, String workload, Map<String, String> params) {
        return VmLauncher.guestSpec(uniqueName(prefix), guest(), workload, params);
    }

    public VmProcess start(VmSpec spec) {
        return own(launcher().start(spec));
    }

    /** Starts and waits for the guest's DOPPEL-READY line. */
    public VmProcess startReady(VmSpec spec) throws TimeoutException {
        VmProcess vm = start(spec);
        vm.console().awaitLine(Pattern.compile("DOPPEL-READY"), Duration.ofSeconds(120));
        return vm;
    }

    /** Hands any resource (a VM, a namespace, a clone set) to this owner. */
    public <T extends AutoCloseable> T own(T resource) {
        owned.add(resource);
        return resource;
    }

    @Override
    public void close() throws Exception {
        Exception first = null;
        List<AutoCloseable> copy;
        synchronized (owned) {
            copy = new ArrayList<>(owned);
            owned.clear();
        }
        Collections.reverse(copy);
        for (AutoCloseable c : copy) {
            try {
                c.close();
            } catch (Exception e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    /** Number of processes still owned by {@link ChildProcesses} (leak checks). */
    public static int liveProcesses() {
        return ChildProcesses.liveCount();
    }
}

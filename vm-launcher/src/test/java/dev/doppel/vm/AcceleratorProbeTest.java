package dev.doppel.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The accelerator decision from host facts (fake /dev/kvm, cpuinfo and PVM module paths). */
class AcceleratorProbeTest {
    @TempDir Path tmp;

    private int hosts;

    /** A fake host (its own directory): /dev/kvm present or not, CPU flags, PVM module loaded or not. */
    private AcceleratorProbe probe(boolean kvmExists, String flags, boolean pvm) throws Exception {
        Path host = Files.createDirectory(tmp.resolve("host" + hosts++));
        Path kvm = host.resolve("kvm");
        if (kvmExists) {
            Files.writeString(kvm, "");
        }
        Path cpuinfo = host.resolve("cpuinfo");
        Files.writeString(cpuinfo, "processor\t: 0\nflags\t\t: fpu vme " + flags + " sse2\n\n");
        Path pvmDir = host.resolve("kvm_pvm");
        if (pvm) {
            Files.createDirectories(pvmDir);
        }
        return new AcceleratorProbe(kvm, cpuinfo, pvmDir);
    }

    @Test
    void noDevKvmMeansTcg() throws Exception {
        AcceleratorChoice c = probe(false, "vmx", false).detect();
        assertEquals(Accelerator.TCG, c.accelerator());
        assertTrue(c.reason().contains("does not exist"), c.reason());
    }

    @Test
    void devKvmWithoutHardwareFlagIsTcg() throws Exception {
        AcceleratorChoice c = probe(true, "hypervisor", false).detect();
        assertEquals(Accelerator.TCG, c.accelerator());
        assertTrue(c.reason().contains("no vmx/svm"), c.reason());
    }

    @Test
    void pvmHostIsTcgEvenWithFlags() throws Exception {
        AcceleratorChoice c = probe(true, "vmx", true).detect();
        assertEquals(Accelerator.TCG, c.accelerator());
        assertTrue(c.reason().contains("PVM"), c.reason());
    }

    @Test
    void vmxOrSvmWithDevKvmIsKvm() throws Exception {
        assertEquals(Accelerator.KVM, probe(true, "vmx", false).detect().accelerator());
        assertEquals(Accelerator.KVM, probe(true, "svm", false).detect().accelerator());
    }

    @Test
    void forcedChoiceWins() throws Exception {
        assertEquals(Accelerator.TCG, probe(true, "vmx", false).choose(Accelerator.TCG).accelerator());
        assertEquals(Accelerator.KVM, probe(true, "hypervisor", true).choose(Accelerator.KVM).accelerator());
        AcceleratorProbe noKvm = probe(false, "", false);
        assertThrows(IllegalStateException.class, () -> noKvm.choose(Accelerator.KVM));
    }

    @Test
    void thisHostDecidesWithoutHanging() {
        // Whatever this machine is, detection reads files only and returns at once.
        AcceleratorChoice c = new AcceleratorProbe().detect();
        assertTrue(c.reason().length() > 5);
    }

    @Test
    void parsesOperatorSpelling() {
        assertEquals(Accelerator.KVM, Accelerator.parseOrAuto("KVM"));
        assertEquals(null, Accelerator.parseOrAuto("auto"));
        assertThrows(IllegalArgumentException.class, () -> Accelerator.parseOrAuto("hvf"));
    }
}

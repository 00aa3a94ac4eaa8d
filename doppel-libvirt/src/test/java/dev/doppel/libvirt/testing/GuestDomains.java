package dev.doppel.libvirt.testing;

import dev.doppel.libvirt.LibvirtConnection;
import dev.doppel.vm.GuestImage;
import dev.doppel.vm.QemuBinary;
import org.libvirt.Domain;
import org.libvirt.LibvirtException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Libvirt domains that boot Doppel's own guest (kernel + initramfs of {@code doppel.guest.dir}) on Doppel's
 * patched QEMU, the way a user would describe one: {@code <domain type='qemu'>} (TCG; {@code type='kvm'} hangs
 * on this kind of host), a qcow2 virtio disk, a virtio NIC on a tap libvirt creates, the serial console in a file.
 */
public final class GuestDomains {
    private static volatile QemuBinary patched;

    private final PrivateLibvirtd daemon;

    public GuestDomains(PrivateLibvirtd daemon) {
        this.daemon = daemon;
    }

    /** Starts a transient domain running the guest's {@code ticker} (prints "tick N" every second), 128 MiB. */
    public Domain start(LibvirtConnection connection, String name, int tapIndex) throws IOException, InterruptedException {
        return start(connection, name, tapIndex, Map.of("doppel.run", "ticker"), 128);
    }

    /** Starts a transient domain with the guest's {@code doppel.*} parameters (workload) and RAM size. */
    public Domain start(LibvirtConnection connection, String name, int tapIndex, Map<String, String> guestParams, int memoryMiB)
            throws IOException, InterruptedException {
        String xml = xml(name, tapIndex, guestParams, memoryMiB);
        try {
            return connection.libvirt().domainCreateXML(xml, 0);
        } catch (LibvirtException e) {
            throw new IllegalStateException("libvirt refused domain '" + name + "': " + e.getMessage() + "\n" + xml, e);
        }
    }

    /** The domain XML: files under the fixture's {@code vm/} directory, so its clean-up finds the QEMU. */
    public String xml(String name, int tapIndex, Map<String, String> guestParams, int memoryMiB)
            throws IOException, InterruptedException {
        Path vm = daemon.directory().resolve("vm");
        Path disk = vm.resolve(name + ".qcow2");
        if (!Files.exists(disk)) {
            run(List.of("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "32M"));
        }
        GuestImage guest = GuestImage.locate();
        Map<String, String> params = new LinkedHashMap<>(guestParams);
        params.putIfAbsent("doppel.hostname", name);
        QemuBinary qemu = patchedQemu();
        StringBuilder firmware = new StringBuilder();
        // The patched build's compiled-in data directory holds no firmware: pass Debian's, as VmLauncher does.
        for (Path dir : qemu.firmwareDirs()) {
            firmware.append("    <qemu:arg value='-L'/><qemu:arg value='").append(dir).append("'/>\n");
        }
        return """
                <domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
                  <name>%s</name>
                  <memory unit='MiB'>%d</memory>
                  <vcpu>1</vcpu>
                  <os>
                    <type arch='x86_64' machine='pc'>hvm</type>
                    <kernel>%s</kernel>
                    <initrd>%s</initrd>
                    <cmdline>%s</cmdline>
                  </os>
                  <features><acpi/></features>
                  <on_poweroff>destroy</on_poweroff>
                  <on_reboot>destroy</on_reboot>
                  <on_crash>destroy</on_crash>
                  <devices>
                    <emulator>%s</emulator>
                    <disk type='file' device='disk'>
                      <driver name='qemu' type='qcow2'/>
                      <source file='%s'/>
                      <target dev='vda' bus='virtio'/>
                    </disk>
                    <interface type='ethernet'>
                      <mac address='52:54:00:d1:00:%02x'/>
                      <target dev='%s' managed='yes'/>
                      <model type='virtio'/>
                    </interface>
                    <serial type='file'><source path='%s'/><target port='0'/></serial>
                    <memballoon model='none'/>
                  </devices>
                  <qemu:commandline>
                %s  </qemu:commandline>
                </domain>
                """.formatted(name, memoryMiB, guest.kernel(), guest.initramfs(), guest.boot(params).commandLine(),
                qemu.executable(), disk, tapIndex, daemon.tapPrefix() + tapIndex, vm.resolve(name + ".console"), firmware);
    }

    /** Waits until the guest's console shows {@code text} (the guest booted and runs its workload). */
    public void awaitConsole(String name, String text, Duration timeout) throws IOException, InterruptedException {
        Path console = daemon.directory().resolve("vm").resolve(name + ".console");
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (Files.exists(console) && Files.readString(console, StandardCharsets.ISO_8859_1).contains(text)) {
                return;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("domain '" + name + "': console did not show '" + text + "' within "
                + timeout.toSeconds() + " s; it ends with: " + tail(console));
    }

    private static String tail(Path console) throws IOException {
        if (!Files.exists(console)) {
            return "(no console file)";
        }
        String s = Files.readString(console, StandardCharsets.ISO_8859_1);
        return s.substring(Math.max(0, s.length() - 600));
    }

    /** The COLO-patched QEMU (scripts/build-qemu-colo answers from its cache in a second). */
    public static QemuBinary patchedQemu() throws IOException, InterruptedException {
        if (patched == null) {
            synchronized (GuestDomains.class) {
                if (patched == null) {
                    patched = QemuBinary.atPrefix(dev.doppel.vm.PatchedQemuPrefix.find());
                }
            }
        }
        return patched;
    }

    private static void run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed: " + out);
        }
    }
}

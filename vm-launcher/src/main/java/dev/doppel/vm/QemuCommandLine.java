package dev.doppel.vm;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns a {@link VmSpec} into QEMU's argument vector. This is the only place in Doppel that knows
 * QEMU's command-line syntax; everything else talks about VMs in terms of the spec.
 */
public final class QemuCommandLine {
    /** Agent port name the guest agent looks for under /sys/class/virtio-ports. */
    public static final String AGENT_PORT_NAME = "org.doppel.agent.0";

    private QemuCommandLine() {
    }

    public static List<String> build(QemuBinary qemu, Accelerator accel, VmSpec spec, VmRunDir dir) {
        List<String> a = new ArrayList<>(qemu.leadingArguments());
        add(a, "-name", spec.name() + ",debug-threads=on");
        add(a, "-machine", spec.machineType() + ",memory-backend=" + MemoryBackend.RAM_BLOCK_ID);
        add(a, "-accel", accelArgument(accel, spec));
        add(a, "-m", spec.memoryMiB() + "M");
        add(a, "-smp", Integer.toString(spec.vcpus()));
        add(a, "-object", spec.memory().objectArgument(spec.memoryMiB()));
        a.add("-nodefaults");
        a.add("-no-user-config");
        add(a, "-display", "none");
        add(a, "-msg", "timestamp=on");

        // QMP: a private socket (the run dir is 0700). Not "wait": QEMU must start without a client.
        add(a, "-chardev", "socket,id=qmp0,path=" + QemuOptionText.escape(dir.qmpSocket().toString()) + ",server=on,wait=off");
        add(a, "-mon", "chardev=qmp0,mode=control");

        // Serial console: a socket for interactive use, and a log file that records every byte even
        // while no client is connected (tests and `doppel vm console` read the log).
        add(a, "-chardev", "socket,id=serial0,path=" + QemuOptionText.escape(dir.serialSocket().toString())
                + ",server=on,wait=off,logfile=" + QemuOptionText.escape(dir.consoleLog().toString()) + ",logappend=on");
        add(a, "-serial", "chardev:serial0");

        if (spec.guestAgent()) {
            add(a, "-device", "virtio-serial-pci,id=vser0,addr=" + PciSlots.hex(PciSlots.AGENT_SERIAL));
            add(a, "-chardev", "socket,id=agent0,path=" + QemuOptionText.escape(dir.agentSocket().toString()) + ",server=on,wait=off");
            add(a, "-device", "virtserialport,id=agentport0,bus=vser0.0,chardev=agent0,name=" + AGENT_PORT_NAME);
        }
        if (spec.freePageReporting()) {
            add(a, "-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on,addr=" + PciSlots.hex(PciSlots.BALLOON));
        }
        for (NicSpec nic : spec.nics()) {
            add(a, "-netdev", nic.netdevArgument());
            add(a, "-device", nic.deviceArgument());
        }
        for (DiskSpec disk : spec.disks()) {
            add(a, "-blockdev", disk.blockdevJson());
            add(a, "-device", disk.deviceArgument());
        }
        if (spec.boot() != null) {
            add(a, "-kernel", spec.boot().kernel().toString());
            add(a, "-initrd", spec.boot().initramfs().toString());
            add(a, "-append", spec.boot().commandLine());
        }
        if (spec.startPaused()) {
            a.add("-S");
        }
        if (spec.incomingDefer()) {
            add(a, "-incoming", "defer");
        }
        a.addAll(spec.extraArguments());
        return a;
    }

    private static String accelArgument(Accelerator accel, VmSpec spec) {
        if (accel == Accelerator.TCG && spec.tcgCacheMiB() > 0) {
            return "tcg,tb-size=" + spec.tcgCacheMiB();
        }
        return accel.qemuName();
    }

    private static void add(List<String> args, String option, String value) {
        args.add(option);
        args.add(value);
    }
}

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
    /** Port name of the standard QEMU guest agent (qemu-ga opens /dev/virtio-ports/org.qemu.guest_agent.0). */
    public static final String QGA_PORT_NAME = "org.qemu.guest_agent.0";
    /**
     * The QGA port's fixed virtio-serial port number (Doppel's own port gets 1, QEMU's first free
     * one), so the device model does not depend on which ports exist.
     */
    static final int QGA_PORT_NR = 2;

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

        if (spec.guestAgent() || spec.qemuGuestAgent()) {
            add(a, "-device", "virtio-serial-pci,id=vser0,addr=" + PciSlots.hex(PciSlots.AGENT_SERIAL));
        }
        if (spec.guestAgent()) {
            add(a, "-chardev", "socket,id=agent0,path=" + QemuOptionText.escape(dir.agentSocket().toString()) + ",server=on,wait=off");
            add(a, "-device", "virtserialport,id=agentport0,bus=vser0.0,chardev=agent0,name=" + AGENT_PORT_NAME);
        }
        if (spec.qemuGuestAgent()) {
            add(a, "-chardev", "socket,id=qga0,path=" + QemuOptionText.escape(dir.qgaSocket().toString()) + ",server=on,wait=off");
            add(a, "-device", "virtserialport,id=qgaport0,bus=vser0.0,chardev=qga0,name=" + QGA_PORT_NAME
                    + ",nr=" + QGA_PORT_NR);
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
            // Without -kernel, SeaBIOS boots the first disk's own bootloader (MBR), and only that.
            boolean bootDisk = spec.boot() == null && disk == spec.disks().get(0);
            add(a, "-device", disk.deviceArgument() + (bootDisk ? ",bootindex=0" : ""));
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

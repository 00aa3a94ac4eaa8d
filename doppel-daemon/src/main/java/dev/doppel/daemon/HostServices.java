package dev.doppel.daemon;

import dev.doppel.daemon.backup.BackupHost;
import dev.doppel.daemon.events.EventHub;
import dev.doppel.daemon.fork.ForkFamilies;
import dev.doppel.remus.service.ProtectionIntent;
import dev.doppel.daemon.protection.Protections;
import dev.doppel.daemon.vms.HostVms;
import dev.doppel.daemon.vms.VmView;
import dev.doppel.vm.VmRunDir;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What the daemon owns on its host, as one value the API routes call into. */
public record HostServices(HostVms vms, Protections protections, BackupHost backup, ForkFamilies forks, EventHub events,
                           String accelerator, long startedAtMillis) {

    /** Every VM; a fork family's members show origin "family" (the family owns them, not 'vm stop'). */
    public List<VmView> listVms() {
        return vms.list(protections::status).stream().map(this::marked).toList();
    }

    public VmView vm(String name) {
        return marked(vms.get(name, protections.status(name)));
    }

    private VmView marked(VmView v) {
        return forks.isMember(v.name()) || forks.ownsRunDir(java.nio.file.Path.of(v.runDir())) ? new VmView(v.name(), v.pid(), v.state(), v.accelerator(), v.runDir(), "family", v.protection())
                : v;
    }

    /** Stops a VM: its protection first (the backup stands down), then its QEMU. */
    public Map<String, Object> stopVm(String name, Duration grace) throws IOException {
        HostVms.existing(name);
        if (forks.isMember(name) || forks.ownsRunDir(VmRunDir.of(name).path())) {
            throw new ApiException(409, name, "VM '" + name + "' belongs to a fork family: DELETE /api/v1/families/" + name);
        }
        if (protections.status(name) != null || Files.exists(VmRunDir.of(name).path().resolve(ProtectionIntent.FILE))) {
            protections.unprotect(name);
        }
        vms.stop(name, grace);
        return Map.of("vm", name, "stopped", true);
    }

    public Map<String, Object> describe() throws IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("host", InetAddress.getLocalHost().getHostName());
        m.put("daemonPid", ProcessHandle.current().pid());
        m.put("accelerator", accelerator);
        m.put("startedAtMillis", startedAtMillis);
        m.put("vms", listVms().size());
        m.put("backup", backup.view().settings() != null);
        return m;
    }
}

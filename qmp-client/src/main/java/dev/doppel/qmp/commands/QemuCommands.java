package dev.doppel.qmp.commands;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.connection.QmpJson;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Typed wrappers over the QMP commands Doppel uses. Each blocks for at most the timeout given at construction
 * ({@link #withTimeout}) and throws like {@link QmpClient#execute(String, Object, Duration)}. Anything not
 * covered here: {@link QmpClient#execute}.
 */
public final class QemuCommands {

    private final QmpClient client;
    private final Duration timeout;

    public QemuCommands(QmpClient client, Duration timeout) {
        this.client = Objects.requireNonNull(client, "client");
        this.timeout = Objects.requireNonNull(timeout, "timeout");
    }

    /** The same wrappers with another per-command timeout (e.g. long for {@code pmemsave}). */
    public QemuCommands withTimeout(Duration t) {
        return new QemuCommands(client, t);
    }

    private JsonNode run(String command, Object args) {
        return client.execute(command, args, timeout);
    }

    private static Map<String, Object> args(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            if (kv[i + 1] != null) {
                m.put((String) kv[i], kv[i + 1]);
            }
        }
        return m;
    }

    private static List<JsonNode> list(JsonNode array) {
        List<JsonNode> out = new ArrayList<>();
        if (array != null) {
            array.forEach(out::add);
        }
        return out;
    }

    // ------------------------------------------------------------------------------------------------ run state

    public StatusInfo queryStatus() {
        return StatusInfo.from(run("query-status", null));
    }

    /** {@code stop}: pause the guest (QEMU emits STOP). */
    public void stop() {
        run("stop", null);
    }

    /** {@code cont}: resume the guest (QEMU emits RESUME). */
    public void cont() {
        run("cont", null);
    }

    /** {@code quit}: QEMU replies, emits SHUTDOWN and exits; the connection then ends. */
    public void quit() {
        run("quit", null);
    }

    /** {@code system_reset} (QEMU emits RESET). */
    public void systemReset() {
        run("system_reset", null);
    }

    public VersionInfo queryVersion() {
        return VersionInfo.from(run("query-version", null));
    }

    /** Names from {@code query-commands}. */
    public List<String> queryCommands() {
        List<String> out = new ArrayList<>();
        run("query-commands", null).forEach(c -> out.add(c.path("name").asText()));
        return out;
    }

    // ------------------------------------------------------------------------------------------------ migration

    /** {@code migrate} to a URI such as {@code tcp:host:port}, {@code fd:NAME}, {@code file:/path}. Returns at once. */
    public void migrate(String uri) {
        run("migrate", args("uri", uri));
    }

    /** {@code migrate} with full arguments (e.g. {@code channels}, {@code resume}). */
    public void migrate(JsonNode arguments) {
        run("migrate", arguments);
    }

    /** {@code migrate-incoming} on a QEMU started with {@code -incoming defer}. */
    public void migrateIncoming(String uri) {
        run("migrate-incoming", args("uri", uri));
    }

    /** {@code migrate-set-capabilities}: e.g. {@code {"x-colo": true, "events": true}}. */
    public void migrateSetCapabilities(Map<String, Boolean> capabilities) {
        ArrayNode list = QmpJson.MAPPER.createArrayNode();
        capabilities.forEach((k, v) -> list.addObject().put("capability", k).put("state", v));
        ObjectNode a = QmpJson.MAPPER.createObjectNode();
        a.set("capabilities", list);
        run("migrate-set-capabilities", a);
    }

    /** {@code migrate-set-parameters}: e.g. {@code {"x-checkpoint-delay": 200, "max-bandwidth": ...}}. */
    public void migrateSetParameters(Map<String, Object> parameters) {
        run("migrate-set-parameters", parameters);
    }

    /** {@code query-migrate-parameters}, raw. */
    public JsonNode queryMigrateParameters() {
        return run("query-migrate-parameters", null);
    }

    /** {@code query-migrate-capabilities} as name to state. */
    public Map<String, Boolean> queryMigrateCapabilities() {
        Map<String, Boolean> out = new LinkedHashMap<>();
        run("query-migrate-capabilities", null).forEach(c -> out.put(c.path("capability").asText(), c.path("state").asBoolean()));
        return out;
    }

    public MigrationInfo queryMigrate() {
        return MigrationInfo.from(run("query-migrate", null));
    }

    public void migrateCancel() {
        run("migrate_cancel", null);
    }

    /** {@code migrate-recover} in-band (for a stuck main loop use {@link #migrateRecoverOob}). */
    public void migrateRecover(String uri) {
        run("migrate-recover", args("uri", uri));
    }

    /** {@code migrate-recover} with {@code exec-oob}. */
    public void migrateRecoverOob(String uri) {
        client.executeOob("migrate-recover", args("uri", uri), timeout);
    }

    /** {@code migrate-pause} with {@code exec-oob} (postcopy). */
    public void migratePauseOob() {
        client.executeOob("migrate-pause", null, timeout);
    }

    public void migrateStartPostcopy() {
        run("migrate-start-postcopy", null);
    }

    /** {@code x-colo-lost-heartbeat}: tell a COLO VM its peer is gone (failover). */
    public void xColoLostHeartbeat() {
        run("x-colo-lost-heartbeat", null);
    }

    /** {@code query-colo-status}, raw. */
    public JsonNode queryColoStatus() {
        return run("query-colo-status", null);
    }

    // ------------------------------------------------------------------------------------------------ block

    /** {@code blockdev-add} with a full BlockdevOptions object. */
    public void blockdevAdd(JsonNode spec) {
        run("blockdev-add", spec);
    }

    public void blockdevDel(String nodeName) {
        run("blockdev-del", args("node-name", nodeName));
    }

    /** {@code blockdev-snapshot}: make {@code overlay} (already added, no backing) the new top above {@code node}. */
    public void blockdevSnapshot(String node, String overlay) {
        run("blockdev-snapshot", args("node", node, "overlay", overlay));
    }

    public List<JsonNode> queryNamedBlockNodes() {
        return list(run("query-named-block-nodes", null));
    }

    /** {@code query-named-block-nodes} with {@code flat: true} (no backing chains nested in each entry). */
    public List<JsonNode> queryNamedBlockNodesFlat() {
        return list(run("query-named-block-nodes", args("flat", true)));
    }

    public List<JsonNode> queryBlock() {
        return list(run("query-block", null));
    }

    public List<JsonNode> queryBlockJobs() {
        return list(run("query-block-jobs", null));
    }

    /** {@code blockdev-mirror} (job-id, device, target, sync, ...). */
    public void blockdevMirror(JsonNode arguments) {
        run("blockdev-mirror", arguments);
    }

    /** {@code blockdev-backup} (job-id, device, target, sync, ...). */
    public void blockdevBackup(JsonNode arguments) {
        run("blockdev-backup", arguments);
    }

    public void blockJobCancel(String device, boolean force) {
        run("block-job-cancel", args("device", device, "force", force));
    }

    public void blockJobComplete(String device) {
        run("block-job-complete", args("device", device));
    }

    /** {@code job-dismiss} for a concluded job. */
    public void jobDismiss(String id) {
        run("job-dismiss", args("id", id));
    }

    /** {@code x-blockdev-change} with raw arguments (parent, child or node). */
    public void xBlockdevChange(JsonNode arguments) {
        run("x-blockdev-change", arguments);
    }

    /** {@code x-blockdev-change}: add {@code node} under {@code parent}, or (node null) remove {@code child}. */
    public void xBlockdevChange(String parent, String child, String node) {
        run("x-blockdev-change", args("parent", parent, "child", child, "node", node));
    }

    /** {@code nbd-server-start} (addr, tls-creds, ...). */
    public void nbdServerStart(JsonNode arguments) {
        run("nbd-server-start", arguments);
    }

    /** {@code nbd-server-add} (device, name, writable, ...). */
    public void nbdServerAdd(JsonNode arguments) {
        run("nbd-server-add", arguments);
    }

    /** {@code block-export-add} (the non-deprecated way to export over NBD). */
    public void blockExportAdd(JsonNode arguments) {
        run("block-export-add", arguments);
    }

    public void nbdServerStop() {
        run("nbd-server-stop", null);
    }

    // ------------------------------------------------------------------------------------------------ QOM, misc

    public JsonNode qomGet(String path, String property) {
        return run("qom-get", args("path", path, "property", property));
    }

    public void qomSet(String path, String property, Object value) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("path", path);
        a.put("property", property);
        a.put("value", value);
        run("qom-set", a);
    }

    /** {@code qom-list}: entries {@code {"name", "type"}}. */
    public List<JsonNode> qomList(String path) {
        return list(run("qom-list", args("path", path)));
    }

    /** {@code object-add} with {@code qom-type}, {@code id} and the type's properties flat in one object. */
    public void objectAdd(JsonNode spec) {
        run("object-add", spec);
    }

    public void objectDel(String id) {
        run("object-del", args("id", id));
    }

    /** {@code human-monitor-command}: the HMP output text. */
    public String humanMonitorCommand(String cmdline) {
        return run("human-monitor-command", args("command-line", cmdline)).asText();
    }

    /** {@code pmemsave}: write guest-physical memory {@code [addr, addr+size)} to {@code file} (QEMU's host). */
    public void pmemsave(long addr, long size, String file) {
        run("pmemsave", args("val", addr, "size", size, "filename", file));
    }

    /** {@code yank} via {@code exec-oob}: abort the given instances' network I/O (e.g. a stuck migration). */
    public void yankOob(JsonNode instances) {
        ObjectNode a = QmpJson.MAPPER.createObjectNode();
        a.set("instances", instances);
        client.executeOob("yank", a, timeout);
    }

    /** {@code query-yank} via {@code exec-oob}. */
    public List<JsonNode> queryYankOob() {
        return list(client.executeOob("query-yank", null, timeout));
    }
}

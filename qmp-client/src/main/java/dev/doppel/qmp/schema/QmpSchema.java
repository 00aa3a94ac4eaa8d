package dev.doppel.qmp.schema;

import com.fasterxml.jackson.databind.JsonNode;
import dev.doppel.qmp.QmpSchemaException;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * QEMU's introspected QMP schema (the return of {@code query-qmp-schema}): which commands and events exist,
 * their members, enum values, and a shallow validator for command arguments.
 *
 * <p>Introspection hides QAPI type names behind numbers ({@code "arg-type": "147"}); only builtins and array
 * names ({@code "[147]"}) are spelled out. This class resolves through them, and knows a few well-known QAPI
 * names by their position (see {@link #WELL_KNOWN_TYPES}), so {@code enumValues("MigrationCapability")} works.
 * Immutable and thread safe.
 */
public final class QmpSchema {

    /**
     * Well-known QAPI type names and where to find them: {@code arg:}/{@code ret:} command, then member names;
     * {@code []} steps into an array's element type.
     */
    public static final Map<String, String> WELL_KNOWN_TYPES;

    static {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("MigrationCapability", "arg:migrate-set-capabilities capabilities [] capability");
        m.put("MigrationCapabilityStatus", "arg:migrate-set-capabilities capabilities []");
        m.put("MigrateSetParameters", "arg:migrate-set-parameters");
        m.put("MigrationParameters", "ret:query-migrate-parameters");
        m.put("MigrationInfo", "ret:query-migrate");
        m.put("MigrationStatus", "ret:query-migrate status");
        m.put("StatusInfo", "ret:query-status");
        m.put("RunState", "ret:query-status status");
        m.put("VersionInfo", "ret:query-version");
        m.put("BlockdevOptions", "arg:blockdev-add");
        m.put("BlockdevDriver", "arg:blockdev-add driver");
        m.put("BlockJobInfo", "ret:query-block-jobs []");
        m.put("JobStatus", "ret:query-block-jobs [] status");
        m.put("ObjectOptions", "arg:object-add");
        m.put("ObjectType", "arg:object-add qom-type");
        m.put("YankInstance", "arg:yank instances []");
        WELL_KNOWN_TYPES = Collections.unmodifiableMap(m);
    }

    private final String vmName;
    private final Map<String, JsonNode> commands = new LinkedHashMap<>();
    private final Map<String, JsonNode> events = new LinkedHashMap<>();
    private final Map<String, JsonNode> types = new HashMap<>();
    private final Map<String, String> aliasToSchema = new LinkedHashMap<>();
    private final Map<String, String> schemaToAlias = new HashMap<>();

    private QmpSchema(JsonNode entities, String vmName) {
        this.vmName = vmName;
        for (JsonNode e : entities) {
            String name = e.path("name").asText(null);
            String meta = e.path("meta-type").asText("");
            if (name == null) {
                continue;
            }
            switch (meta) {
                case "command" -> commands.put(name, e);
                case "event" -> events.put(name, e);
                default -> types.put(name, e);
            }
        }
        for (Map.Entry<String, String> alias : WELL_KNOWN_TYPES.entrySet()) {
            resolvePath(alias.getValue()).ifPresent(t -> {
                aliasToSchema.put(alias.getKey(), t);
                schemaToAlias.putIfAbsent(t, alias.getKey());
            });
        }
    }

    /** Parses the {@code return} of {@code query-qmp-schema}. */
    public static QmpSchema parse(JsonNode queryQmpSchemaReturn) {
        return parse(queryQmpSchemaReturn, "?");
    }

    /**
     * Parses the {@code return} of {@code query-qmp-schema} for the named VM (used in exception messages).
     *
     * @throws QmpSchemaException if it is not an array of schema entities
     */
    public static QmpSchema parse(JsonNode queryQmpSchemaReturn, String vmName) {
        if (queryQmpSchemaReturn == null || !queryQmpSchemaReturn.isArray()) {
            throw new QmpSchemaException(vmName, "query-qmp-schema", "query-qmp-schema did not return an array", null);
        }
        return new QmpSchema(queryQmpSchemaReturn, vmName);
    }

    // ------------------------------------------------------------------------------------------------ lookups

    public boolean hasCommand(String name) {
        return commands.containsKey(name);
    }

    public boolean hasEvent(String name) {
        return events.containsKey(name);
    }

    public Set<String> commandNames() {
        return Collections.unmodifiableSet(commands.keySet());
    }

    public Set<String> eventNames() {
        return Collections.unmodifiableSet(events.keySet());
    }

    /** True if the command may be sent with {@code exec-oob}. */
    public boolean allowsOob(String command) {
        return requireCommand(command).path("allow-oob").asBoolean(false);
    }

    /** Feature flags of a command, e.g. {@code deprecated}, {@code unstable}. */
    public List<String> commandFeatures(String command) {
        List<String> out = new ArrayList<>();
        requireCommand(command).path("features").forEach(f -> out.add(f.asText()));
        return out;
    }

    /**
     * The command's argument members (base members; for a union, also the tag, without variant members).
     *
     * @throws QmpSchemaException if there is no such command
     */
    public List<SchemaMember> commandArguments(String command) {
        return members(requireCommand(command).path("arg-type").asText(null));
    }

    /** The event's data members; throws QmpSchemaException if there is no such event. */
    public List<SchemaMember> eventMembers(String event) {
        JsonNode e = events.get(event);
        if (e == null) {
            throw new QmpSchemaException(vmName, null, "no event '" + event + "' in the QMP schema", null);
        }
        return members(e.path("arg-type").asText(null));
    }

    /** The schema name of the command's return type. */
    public String commandReturnType(String command) {
        return requireCommand(command).path("ret-type").asText(null);
    }

    /**
     * The members of an object type given by schema name (e.g. {@code "147"}) or well-known name; empty for
     * other types.
     */
    public List<SchemaMember> members(String typeName) {
        JsonNode t = type(typeName);
        List<SchemaMember> out = new ArrayList<>();
        if (t == null || !"object".equals(t.path("meta-type").asText())) {
            return out;
        }
        for (JsonNode m : t.path("members")) {
            String mt = m.path("type").asText();
            out.add(new SchemaMember(m.path("name").asText(), !m.has("default"), describe(mt), mt, enumValuesOrEmpty(mt)));
        }
        return out;
    }

    /**
     * The values of an enum type, by schema name or well-known name (e.g. {@code MigrationCapability},
     * {@code RunState}, {@code BlockdevDriver}, {@code MigrationStatus}).
     *
     * @throws QmpSchemaException if there is no such enum
     */
    public List<String> enumValues(String typeName) {
        JsonNode t = type(typeName);
        if (t == null || !"enum".equals(t.path("meta-type").asText())) {
            throw new QmpSchemaException(vmName, null, "no enum type '" + typeName + "' in the QMP schema", null);
        }
        return enumValuesOf(t);
    }

    /** Migration capabilities this QEMU knows ({@code MigrationCapability}: x-colo, mapped-ram, ...). */
    public List<String> migrationCapabilities() {
        return aliasToSchema.containsKey("MigrationCapability") ? enumValues("MigrationCapability") : List.of();
    }

    /** True if this QEMU knows the migration capability, e.g. {@code x-colo}, {@code mapped-ram}. */
    public boolean hasMigrationCapability(String name) {
        return migrationCapabilities().contains(name);
    }

    /** The raw schema entity of a type (schema or well-known name), command or event; empty if unknown. */
    public Optional<JsonNode> entity(String name) {
        JsonNode t = type(name);
        if (t == null) {
            t = commands.get(name);
        }
        if (t == null) {
            t = events.get(name);
        }
        return Optional.ofNullable(t);
    }

    /** The schema name behind a well-known QAPI type name, if this QEMU has it. */
    public Optional<String> schemaNameOf(String wellKnownName) {
        return Optional.ofNullable(aliasToSchema.get(wellKnownName));
    }

    // ------------------------------------------------------------------------------------------------ validate

    /**
     * Checks {@code arguments} (null = none) for {@code command}: unknown command, unknown members, missing
     * required members, recursively through object members and arrays of objects, following union variants by
     * their tag value. It does not check scalar types or alternates.
     *
     * @return one line per problem; empty when valid
     */
    public List<String> validate(String command, JsonNode arguments) {
        List<String> problems = new ArrayList<>();
        JsonNode c = commands.get(command);
        if (c == null) {
            problems.add("unknown command '" + command + "'");
            return problems;
        }
        JsonNode args = arguments == null || arguments.isNull() || arguments.isMissingNode()
                ? com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode() : arguments;
        validateValue(c.path("arg-type").asText(), args, "arguments", problems, 0);
        return problems;
    }

    /** {@link #validate} that throws {@link QmpSchemaException} listing the problems. */
    public void requireValid(String command, JsonNode arguments) {
        List<String> problems = validate(command, arguments);
        if (!problems.isEmpty()) {
            throw new QmpSchemaException(vmName, command, problems);
        }
    }

    private void validateValue(String typeName, JsonNode value, String path, List<String> problems, int depth) {
        JsonNode t = types.get(typeName);
        if (t == null || depth > 32) {
            return;
        }
        switch (t.path("meta-type").asText()) {
            case "object" -> {
                if (!value.isObject()) {
                    problems.add("'" + path + "' must be an object");
                    return;
                }
                Map<String, JsonNode> allowed = objectMembers(t, value);
                value.fieldNames().forEachRemaining(f -> {
                    if (!allowed.containsKey(f)) {
                        problems.add("unknown member '" + path + "." + f + "'");
                    }
                });
                for (Map.Entry<String, JsonNode> m : allowed.entrySet()) {
                    JsonNode v = value.get(m.getKey());
                    if (v == null) {
                        if (!m.getValue().has("default")) {
                            problems.add("missing required member '" + path + "." + m.getKey() + "'");
                        }
                    } else {
                        validateValue(m.getValue().path("type").asText(), v, path + "." + m.getKey(), problems, depth + 1);
                    }
                }
            }
            case "array" -> {
                if (value.isArray()) {
                    String elem = t.path("element-type").asText();
                    for (int i = 0; i < value.size(); i++) {
                        validateValue(elem, value.get(i), path + "[" + i + "]", problems, depth + 1);
                    }
                }
            }
            case "enum" -> {
                if (value.isTextual() && !enumValuesOf(t).contains(value.asText())) {
                    problems.add("'" + path + "' has unknown value '" + value.asText() + "'");
                }
            }
            default -> {
                // builtins and alternates: not type checked
            }
        }
    }

    /** Base members plus the members of the variant selected by the tag value present in {@code value}. */
    private Map<String, JsonNode> objectMembers(JsonNode objectType, JsonNode value) {
        Map<String, JsonNode> out = new LinkedHashMap<>();
        for (JsonNode m : objectType.path("members")) {
            out.put(m.path("name").asText(), m);
        }
        String tag = objectType.path("tag").asText(null);
        if (tag != null && value != null && value.get(tag) != null && value.get(tag).isTextual()) {
            String tagValue = value.get(tag).asText();
            for (JsonNode v : objectType.path("variants")) {
                if (tagValue.equals(v.path("case").asText())) {
                    JsonNode vt = types.get(v.path("type").asText());
                    if (vt != null) {
                        out.putAll(objectMembers(vt, value));
                    }
                }
            }
        }
        return out;
    }

    // ------------------------------------------------------------------------------------------------ helpers

    private JsonNode requireCommand(String command) {
        JsonNode c = commands.get(command);
        if (c == null) {
            throw new QmpSchemaException(vmName, command, "no command '" + command + "' in the QMP schema", null);
        }
        return c;
    }

    private JsonNode type(String name) {
        if (name == null) {
            return null;
        }
        JsonNode t = types.get(name);
        if (t == null && aliasToSchema.containsKey(name)) {
            t = types.get(aliasToSchema.get(name));
        }
        return t;
    }

    private static List<String> enumValuesOf(JsonNode enumType) {
        Set<String> out = new LinkedHashSet<>();
        // QEMU >= 6.2 lists "members" (with features); "values" is the older, deprecated spelling
        for (JsonNode m : enumType.path("members")) {
            out.add(m.path("name").asText());
        }
        if (out.isEmpty()) {
            for (JsonNode v : enumType.path("values")) {
                out.add(v.asText());
            }
        }
        return List.copyOf(out);
    }

    private List<String> enumValuesOrEmpty(String typeName) {
        JsonNode t = types.get(typeName);
        return t != null && "enum".equals(t.path("meta-type").asText()) ? enumValuesOf(t) : List.of();
    }

    /** Readable name for a schema type name. */
    String describe(String typeName) {
        return describe(typeName, 0);
    }

    private String describe(String typeName, int depth) {
        JsonNode t = types.get(typeName);
        if (t == null || depth > 8) {
            return typeName;
        }
        String alias = schemaToAlias.get(typeName);
        String meta = t.path("meta-type").asText();
        switch (meta) {
            case "builtin":
                return typeName;
            case "array":
                return "[" + describe(t.path("element-type").asText(), depth + 1) + "]";
            case "alternate": {
                List<String> alts = new ArrayList<>();
                t.path("members").forEach(m -> alts.add(describe(m.path("type").asText(), depth + 1)));
                return alias != null ? alias : "alternate(" + String.join("|", alts) + ")";
            }
            default:
                return alias != null ? alias : meta;
        }
    }

    /** Follows a {@link #WELL_KNOWN_TYPES} path to a schema type name. */
    private Optional<String> resolvePath(String spec) {
        String[] parts = spec.split(" ");
        String head = parts[0];
        JsonNode c = commands.get(head.substring(4));
        if (c == null) {
            return Optional.empty();
        }
        String current = c.path(head.startsWith("arg:") ? "arg-type" : "ret-type").asText(null);
        for (int i = 1; i < parts.length && current != null; i++) {
            JsonNode t = types.get(current);
            if (t == null) {
                return Optional.empty();
            }
            if (parts[i].equals("[]")) {
                current = "array".equals(t.path("meta-type").asText()) ? t.path("element-type").asText(null) : null;
            } else {
                JsonNode member = null;
                for (JsonNode m : t.path("members")) {
                    if (parts[i].equals(m.path("name").asText())) {
                        member = m;
                    }
                }
                current = member == null ? null : member.path("type").asText(null);
            }
        }
        return Optional.ofNullable(current);
    }

    @Override
    public String toString() {
        return "QmpSchema[" + commands.size() + " commands, " + events.size() + " events, " + types.size() + " types]";
    }
}

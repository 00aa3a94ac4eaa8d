package dev.doppel.qmp.schema;

import java.util.List;

/**
 * One member of a command's arguments, an event's data or an object type.
 *
 * @param name       member name, e.g. {@code node-name}
 * @param required   false for optional members (the schema gives them {@code "default": null})
 * @param type       readable type resolved through the schema's numbered names: a builtin ({@code str},
 *                   {@code int}, {@code bool}, {@code number}, {@code any}, {@code null}), {@code [elem]} for arrays,
 *                   a well-known QAPI name where {@link QmpSchema} knows it (e.g. {@code MigrationCapability}),
 *                   else {@code enum}, {@code object} or {@code alternate(a|b)}
 * @param schemaType the type's name in the introspected schema (often a number like {@code "147"})
 * @param enumValues the values if the type is an enum, else empty
 */
public record SchemaMember(String name, boolean required, String type, String schemaType, List<String> enumValues) {

    public SchemaMember {
        enumValues = List.copyOf(enumValues);
    }
}

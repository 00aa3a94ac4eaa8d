/** QEMU's introspected QMP schema ({@code query-qmp-schema}): lookups, enum values, argument validation. */
package dev.doppel.qmp.schema;

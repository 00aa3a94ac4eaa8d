/**
 * Typed wrappers ({@link dev.doppel.qmp.commands.QemuCommands}) and reply records for the QMP commands Doppel
 * uses: run state, migration (including COLO and postcopy), block layer, NBD, QOM, fd passing.
 */
package dev.doppel.qmp.commands;

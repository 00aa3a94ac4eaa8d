/**
 * QMP client for QEMU. Each layer has one job, after QEMU's python {@code qemu.qmp}:
 * <ul>
 *   <li>{@link dev.doppel.qmp.transport}: bytes and file descriptors ({@code UnixSocketTransport} over JNA
 *       with {@code SCM_RIGHTS}, {@code TcpTransport}).</li>
 *   <li>{@link dev.doppel.qmp.connection}: framing (newline-delimited JSON, size limit), parsing, the reader
 *       thread, wire trace.</li>
 *   <li>{@link dev.doppel.qmp.QmpClient}: greeting, capabilities negotiation, ids, execute/exec-oob, fd
 *       passing, timeouts, disconnect handling; {@link dev.doppel.qmp.EventSubscription} and listeners for
 *       events.</li>
 *   <li>{@link dev.doppel.qmp.schema}: the introspected schema and argument validation.</li>
 *   <li>{@link dev.doppel.qmp.commands}: typed wrappers for the commands Doppel uses.</li>
 * </ul>
 * Errors: {@link dev.doppel.qmp.QmpException} and one subclass per phase. Each message names the VM and the
 * command or phase, and keeps the root cause.
 */
package dev.doppel.qmp;

/**
 * Byte channels under QMP: {@link dev.doppel.qmp.transport.QmpTransport} and its unix-socket (JNA, with
 * {@code SCM_RIGHTS} fd passing) and TCP implementations.
 *
 * <p>Layering: {@code transport} (bytes, fds) &rarr; {@link dev.doppel.qmp.connection} (framing, JSON, the
 * reader thread; one {@code QmpConnection} per socket) &rarr; {@link dev.doppel.qmp.QmpClient} (greeting,
 * negotiation, id routing, execute, events).
 *
 * <p><b>A libvirt-backed transport</b> (virDomainQemuMonitorCommand) has no raw stream: it is request/response
 * only, libvirt does the greeting and negotiation itself and delivers events through
 * {@code virConnectDomainQemuMonitorEventRegister}. It therefore does not implement {@code QmpTransport}; it
 * would implement {@link dev.doppel.qmp.connection.QmpConnection} directly: {@code send(message)} runs the
 * monitor command on a worker thread and hands the reply (with the request's {@code id} put back) to the
 * listener; the event callback hands {@code {"event": ...}} objects to the same listener; {@code start} first
 * delivers a synthetic greeting built from libvirt's QEMU version (no {@code oob}, so the client never sends
 * {@code exec-oob}) and answers {@code qmp_capabilities} locally. {@code QmpClient.connect(QmpConnection, ...)}
 * then works unchanged, and fd passing reports "not supported" through {@code supportsFdPassing()}.
 */
package dev.doppel.qmp.transport;

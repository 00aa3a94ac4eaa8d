/**
 * Byte channels under QMP: {@link dev.doppel.qmp.transport.QmpTransport} and its unix-socket (JNA, with
 * {@code SCM_RIGHTS} fd passing) and TCP implementations.
 *
 * <p>Layering: {@code transport} (bytes, fds) &rarr; {@link dev.doppel.qmp.connection} (framing, JSON, the
 * reader thread; one {@code QmpConnection} per socket) &rarr; {@link dev.doppel.qmp.QmpClient} (greeting,
 * negotiation, id routing, execute, events).
 *
 * <p><b>QMP through libvirt</b> (virDomainQemuMonitorCommand) has no raw stream: it is request/response only,
 * libvirt does the greeting and negotiation itself and delivers events through
 * {@code virConnectDomainQemuMonitorEventRegister}. It therefore does not implement {@code QmpTransport} but
 * {@link dev.doppel.qmp.connection.QmpConnection} directly: {@code dev.doppel.libvirt.LibvirtQmpConnection} in
 * doppel-libvirt runs each command on a worker thread and hands the reply (with the request's {@code id} put back)
 * to the listener, hands events to the same listener, first delivers a greeting built from QEMU's
 * {@code query-version} (no {@code oob}, so the client never sends {@code exec-oob}) and answers
 * {@code qmp_capabilities} itself. {@code QmpClient.connect(QmpConnection, ...)} works unchanged; fd passing
 * reports "not supported" through {@code supportsFdPassing()}.
 */
package dev.doppel.qmp.transport;

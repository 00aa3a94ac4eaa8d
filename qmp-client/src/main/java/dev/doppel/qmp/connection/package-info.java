/**
 * Message layer: {@link dev.doppel.qmp.connection.QmpConnection} (JSON objects in and out, one close notice),
 * implemented over a byte transport by {@link dev.doppel.qmp.connection.StreamQmpConnection} (newline framing,
 * size limit, JSON parsing, the reader thread, wire trace). Knows nothing of ids, greetings or events: that is
 * {@link dev.doppel.qmp.QmpClient}'s layer. doppel-libvirt's channel through libvirt implements
 * {@code QmpConnection} directly; see {@link dev.doppel.qmp.transport}.
 */
package dev.doppel.qmp.connection;

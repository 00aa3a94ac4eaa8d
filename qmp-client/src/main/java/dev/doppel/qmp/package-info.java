/** QMP client: transports, protocol, events, schema and typed commands. */
package dev.doppel.qmp;

/**
 * The bytes the page server exchanges with a QEMU 10.0 postcopy destination: the source half of the
 * migration stream ({@link dev.doppel.clone.pageserver.wire.PostcopySourceWriter}), the return path
 * ({@link dev.doppel.clone.pageserver.wire.ReturnPathReader}) and the fork descriptor cut into what the
 * stream needs ({@link dev.doppel.clone.pageserver.wire.ForkDescriptor}). Numbers in
 * {@link dev.doppel.clone.pageserver.wire.WireFormat}, each citing its QEMU source file.
 */
package dev.doppel.clone.pageserver.wire;

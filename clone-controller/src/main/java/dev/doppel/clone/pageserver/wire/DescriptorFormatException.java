package dev.doppel.clone.pageserver.wire;

import java.io.IOException;

/** The fork descriptor is not what a device-state-only x-ignore-shared migration of QEMU 10.0 writes. */
public final class DescriptorFormatException extends IOException {
    public DescriptorFormatException(String message) {
        super(message);
    }
}

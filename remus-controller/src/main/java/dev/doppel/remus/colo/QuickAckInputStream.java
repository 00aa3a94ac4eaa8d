package dev.doppel.remus.colo;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import jdk.net.ExtendedSocketOptions;

/**
 * Re-arms TCP_QUICKACK after every read. Linux clears it on its own after a while, and the primary
 * sends with Nagle on: with delayed ACKs, the primary's last small segment of a checkpoint waits
 * for our ACK, which costs ~42 ms in about one checkpoint in ten (measured, see FINDINGS.md).
 */
final class QuickAckInputStream extends FilterInputStream {
    private final Socket socket;
    private boolean supported = true;

    QuickAckInputStream(InputStream in, Socket socket) {
        super(in);
        this.socket = socket;
        rearm();
    }

    @Override
    public int read() throws IOException {
        int b = super.read();
        rearm();
        return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        int n = super.read(b, off, len);
        rearm();
        return n;
    }

    private void rearm() {
        if (!supported || socket.isClosed()) {
            return;
        }
        try {
            socket.setOption(ExtendedSocketOptions.TCP_QUICKACK, true);
        } catch (UnsupportedOperationException | IOException e) {
            supported = false;     // not Linux: delayed ACKs stay, correctness does not depend on it
        }
    }
}

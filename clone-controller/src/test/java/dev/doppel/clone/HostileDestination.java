package dev.doppel.clone;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/**
 * A fake postcopy destination that sends fixed bytes on the return path (a broken or hostile
 * peer) and swallows whatever the page server sends. Not a replay of QEMU: QEMU never sends these
 * bytes, which is the point; the well-formed parts follow migration.c's REQ_PAGES_ID layout.
 */
final class HostileDestination implements AutoCloseable {
    private final ServerSocket listener;
    private final Thread thread;

    private HostileDestination(ServerSocket listener, byte[] returnPath) {
        this.listener = listener;
        this.thread = new Thread(() -> run(returnPath), "hostile-destination");
        this.thread.setDaemon(true);
        this.thread.start();
    }

    static HostileDestination listen(byte[] returnPath) throws IOException {
        return new HostileDestination(new ServerSocket(0, 1, InetAddress.getLoopbackAddress()), returnPath);
    }

    InetSocketAddress address() {
        return new InetSocketAddress(InetAddress.getLoopbackAddress(), listener.getLocalPort());
    }

    /** REQ_PAGES_ID: be16 type 3, be16 length, be64 offset, be32 length, u8 name length, name. */
    static byte[] requestPagesId(String block, long offset, int length) {
        try {
            byte[] name = block.getBytes(StandardCharsets.US_ASCII);
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            DataOutputStream d = new DataOutputStream(b);
            d.writeShort(3);
            d.writeShort(13 + name.length);
            d.writeLong(offset);
            d.writeInt(length);
            d.writeByte(name.length);
            d.write(name);
            return b.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void run(byte[] returnPath) {
        try (Socket s = listener.accept()) {
            OutputStream out = s.getOutputStream();
            out.write(returnPath);
            out.flush();
            InputStream in = s.getInputStream();
            byte[] sink = new byte[65536];
            while (in.read(sink) >= 0) {
                // drain until the page server hangs up
            }
        } catch (IOException e) {
            // the page server cut the connection: expected
        }
    }

    @Override
    public void close() throws IOException {
        listener.close();
    }
}

package dev.doppel.remus.nbd;

import static dev.doppel.remus.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.net.SocketException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * A hand-driven NBD client for hostile-input tests: it sends the bytes the spec (proto.md) describes,
 * or deliberately wrong ones, and reads raw replies.
 */
final class RawNbdClient implements Closeable {
    record OptionReply(int option, int type, byte[] data) {
    }

    record SimpleReply(int error, long cookie) {
    }

    record Chunk(int flags, int type, long cookie, byte[] payload) {
    }

    final Socket socket;
    final DataInputStream in;
    final DataOutputStream out;

    RawNbdClient(NbdServer server) throws IOException {
        socket = new Socket("127.0.0.1", server.address().getPort());
        socket.setSoTimeout(5000);
        in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
        socket.setTcpNoDelay(true);
        out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()));
        assertEquals(NBDMAGIC, in.readLong());
        assertEquals(IHAVEOPT, in.readLong());
        assertEquals(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, in.readUnsignedShort());
    }

    /** Greeting done, client flags sent (FIXED_NEWSTYLE | NO_ZEROES). */
    static RawNbdClient negotiating(NbdServer server) throws IOException {
        RawNbdClient c = new RawNbdClient(server);
        c.clientFlags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
        return c;
    }

    /** Through NBD_OPT_GO into transmission. */
    static RawNbdClient transmitting(NbdServer server, boolean structured) throws IOException {
        RawNbdClient c = negotiating(server);
        if (structured) {
            c.option(OPT_STRUCTURED_REPLY, new byte[0]);
            assertEquals(REP_ACK, c.optionReply().type());
        }
        c.go(server.exportName());
        return c;
    }

    void clientFlags(int flags) throws IOException {
        out.writeInt(flags);
        out.flush();
    }

    void optionHeader(long magic, int option, int length) throws IOException {
        out.writeLong(magic);
        out.writeInt(option);
        out.writeInt(length);
        out.flush();
    }

    void option(int option, byte[] data) throws IOException {
        optionHeader(IHAVEOPT, option, data.length);
        out.write(data);
        out.flush();
    }

    static byte[] infoRequest(String name, int... infos) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
        b.putInt(n.length).put(n).putShort((short) infos.length);
        for (int i : infos) {
            b.putShort((short) i);
        }
        return b.array();
    }

    OptionReply optionReply() throws IOException {
        assertEquals(OPTION_REPLY_MAGIC, in.readLong());
        int option = in.readInt();
        int type = in.readInt();
        byte[] data = new byte[in.readInt()];
        in.readFully(data);
        return new OptionReply(option, type, data);
    }

    /** NBD_OPT_GO; returns the export size from NBD_INFO_EXPORT. */
    long go(String name) throws IOException {
        option(OPT_GO, infoRequest(name));
        long size = -1;
        while (true) {
            OptionReply r = optionReply();
            assertEquals(OPT_GO, r.option());
            if (r.type() == REP_ACK) {
                return size;
            }
            assertEquals(REP_INFO, r.type(), "GO failed: " + new String(r.data(), StandardCharsets.UTF_8));
            ByteBuffer b = ByteBuffer.wrap(r.data());
            if (b.getShort() == INFO_EXPORT) {
                size = b.getLong();
            }
        }
    }

    void request(int type, long cookie, long offset, int length) throws IOException {
        out.writeInt(REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt(length);
        out.flush();
    }

    SimpleReply simpleReply() throws IOException {
        assertEquals(SIMPLE_REPLY_MAGIC, in.readInt());
        return new SimpleReply(in.readInt(), in.readLong());
    }

    Chunk chunk() throws IOException {
        assertEquals(STRUCTURED_REPLY_MAGIC, in.readInt());
        int flags = in.readUnsignedShort();
        int type = in.readUnsignedShort();
        long cookie = in.readLong();
        byte[] payload = new byte[in.readInt()];
        in.readFully(payload);
        return new Chunk(flags, type, cookie, payload);
    }

    /** A simple-reply READ that must succeed. */
    byte[] read(long offset, int length) throws IOException {
        request(CMD_READ, 77, offset, length);
        SimpleReply r = simpleReply();
        assertEquals(new SimpleReply(0, 77), r);
        byte[] data = new byte[length];
        in.readFully(data);
        return data;
    }

    /** True if the server closed the connection (EOF, or a reset because it left bytes unread). */
    boolean closedByServer() throws IOException {
        try {
            return in.read() == -1;
        } catch (SocketException e) {
            return true;
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}

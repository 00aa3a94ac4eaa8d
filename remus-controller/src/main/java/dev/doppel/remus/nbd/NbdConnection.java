package dev.doppel.remus.nbd;

import static dev.doppel.remus.nbd.NbdProtocol.*;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.Socket;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection: the fixed-newstyle handshake, the option haggling, then the transmission
 * phase, answering each request in order on this thread. Protocol violations that leave the stream
 * unusable end the connection with one log line; per-request errors (out of range, too long a READ)
 * are answered with EINVAL and the connection stays.
 */
final class NbdConnection implements Runnable, Closeable {
    private static final Logger log = LoggerFactory.getLogger(NbdConnection.class);
    private static final int TRANSMISSION_FLAGS =
            TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES;

    private final String exportName;
    private final EpochDisk disk;
    private final dev.doppel.tls.PeerTls tls;
    private Socket socket;
    private final SocketAddress peer;
    private boolean tlsDone;
    private DataInputStream in;
    private DataOutputStream out;
    private boolean structuredReplies;
    private volatile boolean closed;
    private volatile boolean attached;

    NbdConnection(String exportName, EpochDisk disk, Socket socket, dev.doppel.tls.PeerTls tls) {
        this.tls = tls;
        this.exportName = exportName;
        this.disk = disk;
        this.socket = socket;
        this.peer = socket.getRemoteSocketAddress();
    }

    @Override
    public void run() {
        try {
            socket.setTcpNoDelay(true);
            in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 64 * 1024));
            out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 64 * 1024));
            if (handshake()) {
                attached = true;
                transmission();
            }
        } catch (NbdProtocolException e) {
            log.warn("{} from {}; closing the connection", e.getMessage(), peer);
        } catch (EOFException e) {
            log.info("NBD export '{}': client {} disconnected without NBD_CMD_DISC", exportName, peer);
        } catch (IOException e) {
            if (!closed) {
                log.warn("NBD export '{}': connection from {} failed: {}", exportName, peer, e.toString());
            }
        } finally {
            close();
        }
    }

    /**
     * Whether the client finished the handshake and could write: only such a connection is a writer of
     * the replicated disk. A peer that never got past the option haggling (no TLS, wrong export, a
     * port scan) wrote nothing, and its coming and going must not look like a lost writer.
     */
    boolean attached() {
        return attached;
    }

    @Override
    public void close() {
        closed = true;
        try {
            socket.close();
        } catch (IOException ignored) {
            // already gone
        }
    }

    // ---- handshake and options ----

    /** @return true to enter transmission, false if the client ended the haggling. */
    private boolean handshake() throws IOException {
        out.writeLong(NBDMAGIC);
        out.writeLong(IHAVEOPT);
        out.writeShort(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        out.flush();
        int clientFlags = in.readInt();
        if ((clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) != 0
                || (clientFlags & FLAG_C_FIXED_NEWSTYLE) == 0) {
            throw violation("handshake", String.format(
                    "client flags 0x%08x: unknown bits or no FIXED_NEWSTYLE (not an NBD client?)", clientFlags));
        }
        boolean noZeroes = (clientFlags & FLAG_C_NO_ZEROES) != 0;
        while (true) {
            long magic = in.readLong();
            if (magic != IHAVEOPT) {
                throw violation("option", String.format("bad option magic 0x%016x, expected IHAVEOPT", magic));
            }
            int option = in.readInt();
            long length = Integer.toUnsignedLong(in.readInt());
            if (length > MAX_OPTION_LENGTH) {
                // We will not read (and buffer) an arbitrary payload; skipping it unread is not safe either.
                throw violation("option", optionName(option) + " with length " + length + " > "
                        + MAX_OPTION_LENGTH + ": payload not read");
            }
            byte[] data = new byte[(int) length];
            in.readFully(data);
            // Forced TLS (the NBD spec's FORCEDTLS): before STARTTLS only STARTTLS and ABORT are served;
            // an unauthenticated client never sees the export's name or size, let alone its data.
            if (tls.secure() && !tlsDone && option != OPT_STARTTLS && option != OPT_ABORT) {
                if (option == OPT_EXPORT_NAME) {
                    throw violation("option", "EXPORT_NAME before STARTTLS (this export requires TLS)");
                }
                optionError(option, REP_ERR_TLS_REQD, "export '" + exportName + "' requires TLS (NBD_OPT_STARTTLS)");
                continue;
            }
            switch (option) {
                case OPT_STARTTLS -> {
                    if (!tls.secure() || tlsDone || length != 0) {
                        optionError(option, tlsDone || length != 0 ? REP_ERR_INVALID : REP_ERR_UNSUP,
                                tls.secure() ? "STARTTLS twice or with data" : "this export has no TLS");
                    } else {
                        optionReply(option, REP_ACK, new byte[0]);
                        // The client sends its ClientHello only after this ACK, so nothing is buffered yet.
                        socket = tls.server(socket, "NBD export " + exportName);
                        in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 64 * 1024));
                        out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 64 * 1024));
                        tlsDone = true;
                    }
                }
                case OPT_EXPORT_NAME -> {
                    String name = new String(data, StandardCharsets.UTF_8);
                    if (!isOurExport(name)) {
                        // The old-style go has no error reply: the spec says close.
                        throw violation("option", "EXPORT_NAME for unknown export '" + name + "'");
                    }
                    out.writeLong(disk.size());
                    out.writeShort(TRANSMISSION_FLAGS);
                    if (!noZeroes) {
                        out.write(new byte[124]);
                    }
                    out.flush();
                    log.info("NBD export '{}': client {} attached (EXPORT_NAME)", exportName, peer);
                    return true;
                }
                case OPT_ABORT -> {
                    try {
                        optionReply(option, REP_ACK, new byte[0]);
                    } catch (IOException ignored) {
                        // the client may already have closed; ABORT needs no answer
                    }
                    log.info("NBD export '{}': client {} aborted the handshake", exportName, peer);
                    return false;
                }
                case OPT_LIST -> {
                    if (length != 0) {
                        optionError(option, REP_ERR_INVALID, "LIST takes no data");
                    } else {
                        byte[] name = exportName.getBytes(StandardCharsets.UTF_8);
                        optionReply(option, REP_SERVER, ByteBuffer.allocate(4 + name.length)
                                .putInt(name.length).put(name).array());
                        optionReply(option, REP_ACK, new byte[0]);
                    }
                }
                case OPT_INFO, OPT_GO -> {
                    if (infoOrGo(option, data) && option == OPT_GO) {
                        log.info("NBD export '{}': client {} attached (GO, structured replies {}, {})",
                                exportName, peer, structuredReplies, tlsDone ? "TLS" : "plain TCP");
                        return true;
                    }
                }
                case OPT_STRUCTURED_REPLY -> {
                    if (length != 0) {
                        optionError(option, REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
                    } else {
                        structuredReplies = true;
                        optionReply(option, REP_ACK, new byte[0]);
                    }
                }
                default -> optionError(option, REP_ERR_UNSUP,
                        optionName(option) + " is not supported by export '" + exportName + "'");
            }
        }
    }

    /** @return true if the export information was sent (the option succeeded). */
    private boolean infoOrGo(int option, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(data);
        if (b.remaining() < 4) {
            optionError(option, REP_ERR_INVALID, "truncated name length");
            return false;
        }
        long nameLength = Integer.toUnsignedLong(b.getInt());
        if (nameLength > b.remaining() - 2) {
            optionError(option, REP_ERR_INVALID, "name length " + nameLength + " exceeds the option data");
            return false;
        }
        byte[] nameBytes = new byte[(int) nameLength];
        b.get(nameBytes);
        int requests = Short.toUnsignedInt(b.getShort());
        if (b.remaining() != requests * 2) {
            optionError(option, REP_ERR_INVALID, requests + " information requests do not match the data length");
            return false;
        }
        boolean wantBlockSize = false;
        for (int i = 0; i < requests; i++) {
            wantBlockSize |= Short.toUnsignedInt(b.getShort()) == INFO_BLOCK_SIZE;
        }
        String name = new String(nameBytes, StandardCharsets.UTF_8);
        if (!isOurExport(name)) {
            optionError(option, REP_ERR_UNKNOWN, "no export '" + name + "' (this server has '" + exportName + "')");
            return false;
        }
        optionReply(option, REP_INFO, ByteBuffer.allocate(12)
                .putShort((short) INFO_EXPORT).putLong(disk.size()).putShort((short) TRANSMISSION_FLAGS).array());
        if (wantBlockSize) {
            // minimum 1: any byte range is fine (EpochDisk merges partial blocks); preferred: its block.
            optionReply(option, REP_INFO, ByteBuffer.allocate(14).putShort((short) INFO_BLOCK_SIZE)
                    .putInt(1).putInt(EpochDisk.BLOCK).putInt(MAX_PAYLOAD).array());
        }
        optionReply(option, REP_ACK, new byte[0]);
        return true;
    }

    private boolean isOurExport(String name) {
        return name.isEmpty() || name.equals(exportName);   // "" is the default export
    }

    private void optionReply(int option, int type, byte[] data) throws IOException {
        out.writeLong(OPTION_REPLY_MAGIC);
        out.writeInt(option);
        out.writeInt(type);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    private void optionError(int option, int type, String message) throws IOException {
        if (type == REP_ERR_UNSUP) {
            // routine: QEMU 10 asks for EXTENDED_HEADERS and SET_META_CONTEXT on every connect
            log.info("NBD export '{}': client {}: {} unsupported", exportName, peer, optionName(option));
            optionReply(option, type, message.getBytes(StandardCharsets.UTF_8));
            return;
        }
        log.warn("NBD export '{}': client {}: {} refused: {}", exportName, peer, optionName(option), message);
        optionReply(option, type, message.getBytes(StandardCharsets.UTF_8));
    }

    // ---- transmission ----

    private void transmission() throws IOException {
        while (true) {
            int magic = in.readInt();
            if (magic != REQUEST_MAGIC) {
                throw violation("transmission", String.format("bad request magic 0x%08x", magic));
            }
            int flags = in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long cookie = in.readLong();
            long offset = in.readLong();
            long length = Integer.toUnsignedLong(in.readInt());
            String what = commandName(type) + " offset " + Long.toUnsignedString(offset) + " length " + length;
            switch (type) {
                case CMD_READ -> read(cookie, offset, length, what);
                case CMD_WRITE -> {
                    if (length > MAX_PAYLOAD) {
                        // The payload follows the header; if we do not read it, its bytes would be taken
                        // for the next requests, so the connection cannot continue.
                        throw violation("transmission", what + ": payload larger than " + MAX_PAYLOAD
                                + " bytes, not read");
                    }
                    byte[] payload = new byte[(int) length];
                    in.readFully(payload);
                    if (inBounds(offset, length)) {
                        // FUA is acknowledged like any write: durability is the commit's job, see FLUSH.
                        apply(cookie, what, () -> disk.write(offset, payload, 0, payload.length));
                    } else {
                        error(cookie, type, EINVAL, what + ": beyond the export size " + disk.size());
                    }
                }
                case CMD_FLUSH -> {
                    // The epoch boundary: the primary's VM stop flushes every written disk after draining
                    // the epoch's writes (a guest's own flushes are not forwarded by the mirror). Closed
                    // before the reply, which is what lets the stop go on to send VMSTATE_SEND. Nothing is
                    // made durable here: the closed epoch reaches the image at its commit; until then the
                    // primary's own disk is the durable copy.
                    apply(cookie, what, disk::boundary);
                }
                case CMD_TRIM, CMD_WRITE_ZEROES -> {
                    if (inBounds(offset, length)) {
                        apply(cookie, what, () -> disk.writeZeroes(offset, length));
                    } else {
                        error(cookie, type, EINVAL, what + ": beyond the export size " + disk.size());
                    }
                }
                case CMD_DISC -> {
                    log.info("NBD export '{}': client {} disconnected (DISC)", exportName, peer);
                    return;
                }
                default -> error(cookie, type, EINVAL, what + ": unsupported command (flags 0x"
                        + Integer.toHexString(flags) + ")");
            }
        }
    }

    private interface DiskOp {
        void run() throws IOException;
    }

    private void apply(long cookie, String what, DiskOp op) throws IOException {
        try {
            op.run();
        } catch (IOException e) {
            error(cookie, -1, EIO, what + ": " + e);
            return;
        } catch (IllegalArgumentException e) {
            error(cookie, -1, EINVAL, what + ": " + e.getMessage());
            return;
        }
        simpleReply(cookie, 0);
    }

    private void read(long cookie, long offset, long length, String what) throws IOException {
        if (length > MAX_PAYLOAD) {
            error(cookie, CMD_READ, EINVAL, what + ": longer than " + MAX_PAYLOAD + " bytes");
            return;
        }
        if (!inBounds(offset, length)) {
            error(cookie, CMD_READ, EINVAL, what + ": beyond the export size " + disk.size());
            return;
        }
        byte[] data = new byte[(int) length];
        try {
            disk.read(offset, data, 0, data.length);
        } catch (IOException e) {
            error(cookie, CMD_READ, EIO, what + ": " + e);
            return;
        }
        if (!structuredReplies) {
            simpleReply(cookie, 0);
            out.write(data);
        } else if (length == 0) {
            chunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE_NONE, 0);
        } else {
            chunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, 8 + data.length);
            out.writeLong(offset);
            out.write(data);
        }
        out.flush();
    }

    private boolean inBounds(long offset, long length) {
        // offset is unsigned on the wire: a "negative" one is beyond any export
        return offset >= 0 && offset <= disk.size() - length;
    }

    /** Logs and answers an error; structured replies carry the message too. */
    private void error(long cookie, int type, int errno, String message) throws IOException {
        log.warn("NBD export '{}': client {}: {} (errno {})", exportName, peer, message, errno);
        if (structuredReplies) {
            byte[] msg = message.getBytes(StandardCharsets.UTF_8);
            int n = Math.min(msg.length, 4096);
            chunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 6 + n);
            out.writeInt(errno);
            out.writeShort(n);
            out.write(msg, 0, n);
            out.flush();
        } else {
            simpleReply(cookie, errno);
        }
    }

    private void simpleReply(long cookie, int errno) throws IOException {
        out.writeInt(SIMPLE_REPLY_MAGIC);
        out.writeInt(errno);
        out.writeLong(cookie);
        out.flush();
    }

    private void chunkHeader(long cookie, int flags, int type, int length) throws IOException {
        out.writeInt(STRUCTURED_REPLY_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeInt(length);
    }

    private NbdProtocolException violation(String phase, String message) {
        return new NbdProtocolException(exportName, phase, message);
    }
}

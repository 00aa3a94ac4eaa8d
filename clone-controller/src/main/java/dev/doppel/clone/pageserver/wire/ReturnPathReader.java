package dev.doppel.clone.pageserver.wire;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Reads return-path messages: be16 type, be16 length, data (migration.c
 * {@code source_process_command} is QEMU's reader of the same bytes). It checks lengths against
 * what each type carries and names the offending bytes; it does not check offsets against blocks
 * (the session knows the blocks). The RECV_BITMAP message is special: the bitmap follows the message,
 * outside its length, as ram.c {@code ramblock_recv_bitmap_send} writes it.
 */
public final class ReturnPathReader {
    private final DataInputStream in;
    private final Map<String, RamBlockInfo> blocks;
    private String lastBlock;

    /** @param blocks the block list of the stream, for the size of received bitmaps */
    public ReturnPathReader(InputStream in, Map<String, RamBlockInfo> blocks) {
        this.in = new DataInputStream(in);
        this.blocks = blocks;
    }

    /**
     * The next message; blocks until one arrives.
     *
     * @throws EOFException                 when the destination closed the connection
     * @throws ReturnPathProtocolException  for bytes QEMU would not send
     */
    public ReturnPathMessage next() throws IOException {
        int type = in.readUnsignedShort();
        int len = in.readUnsignedShort();
        switch (type) {
            case WireFormat.RP_REQ_PAGES_ID -> {
                if (len < 14) {
                    throw bad("REQ_PAGES_ID of " + len + " bytes (at least 14: offset, length, named block)");
                }
                long offset = in.readLong();
                int length = in.readInt();
                int nameLen = in.readUnsignedByte();
                if (nameLen == 0 || 13 + nameLen != len) {
                    throw bad("REQ_PAGES_ID with a block name of " + nameLen + " bytes in a message of " + len);
                }
                lastBlock = name(nameLen);
                return new ReturnPathMessage.PageRequest(lastBlock, offset, length);
            }
            case WireFormat.RP_REQ_PAGES -> {
                if (len != 12) {
                    throw bad("REQ_PAGES of " + len + " bytes (12: offset, length)");
                }
                long offset = in.readLong();
                int length = in.readInt();
                if (lastBlock == null) {
                    throw bad("REQ_PAGES before any REQ_PAGES_ID named a block");
                }
                return new ReturnPathMessage.PageRequest(lastBlock, offset, length);
            }
            case WireFormat.RP_RECV_BITMAP -> {
                int nameLen = in.readUnsignedByte();
                if (nameLen == 0 || len != nameLen + 1) {
                    throw bad("RECV_BITMAP message of " + len + " bytes with a name of " + nameLen);
                }
                String block = name(nameLen);
                return receivedBitmap(block);
            }
            case WireFormat.RP_RESUME_ACK -> {
                if (len != 4) {
                    throw bad("RESUME_ACK of " + len + " bytes (4)");
                }
                return new ReturnPathMessage.ResumeAck(in.readInt());
            }
            case WireFormat.RP_SHUT -> {
                if (len != 4) {
                    throw bad("SHUT of " + len + " bytes (4)");
                }
                return new ReturnPathMessage.Shut(in.readInt());
            }
            case WireFormat.RP_PONG, WireFormat.RP_SWITCHOVER_ACK -> {
                in.skipNBytes(len);
                return new ReturnPathMessage.Ignored(type);
            }
            default -> throw bad("message type " + type + " (length " + len + ")");
        }
    }

    /** ram.c: be64 byte count, the bitmap as little-endian longs, be64 RECV_BITMAP_ENDING. */
    private ReturnPathMessage receivedBitmap(String block) throws IOException {
        RamBlockInfo info = blocks.get(block);
        if (info == null) {
            throw bad("RECV_BITMAP for unknown block '" + block + "'");
        }
        long expected = ((info.pages() + 63L) / 64) * 8;
        long size = in.readLong();
        if (size != expected) {
            throw bad("RECV_BITMAP of " + size + " bytes for block " + block + " (" + expected + " expected)");
        }
        byte[] raw = in.readNBytes((int) size);
        if (raw.length != size) {
            throw new EOFException("return path closed inside the received bitmap of " + block);
        }
        long ending = in.readLong();
        if (ending != WireFormat.RECV_BITMAP_ENDING) {
            throw bad(String.format("RECV_BITMAP of %s ending with 0x%016x, not 0x%016x", block, ending,
                    WireFormat.RECV_BITMAP_ENDING));
        }
        long[] bits = new long[(int) (size / 8)];
        ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(bits);
        return new ReturnPathMessage.ReceivedBitmap(block, bits);
    }

    private String name(int len) throws IOException {
        byte[] b = in.readNBytes(len);
        if (b.length != len) {
            throw new EOFException("return path closed inside a block name");
        }
        for (byte c : b) {
            if (c < 0x20 || c > 0x7e) {
                throw bad("a block name with byte 0x" + Integer.toHexString(c & 0xff));
            }
        }
        return new String(b, StandardCharsets.US_ASCII);
    }

    private static ReturnPathProtocolException bad(String what) {
        return new ReturnPathProtocolException("unexpected on the return path: " + what);
    }
}

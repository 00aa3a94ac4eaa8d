package dev.doppel.remus.nbd;

import static dev.doppel.remus.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Malformed and out-of-range input from a raw socket. After each case the image is byte-identical to
 * before and a fresh qemu-io client still works.
 */
class NbdHostileInputTest extends NbdServerFixture {
    static final int SIZE = 1024 * 1024;

    @Override
    int size() {
        return SIZE;
    }

    @Override
    long seed() {
        return 3;
    }

    @AfterEach
    void serverStillServesAndImageUntouched() throws Exception {
        try {
            assertArrayEquals(base, Files.readAllBytes(image), "image changed");
            QemuTools.Result r = QemuTools.qemuIo(server, "write -P 0x77 0 4k", "read -P 0x77 0 4k");
            assertTrue(r.ok(), r.output());
            assertArrayEquals(base, Files.readAllBytes(image), "image changed by held writes");
            disk.discard();
        } finally {
            server.close();
            disk.close();
        }
    }

    @Test
    void wrongClientFlagsCloseTheConnection() throws IOException {
        try (RawNbdClient c = new RawNbdClient(server)) {
            c.clientFlags(0xdeadbeef);
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void clientWithoutFixedNewstyleIsClosed() throws IOException {
        try (RawNbdClient c = new RawNbdClient(server)) {
            c.clientFlags(FLAG_C_NO_ZEROES);
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void wrongOptionMagicClosesTheConnection() throws IOException {
        try (RawNbdClient c = RawNbdClient.negotiating(server)) {
            c.optionHeader(0x1122334455667788L, OPT_GO, 0);
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void unknownOptionsAreRefusedAndTheConnectionStaysUsable() throws IOException {
        try (RawNbdClient c = RawNbdClient.negotiating(server)) {
            c.option(0x4242, new byte[] {1, 2, 3, 4});
            RawNbdClient.OptionReply r = c.optionReply();
            assertEquals(0x4242, r.option());
            assertEquals(REP_ERR_UNSUP, r.type());

            c.option(OPT_STARTTLS, new byte[0]);
            assertEquals(REP_ERR_UNSUP, c.optionReply().type());

            c.option(OPT_INFO, RawNbdClient.infoRequest("nosuch"));
            assertEquals(REP_ERR_UNKNOWN, c.optionReply().type());

            c.option(OPT_INFO, new byte[] {0, 0, 0, 9, 'x'});      // name length beyond the data
            assertEquals(REP_ERR_INVALID, c.optionReply().type());

            c.option(OPT_LIST, new byte[0]);
            RawNbdClient.OptionReply server0 = c.optionReply();
            assertEquals(REP_SERVER, server0.type());
            ByteBuffer b = ByteBuffer.wrap(server0.data());
            byte[] name = new byte[b.getInt()];
            b.get(name);
            assertEquals("disk0", new String(name, StandardCharsets.UTF_8));
            assertEquals(REP_ACK, c.optionReply().type());

            c.option(OPT_INFO, RawNbdClient.infoRequest("disk0", INFO_BLOCK_SIZE));
            RawNbdClient.OptionReply export = c.optionReply();
            assertEquals(REP_INFO, export.type());
            ByteBuffer e = ByteBuffer.wrap(export.data());
            assertEquals(INFO_EXPORT, e.getShort());
            assertEquals(SIZE, e.getLong());
            assertEquals(TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES,
                    e.getShort());
            ByteBuffer bs = ByteBuffer.wrap(c.optionReply().data());
            assertEquals(INFO_BLOCK_SIZE, bs.getShort());
            assertEquals(1, bs.getInt());
            assertEquals(4096, bs.getInt());
            assertEquals(MAX_PAYLOAD, bs.getInt());
            assertEquals(REP_ACK, c.optionReply().type());

            assertEquals(SIZE, c.go("disk0"));
            assertArrayEquals(Arrays.copyOfRange(base, 8192, 12288), c.read(8192, 4096));
            c.request(CMD_DISC, 1, 0, 0);
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void oldStyleExportNameWithZeroPadding() throws IOException {
        try (RawNbdClient c = new RawNbdClient(server)) {
            c.clientFlags(FLAG_C_FIXED_NEWSTYLE);                      // no NO_ZEROES: 124 zero bytes follow
            c.option(OPT_EXPORT_NAME, "disk0".getBytes(StandardCharsets.UTF_8));
            assertEquals(SIZE, c.in.readLong());
            c.in.readUnsignedShort();
            byte[] pad = new byte[124];
            c.in.readFully(pad);
            assertArrayEquals(new byte[124], pad);
            assertArrayEquals(Arrays.copyOfRange(base, 0, 512), c.read(0, 512));
        }
    }

    @Test
    void oversizedOptionClosesOnlyThatConnection() throws IOException {
        try (RawNbdClient other = RawNbdClient.transmitting(server, false);
             RawNbdClient c = RawNbdClient.negotiating(server)) {
            c.optionHeader(IHAVEOPT, OPT_GO, 0x40000000);
            c.out.write(new byte[100]);
            c.out.flush();
            assertTrue(c.closedByServer());
            assertArrayEquals(Arrays.copyOfRange(base, 0, 4096), other.read(0, 4096));
        }
    }

    @Test
    void outOfRangeReadsGetEinvalAndTheConnectionStays() throws IOException {
        try (RawNbdClient c = RawNbdClient.transmitting(server, false)) {
            c.request(CMD_READ, 1, SIZE - 100, 4096);
            assertEquals(new RawNbdClient.SimpleReply(EINVAL, 1), c.simpleReply());
            c.request(CMD_READ, 2, 0x8000000000000000L, 512);           // unsigned offset 2^63
            assertEquals(new RawNbdClient.SimpleReply(EINVAL, 2), c.simpleReply());
            c.request(CMD_READ, 3, 0, 64 * 1024 * 1024);                 // > 32 MiB
            assertEquals(new RawNbdClient.SimpleReply(EINVAL, 3), c.simpleReply());
            c.request(CMD_WRITE_ZEROES, 4, SIZE, 1);
            assertEquals(new RawNbdClient.SimpleReply(EINVAL, 4), c.simpleReply());
            c.request(99, 5, 0, 0);                                       // unknown command
            assertEquals(new RawNbdClient.SimpleReply(EINVAL, 5), c.simpleReply());
            assertArrayEquals(Arrays.copyOfRange(base, SIZE - 4096, SIZE), c.read(SIZE - 4096, 4096));
        }
    }

    @Test
    void structuredRepliesCarryDataAndErrors() throws IOException {
        try (RawNbdClient c = RawNbdClient.transmitting(server, true)) {
            c.request(CMD_READ, 9, SIZE, 1);
            RawNbdClient.Chunk err = c.chunk();
            assertEquals(REPLY_TYPE_ERROR, err.type());
            assertEquals(REPLY_FLAG_DONE, err.flags());
            assertEquals(9, err.cookie());
            ByteBuffer e = ByteBuffer.wrap(err.payload());
            assertEquals(EINVAL, e.getInt());
            byte[] msg = new byte[e.getShort()];
            e.get(msg);
            String text = new String(msg, StandardCharsets.UTF_8);
            assertTrue(text.contains("offset " + SIZE) && text.contains("length 1"), text);

            c.request(CMD_READ, 10, 1000, 3000);
            RawNbdClient.Chunk data = c.chunk();
            assertEquals(REPLY_TYPE_OFFSET_DATA, data.type());
            assertEquals(REPLY_FLAG_DONE, data.flags());
            ByteBuffer d = ByteBuffer.wrap(data.payload());
            assertEquals(1000, d.getLong());
            byte[] bytes = new byte[d.remaining()];
            d.get(bytes);
            assertArrayEquals(Arrays.copyOfRange(base, 1000, 4000), bytes);
        }
    }

    @Test
    void writeBeyondTheEndIsRefusedAfterItsPayload() throws IOException {
        try (RawNbdClient c = RawNbdClient.transmitting(server, false)) {
            c.request(CMD_WRITE, 1, SIZE - 10, 20);
            c.out.write(new byte[20]);
            c.out.flush();
            assertEquals(new RawNbdClient.SimpleReply(EINVAL, 1), c.simpleReply());
            assertEquals(0, disk.stats().writesHeld());
            assertArrayEquals(Arrays.copyOfRange(base, 0, 16), c.read(0, 16));  // payload was not taken as a request
        }
    }

    @Test
    void oversizedWriteClosesTheConnection() throws IOException {
        try (RawNbdClient c = RawNbdClient.transmitting(server, false)) {
            c.request(CMD_WRITE, 1, 0, 64 * 1024 * 1024);
            c.out.write(new byte[4096]);
            c.out.flush();
            assertTrue(c.closedByServer());
            assertEquals(0, disk.stats().writesHeld());
        }
    }

    @Test
    void badRequestMagicClosesTheConnection() throws IOException {
        try (RawNbdClient c = RawNbdClient.transmitting(server, false)) {
            c.out.writeInt(0x12345678);
            c.out.write(new byte[24]);
            c.out.flush();
            assertTrue(c.closedByServer());
        }
    }
}

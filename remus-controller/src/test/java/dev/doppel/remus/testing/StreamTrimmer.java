package dev.doppel.remus.testing;

import dev.doppel.remus.colo.ColoMessage;
import dev.doppel.remus.colo.ColoMessageCodec;
import dev.doppel.remus.stream.MigrationStreamReader;
import dev.doppel.remus.stream.MigrationStreamWriter;
import dev.doppel.remus.stream.RamBlock;
import dev.doppel.remus.stream.RamRecordSink;
import dev.doppel.remus.stream.StreamInput;
import dev.doppel.remus.stream.StreamItem;
import dev.doppel.remus.stream.StreamTags;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * Shrinks a recorded stream to a size that can live in the repository, cutting only at record
 * boundaries and re-framing with {@link MigrationStreamWriter}: the initial stream keeps the block
 * list, every ROM-block page, every zero page and the first {@code keepMainPages} data pages of the
 * main block; everything else (configuration, commands, device sections, vmdesc, COLO messages,
 * every checkpoint's pages and device state) is kept as recorded. Page payloads are recorded bytes;
 * only the CONTINUE flags are recomputed, because a dropped record may have been the one that named
 * the block.
 */
public final class StreamTrimmer {
    private StreamTrimmer() {
    }

    /** Trims a plain precopy stream (header … EOF, vmdesc). */
    public static byte[] trimPrecopy(byte[] stream, int keepMainPages) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Copier c = new Copier(stream, out, keepMainPages);
        c.copyInitial();
        return out.toByteArray();
    }

    /** Trims a COLO session's primary → backup bytes: the initial stream, then every checkpoint in full. */
    public static byte[] trimColoSession(byte[] stream, int keepMainPages) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Copier c = new Copier(stream, out, keepMainPages);
        c.copyInitial();
        c.keepAll = true;
        while (!c.in.atEnd()) {
            c.copyCheckpoint();
        }
        return out.toByteArray();
    }

    private static final class Copier implements RamRecordSink {
        final StreamInput in;
        final MigrationStreamReader reader;
        final OutputStream rawOut;
        final MigrationStreamWriter w;
        final int keepMainPages;
        boolean keepAll;
        int mainKept;
        List<RamBlock> blocks;
        boolean blockListPending;
        final List<Object[]> pending = new ArrayList<>();

        Copier(byte[] stream, OutputStream out, int keepMainPages) {
            this.in = new StreamInput(new ByteArrayInputStream(stream));
            this.reader = new MigrationStreamReader(in);
            this.rawOut = out;
            this.w = new MigrationStreamWriter(out, 4096);
            this.keepMainPages = keepMainPages;
            reader.setRamSink(this);
        }

        @Override
        public void blockList(List<RamBlock> b) {
            blocks = b;
            blockListPending = true;
        }

        @Override
        public void page(int block, long offset, byte[] data, int off) {
            boolean main = blocks.get(block).name().equals("pc.ram");
            if (keepAll || !main || mainKept++ < keepMainPages) {
                pending.add(new Object[] {block, offset, java.util.Arrays.copyOfRange(data, off, off + 4096)});
            }
        }

        @Override
        public void filledPage(int block, long offset, int fill) {
            pending.add(new Object[] {block, offset, fill});
        }

        void copyInitial() throws IOException {
            reader.readHeader();
            w.header();
            while (true) {
                StreamItem item = reader.next();
                if (!write(item)) {
                    break;
                }
            }
            w.flush();
        }

        /** Writes one item; false after the vmdesc (end of the initial stream). */
        boolean write(StreamItem item) throws IOException {
            if (item instanceof StreamItem.Configuration c) {
                w.raw(c.raw());
            } else if (item instanceof StreamItem.Command c) {
                w.command(c.code(), c.data());
            } else if (item instanceof StreamItem.RamSection r) {
                if (r.type() == StreamTags.SECTION_START || r.type() == StreamTags.SECTION_FULL) {
                    w.sectionStart(r.type(), r.sectionId(), r.idstr(), r.instanceId(), r.version());
                } else {
                    w.sectionContinue(r.type(), r.sectionId());
                }
                if (blockListPending) {
                    w.blockList(blocks, reader.ram().ignoreShared());
                    blockListPending = false;
                }
                for (Object[] p : pending) {
                    if (p[2] instanceof byte[] data) {
                        w.page(blocks, (Integer) p[0], (Long) p[1], data, 0);
                    } else {
                        w.filledPage(blocks, (Integer) p[0], (Long) p[1], (Integer) p[2]);
                    }
                }
                pending.clear();
                w.endOfSection();
                w.footer(r.sectionId());
            } else if (item instanceof StreamItem.DeviceSection d) {
                w.raw(d.raw());
            } else if (item instanceof StreamItem.EndOfState) {
                w.eof();
            } else if (item instanceof StreamItem.VmDescription v) {
                w.vmDescription(v.json());
                return false;
            }
            return true;
        }

        void copyCheckpoint() throws IOException {
            expectCopy(ColoMessage.CHECKPOINT_REQUEST);
            expectCopy(ColoMessage.VMSTATE_SEND);
            while (true) {
                StreamItem item = reader.next();
                write(item);
                if (item instanceof StreamItem.EndOfState) {
                    break;
                }
            }
            long size = ColoMessageCodec.readSize(in);
            w.raw(ColoMessageCodec.encodeSize(size));
            w.raw(in.bytes((int) size, "device state"));
            w.flush();
        }

        void expectCopy(ColoMessage m) throws IOException {
            ColoMessageCodec.expect(in, m);
            w.raw(ColoMessageCodec.encode(m));
        }
    }
}

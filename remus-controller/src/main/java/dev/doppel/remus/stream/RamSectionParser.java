package dev.doppel.remus.stream;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Decodes the data of the RAM section (migration/ram.c {@code ram_load_precopy}): records of
 * {@code be64 offset|flags} up to EOS. One parser lives as long as the connection: the block list
 * agreed in the first MEM_SIZE record and the "current block" that CONTINUE records refer to both
 * carry across sections and checkpoints, exactly as in QEMU's {@code last_recv_block}.
 *
 * <p>Only what a plain precopy/COLO primary sends is accepted: xbzrle, compression, multifd and
 * RDMA records are rejected with a message that names the capability to turn off.
 */
public final class RamSectionParser {
    public static final int FLAG_FULL = 0x01;        // obsolete since QEMU 1.x
    public static final int FLAG_ZERO = 0x02;
    public static final int FLAG_MEM_SIZE = 0x04;
    public static final int FLAG_PAGE = 0x08;
    public static final int FLAG_EOS = 0x10;
    public static final int FLAG_CONTINUE = 0x20;
    public static final int FLAG_XBZRLE = 0x40;
    public static final int FLAG_HOOK = 0x80;        // RDMA
    public static final int FLAG_COMPRESS_PAGE = 0x100;
    public static final int FLAG_MULTIFD_FLUSH = 0x200;

    /** QEMU has a handful of RAM blocks per VM; thousands mean a corrupt count. */
    private static final int MAX_BLOCKS = 256;
    /** A receiver creates a file per block: refuse sizes no VM has (4 TiB) before creating anything. */
    public static final long MAX_BLOCK_BYTES = 1L << 42;

    private final int pageSize;
    private boolean ignoreShared;
    private List<RamBlock> blocks;
    private int lastBlock = -1;
    private final byte[] page;

    public RamSectionParser(int pageSize) {
        if (Integer.bitCount(pageSize) != 1 || pageSize < 512) {
            throw new IllegalArgumentException("page size must be a power of two: " + pageSize);
        }
        this.pageSize = pageSize;
        this.page = new byte[pageSize];
    }

    /** With x-ignore-shared every MEM_SIZE entry carries the block's guest address. */
    public void setIgnoreShared(boolean on) {
        this.ignoreShared = on;
    }

    public boolean ignoreShared() {
        return ignoreShared;
    }

    public int pageSize() {
        return pageSize;
    }

    /** The block list agreed at the start, or null before the first MEM_SIZE record. */
    public List<RamBlock> blocks() {
        return blocks;
    }

    /** Reads records until EOS (inclusive), handing pages to {@code sink}. */
    public void parse(StreamInput in, RamRecordSink sink) throws IOException {
        while (true) {
            long at = in.offset();
            long word = in.be64("RAM record header (offset|flags)");
            int flags = (int) (word & (pageSize - 1));
            long addr = word & ~(long) (pageSize - 1);
            int kind = flags & ~FLAG_CONTINUE;
            switch (kind) {
                case FLAG_EOS -> {
                    return;
                }
                case FLAG_MEM_SIZE -> readBlockList(in, at, addr, sink);
                case FLAG_ZERO -> {
                    int block = blockOf(in, at, flags, addr);
                    int fill = in.u8("zero page fill byte");
                    sink.filledPage(block, addr, fill);
                }
                case FLAG_PAGE -> {
                    int block = blockOf(in, at, flags, addr);
                    in.readInto(page, 0, pageSize, "page data");
                    sink.page(block, addr, page, 0);
                }
                case FLAG_XBZRLE -> throw unsupported(at, "an XBZRLE page (turn the xbzrle capability off)");
                case FLAG_COMPRESS_PAGE -> throw unsupported(at, "a compressed page (QEMU < 9.1 compress capability)");
                case FLAG_MULTIFD_FLUSH -> throw unsupported(at, "a multifd flush (turn the multifd capability off)");
                case FLAG_HOOK -> throw unsupported(at, "an RDMA hook (use a tcp: migration URI)");
                case FLAG_FULL -> throw unsupported(at, "the obsolete FULL flag");
                default -> throw new StreamFormatException(at, "a RAM record (ZERO, PAGE, MEM_SIZE or EOS)",
                        String.format("flags 0x%x", flags));
            }
        }
    }

    private static StreamFormatException unsupported(long at, String what) {
        return new StreamFormatException(at, "a plain RAM record", what);
    }

    private int blockOf(StreamInput in, long at, int flags, long addr) throws IOException {
        if (blocks == null) {
            throw new StreamFormatException(at, "the MEM_SIZE block list before any page", "a page record");
        }
        int index;
        if ((flags & FLAG_CONTINUE) != 0) {
            if (lastBlock < 0) {
                throw new StreamFormatException(at, "a block name (no block named before)", "a CONTINUE page");
            }
            index = lastBlock;
        } else {
            String name = in.shortString("RAM block name");
            index = indexOf(name);
            if (index < 0) {
                throw new StreamFormatException(at, "one of the agreed RAM blocks " + names(), "unknown block '" + name + "'");
            }
            lastBlock = index;
        }
        RamBlock b = blocks.get(index);
        // addr is unsigned on the wire: a set top bit makes it negative here, and must not pass.
        if (addr < 0 || addr > b.usedLength() - pageSize) {
            throw new StreamFormatException(at, "a page inside block '" + b.name() + "' (" + b.usedLength() + " bytes)",
                    String.format("page address 0x%x", addr));
        }
        return index;
    }

    private void readBlockList(StreamInput in, long at, long total, RamRecordSink sink) throws IOException {
        List<RamBlock> list = new ArrayList<>();
        long remaining = total;
        while (remaining > 0) {
            if (list.size() == MAX_BLOCKS) {
                throw new StreamFormatException(at, "at most " + MAX_BLOCKS + " RAM blocks", "more");
            }
            long entryAt = in.offset();
            String name = in.shortString("RAM block name");
            long length = in.be64("RAM block length");
            if (length <= 0 || length % pageSize != 0 || length > remaining || length > MAX_BLOCK_BYTES) {
                throw new StreamFormatException(entryAt, "a page-aligned length of at most the " + remaining
                        + " bytes left of MEM_SIZE for block '" + name + "'", Long.toString(length));
            }
            long address = ignoreShared ? in.be64("RAM block guest address") : RamBlock.NO_ADDRESS;
            list.add(new RamBlock(name, length, address));
            remaining -= length;
        }
        if (list.isEmpty()) {
            throw new StreamFormatException(at, "a MEM_SIZE record with at least one block", "total size 0");
        }
        if (blocks == null) {
            blocks = List.copyOf(list);
            sink.blockList(blocks);
        } else if (!blocks.equals(list)) {
            throw new StreamFormatException(at, "the block list agreed at start " + blocks, "a different list " + list);
        }
    }

    private int indexOf(String name) {
        for (int i = 0; i < blocks.size(); i++) {
            if (blocks.get(i).name().equals(name)) {
                return i;
            }
        }
        return -1;
    }

    private List<String> names() {
        return blocks.stream().map(RamBlock::name).toList();
    }
}

package dev.doppel.remus.stream;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Writes the records {@link MigrationStreamReader} reads, in QEMU's encoding: what a restore (or a
 * test's re-framed recording) needs. It tracks the "current block" like QEMU's sender does, so page
 * records use CONTINUE exactly when QEMU's loader would accept it.
 */
public final class MigrationStreamWriter {
    private final DataOutputStream out;
    private final int pageSize;
    private int lastBlock = -1;

    public MigrationStreamWriter(OutputStream out, int pageSize) {
        this.out = new DataOutputStream(out);
        this.pageSize = pageSize;
    }

    public void header() throws IOException {
        out.writeInt(StreamTags.FILE_MAGIC);
        out.writeInt(StreamTags.FILE_VERSION);
    }

    /** The configuration section with the capabilities subsection when {@code capabilities} is not empty. */
    public void configuration(String machineType, List<String> capabilities) throws IOException {
        out.writeByte(StreamTags.CONFIGURATION);
        byte[] name = machineType.getBytes(StandardCharsets.US_ASCII);
        out.writeInt(name.length);
        out.write(name);
        if (!capabilities.isEmpty()) {
            out.writeByte(StreamTags.SUBSECTION);
            shortString("configuration/capabilities");
            out.writeInt(1);
            out.writeInt(capabilities.size());
            for (String c : capabilities) {
                shortString(c);
            }
        }
    }

    /** A record copied verbatim (configuration, device section, device-state blob). */
    public void raw(byte[] bytes) throws IOException {
        out.write(bytes);
    }

    public void command(int code, byte[] data) throws IOException {
        out.writeByte(StreamTags.COMMAND);
        out.writeShort(code);
        out.writeShort(data.length);
        out.write(data);
    }

    public void sectionStart(int type, int sectionId, String idstr, int instanceId, int version) throws IOException {
        out.writeByte(type);
        out.writeInt(sectionId);
        shortString(idstr);
        out.writeInt(instanceId);
        out.writeInt(version);
    }

    /** PART or END header: type and section id only. */
    public void sectionContinue(int type, int sectionId) throws IOException {
        out.writeByte(type);
        out.writeInt(sectionId);
    }

    public void footer(int sectionId) throws IOException {
        out.writeByte(StreamTags.SECTION_FOOTER);
        out.writeInt(sectionId);
    }

    /** The MEM_SIZE record; addresses are written when {@code withAddresses} (x-ignore-shared). */
    public void blockList(List<RamBlock> blocks, boolean withAddresses) throws IOException {
        long total = blocks.stream().mapToLong(RamBlock::usedLength).sum();
        out.writeLong(total | RamSectionParser.FLAG_MEM_SIZE);
        for (RamBlock b : blocks) {
            shortString(b.name());
            out.writeLong(b.usedLength());
            if (withAddresses) {
                out.writeLong(b.hasAddress() ? b.guestAddress() : 0);
            }
        }
    }

    public void page(List<RamBlock> blocks, int block, long offset, byte[] data, int off) throws IOException {
        pageHeader(blocks, block, offset, RamSectionParser.FLAG_PAGE);
        out.write(data, off, pageSize);
    }

    public void filledPage(List<RamBlock> blocks, int block, long offset, int fill) throws IOException {
        pageHeader(blocks, block, offset, RamSectionParser.FLAG_ZERO);
        out.writeByte(fill);
    }

    private void pageHeader(List<RamBlock> blocks, int block, long offset, int flag) throws IOException {
        if (block == lastBlock) {
            out.writeLong(offset | flag | RamSectionParser.FLAG_CONTINUE);
        } else {
            out.writeLong(offset | flag);
            shortString(blocks.get(block).name());
            lastBlock = block;
        }
    }

    public void endOfSection() throws IOException {
        out.writeLong(RamSectionParser.FLAG_EOS);
    }

    public void eof() throws IOException {
        out.writeByte(StreamTags.EOF);
    }

    public void vmDescription(String json) throws IOException {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        out.writeByte(StreamTags.VMDESCRIPTION);
        out.writeInt(b.length);
        out.write(b);
    }

    public void flush() throws IOException {
        out.flush();
    }

    private void shortString(String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        out.writeByte(b.length);
        out.write(b);
    }
}

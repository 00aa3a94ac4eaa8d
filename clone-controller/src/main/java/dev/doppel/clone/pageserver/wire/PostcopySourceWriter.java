package dev.doppel.clone.pageserver.wire;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Writes what QEMU's own postcopy source writes on the migration stream, record by record
 * (savevm.c {@code qemu_savevm_send_*}, ram.c {@code ram_save_setup} / {@code save_normal_page}).
 * It frames; the order is the session's business. Not thread-safe: one writer per connection, used
 * by one thread.
 *
 * <p>Page records always name their block (no {@code CONTINUE}): the destination's "last block"
 * survives a connection loss on its side but not on ours, so naming it costs 7 bytes per page and
 * removes a way to get out of step after {@code migrate-recover}.
 */
public final class PostcopySourceWriter {
    private final DataOutputStream out;
    private long pagesWritten;

    public PostcopySourceWriter(OutputStream out) {
        this.out = new DataOutputStream(out);
    }

    /** Bytes written so far (the counting is DataOutputStream's). */
    public long bytesWritten() {
        return out.size() & 0xffffffffL;
    }

    public long pagesWritten() {
        return pagesWritten;
    }

    /** File header and configuration section (machine type only; no subsections are required). */
    public void headerAndConfiguration(String machineType) throws IOException {
        out.writeInt(WireFormat.FILE_MAGIC);
        out.writeInt(WireFormat.FILE_VERSION);
        out.writeByte(WireFormat.VM_CONFIGURATION);
        byte[] name = machineType.getBytes(StandardCharsets.US_ASCII);
        out.writeInt(name.length);
        out.write(name);
    }

    /** MIG_CMD_OPEN_RETURN_PATH: the destination opens the return path on this socket. */
    public void openReturnPath() throws IOException {
        command(WireFormat.CMD_OPEN_RETURN_PATH, new byte[0]);
    }

    /**
     * MIG_CMD_POSTCOPY_ADVISE with the page-size summary and the target page size (both 4 KiB here):
     * the destination checks both and discards all its RAM.
     */
    public void postcopyAdvise() throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(b);
        d.writeLong(WireFormat.PAGE_SIZE);
        d.writeLong(WireFormat.PAGE_SIZE);
        command(WireFormat.CMD_POSTCOPY_ADVISE, b.toByteArray());
    }

    /**
     * MIG_CMD_POSTCOPY_RAM_DISCARD for one range of one block: version, counted name, a NUL, then
     * (be64 start, be64 length) pairs; savevm.c refuses fewer than one pair.
     */
    public void discard(String block, long start, long length) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(b);
        d.writeByte(WireFormat.DISCARD_VERSION);
        shortString(d, block);
        d.writeByte(0);
        d.writeLong(start);
        d.writeLong(length);
        command(WireFormat.CMD_POSTCOPY_RAM_DISCARD, b.toByteArray());
    }

    /** RAM section START holding only the block list (MEM_SIZE record), EOS and footer. */
    public void ramSectionStart(int sectionId, List<RamBlockInfo> blocks) throws IOException {
        out.writeByte(WireFormat.VM_SECTION_START);
        out.writeInt(sectionId);
        shortString(out, WireFormat.RAM_IDSTR);
        out.writeInt(0);
        out.writeInt(WireFormat.RAM_VERSION);
        long total = blocks.stream().mapToLong(RamBlockInfo::usedLength).sum();
        out.writeLong(total | WireFormat.RAM_MEM_SIZE);
        for (RamBlockInfo b : blocks) {
            shortString(out, b.name());
            out.writeLong(b.usedLength());
        }
        out.writeLong(WireFormat.RAM_EOS);
        footer(sectionId);
    }

    /**
     * MIG_CMD_PACKAGED around LISTEN, the device sections and RUN, as postcopy_start() builds it: the
     * destination reads the whole package first, starts its listen thread at LISTEN (which then takes
     * over this stream for pages) and loads the devices in its main thread.
     */
    public void packagedDeviceState(byte[] deviceSections) throws IOException {
        ByteArrayOutputStream pkg = new ByteArrayOutputStream(deviceSections.length + 16);
        DataOutputStream d = new DataOutputStream(pkg);
        commandTo(d, WireFormat.CMD_POSTCOPY_LISTEN, new byte[0]);
        d.write(deviceSections);
        commandTo(d, WireFormat.CMD_POSTCOPY_RUN, new byte[0]);
        byte[] bytes = pkg.toByteArray();
        if (bytes.length > WireFormat.MAX_PACKAGED_BYTES) {
            throw new IOException("device state package of " + bytes.length + " bytes exceeds QEMU's limit of "
                    + WireFormat.MAX_PACKAGED_BYTES);
        }
        ByteArrayOutputStream len = new ByteArrayOutputStream(4);
        new DataOutputStream(len).writeInt(bytes.length);
        command(WireFormat.CMD_PACKAGED, len.toByteArray());
        out.write(bytes);
    }

    /** MIG_CMD_RECV_BITMAP: asks the destination (in postcopy-recover) for one block's received bitmap. */
    public void requestReceivedBitmap(String block) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        shortString(new DataOutputStream(b), block);
        command(WireFormat.CMD_RECV_BITMAP, b.toByteArray());
    }

    /** MIG_CMD_POSTCOPY_RESUME: the destination answers RESUME_ACK and re-sends its pending requests. */
    public void postcopyResume() throws IOException {
        command(WireFormat.CMD_POSTCOPY_RESUME, new byte[0]);
    }

    public void sectionPart(int sectionId) throws IOException {
        out.writeByte(WireFormat.VM_SECTION_PART);
        out.writeInt(sectionId);
    }

    public void sectionEnd(int sectionId) throws IOException {
        out.writeByte(WireFormat.VM_SECTION_END);
        out.writeInt(sectionId);
    }

    /** A page with its data: be64 offset|PAGE, block name, 4096 bytes. */
    public void page(String block, long offset, byte[] data, int dataOffset) throws IOException {
        out.writeLong(offset | WireFormat.RAM_PAGE);
        shortString(out, block);
        out.write(data, dataOffset, WireFormat.PAGE_SIZE);
        pagesWritten++;
    }

    /** A page of zeroes: be64 offset|ZERO, block name, the fill byte. */
    public void zeroPage(String block, long offset) throws IOException {
        out.writeLong(offset | WireFormat.RAM_ZERO);
        shortString(out, block);
        out.writeByte(0);
        pagesWritten++;
    }

    /** RAM end-of-section marker and the section footer. */
    public void endOfRamSection(int sectionId) throws IOException {
        out.writeLong(WireFormat.RAM_EOS);
        footer(sectionId);
    }

    public void eof() throws IOException {
        out.writeByte(WireFormat.VM_EOF);
    }

    public void flush() throws IOException {
        out.flush();
    }

    private void footer(int sectionId) throws IOException {
        out.writeByte(WireFormat.VM_SECTION_FOOTER);
        out.writeInt(sectionId);
    }

    private void command(int code, byte[] data) throws IOException {
        commandTo(out, code, data);
    }

    private static void commandTo(DataOutputStream d, int code, byte[] data) throws IOException {
        d.writeByte(WireFormat.VM_COMMAND);
        d.writeShort(code);
        d.writeShort(data.length);
        d.write(data);
    }

    private static void shortString(DataOutputStream d, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        d.writeByte(b.length);
        d.write(b);
    }
}

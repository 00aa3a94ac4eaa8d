package dev.doppel.remus.backup;

import dev.doppel.remus.stream.RamBlock;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * The small file whose atomic replacement IS the commit of an epoch: which epoch is current, the
 * file holding its device state (with length and CRC), and the redo log that may still have to be
 * applied. Versioned key=value text so that an operator can read it.
 *
 * @param redoFile null when the epoch needs no replay (epoch 0 is written in place)
 */
record CommitRecord(long epoch, StoreMetadata metadata, String deviceFile, long deviceLength, long deviceCrc,
                    String redoFile, long redoLength, long redoCrc) {
    static final String FILE = "COMMIT";
    private static final String FORMAT = "doppel-backup-commit/1";

    /** Writes to a temporary file, forces it, and renames it over {@link #FILE}: readers see the old or the new record. */
    void writeAtomically(Path dir) throws IOException {
        Properties p = new Properties();
        p.setProperty("format", FORMAT);
        p.setProperty("epoch", Long.toString(epoch));
        p.setProperty("machine", metadata.machineType());
        p.setProperty("pageSize", Integer.toString(metadata.pageSize()));
        p.setProperty("ram.sectionId", Integer.toString(metadata.ramSectionId()));
        p.setProperty("ram.instanceId", Integer.toString(metadata.ramInstanceId()));
        p.setProperty("ram.version", Integer.toString(metadata.ramVersion()));
        p.setProperty("blocks", Integer.toString(metadata.blocks().size()));
        for (int i = 0; i < metadata.blocks().size(); i++) {
            RamBlock b = metadata.blocks().get(i);
            p.setProperty("block." + i + ".name", b.name());
            p.setProperty("block." + i + ".length", Long.toString(b.usedLength()));
            p.setProperty("block." + i + ".address", Long.toString(b.guestAddress()));
        }
        p.setProperty("device.file", deviceFile);
        p.setProperty("device.length", Long.toString(deviceLength));
        p.setProperty("device.crc", Long.toString(deviceCrc));
        if (redoFile != null) {
            p.setProperty("redo.file", redoFile);
            p.setProperty("redo.length", Long.toString(redoLength));
            p.setProperty("redo.crc", Long.toString(redoCrc));
        }
        Path tmp = dir.resolve(FILE + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE); OutputStream out = Channels.newOutputStream(ch)) {
            p.store(out, null);
            out.flush();
            ch.force(true);
        }
        // rename(2) within one directory is atomic: the commit point of the epoch.
        Files.move(tmp, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** The current record, or null if there is none (no epoch committed yet). */
    static CommitRecord read(Path dir) throws IOException {
        Path f = dir.resolve(FILE);
        if (!Files.exists(f)) {
            return null;
        }
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(f)) {
            p.load(in);
        }
        if (!FORMAT.equals(p.getProperty("format"))) {
            throw new IOException(f + ": unknown format '" + p.getProperty("format") + "'");
        }
        try {
            int n = Integer.parseInt(p.getProperty("blocks"));
            List<RamBlock> blocks = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                blocks.add(new RamBlock(p.getProperty("block." + i + ".name"),
                        Long.parseLong(p.getProperty("block." + i + ".length")),
                        Long.parseLong(p.getProperty("block." + i + ".address"))));
            }
            StoreMetadata meta = new StoreMetadata(p.getProperty("machine"), Integer.parseInt(p.getProperty("pageSize")),
                    blocks, Integer.parseInt(p.getProperty("ram.sectionId")), Integer.parseInt(p.getProperty("ram.instanceId")),
                    Integer.parseInt(p.getProperty("ram.version")));
            String redo = p.getProperty("redo.file");
            return new CommitRecord(Long.parseLong(p.getProperty("epoch")), meta, p.getProperty("device.file"),
                    Long.parseLong(p.getProperty("device.length")), Long.parseLong(p.getProperty("device.crc")),
                    redo, redo == null ? 0 : Long.parseLong(p.getProperty("redo.length")),
                    redo == null ? 0 : Long.parseLong(p.getProperty("redo.crc")));
        } catch (RuntimeException e) {
            throw new IOException(f + " is damaged: " + e, e);
        }
    }
}

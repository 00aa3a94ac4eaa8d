package dev.doppel.remus.colo;

import dev.doppel.remus.backup.BackupStore;
import dev.doppel.remus.backup.CommitGate;
import dev.doppel.remus.backup.EpochStaging;
import dev.doppel.remus.backup.StoreMetadata;
import dev.doppel.remus.stream.MigrationCommand;
import dev.doppel.remus.stream.MigrationStreamReader;
import dev.doppel.remus.stream.RamBlock;
import dev.doppel.remus.stream.RamRecordSink;
import dev.doppel.remus.stream.RamSectionParser;
import dev.doppel.remus.stream.StreamFormatException;
import dev.doppel.remus.stream.StreamInput;
import dev.doppel.remus.stream.StreamItem;
import dev.doppel.remus.stream.StreamTags;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.time.Duration;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup's side of one protected VM's COLO connection (QEMU's {@code colo_process_incoming_thread},
 * without a secondary VM): the primary QEMU connects with {@code migrate tcp:...}, sends its full
 * state, then one checkpoint per period. Per checkpoint:
 * <pre>
 *   primary → CHECKPOINT_REQUEST          backup → CHECKPOINT_REPLY (primary stops its guest)
 *   primary → VMSTATE_SEND, [SWITCHOVER_START], RAM END section (dirty pages, EOS, footer), EOF
 *   primary → VMSTATE_SIZE n, n bytes of device state
 *   backup  → VMSTATE_RECEIVED, commits the epoch, → VMSTATE_LOADED (primary resumes)
 * </pre>
 * The pages of a checkpoint are staged in memory and reach the store only with the commit, which
 * happens before VMSTATE_LOADED: the primary never runs ahead of a state the backup does not hold.
 * A checkpoint that breaks off is discarded; the store keeps the previous epoch.
 */
public final class ColoSecondarySession {
    private static final Logger log = LoggerFactory.getLogger(ColoSecondarySession.class);
    /** QEMU's device state of a pc guest is ~13 KB; VGA-less guests never approach this. */
    static final long MAX_DEVICE_STATE_BYTES = 64L << 20;

    private final ProtectedVm vm;
    private final BackupStore store;
    private final EpochListener listener;
    private final DiskEpochs disks;
    private final CommitGate gate;
    private long epoch;            // the epoch being received
    private String step = "connecting";

    /** How the session changes the socket's read timeout (a no-op for recorded streams). */
    interface ReadTimeouts {
        void set(Duration d) throws IOException;

        ReadTimeouts NONE = d -> { };
    }

    public ColoSecondarySession(ProtectedVm vm, BackupStore store, EpochListener listener) {
        this(vm, store, listener, DiskEpochs.NONE);
    }

    /** A session whose epochs also commit the VM's replicated disks. */
    public ColoSecondarySession(ProtectedVm vm, BackupStore store, EpochListener listener, DiskEpochs disks) {
        this(vm, store, listener, disks, new CommitGate(vm.name()));
    }

    /**
     * A session that commits through {@code gate}: a failover seals the gate before it reads the
     * store, and the session's later commits are refused (see {@link CommitGate}).
     */
    public ColoSecondarySession(ProtectedVm vm, BackupStore store, EpochListener listener, DiskEpochs disks, CommitGate gate) {
        this.vm = vm;
        this.store = store;
        this.listener = listener;
        this.disks = disks;
        this.gate = gate;
    }

    /** The last committed epoch (-1 before the initial stream is committed). */
    public long lastCommittedEpoch() {
        return epoch - 1;
    }

    /**
     * Runs the session on an accepted connection until the primary closes it between checkpoints
     * (normal end: failover, lost heartbeat, primary gone) or something fails.
     *
     * @throws ColoSessionException naming the VM, epoch and step; the store keeps its last commit
     */
    public void run(Socket socket) throws ColoSessionException {
        try {
            socket.setTcpNoDelay(true);
            socket.setSoTimeout((int) vm.transferTimeout().toMillis());
        } catch (SocketException e) {
            throw fail(e);
        }
        InputStream in;
        OutputStream out;
        try {
            in = new QuickAckInputStream(socket.getInputStream(), socket);
            out = socket.getOutputStream();
        } catch (IOException e) {
            throw fail(e);
        }
        run(in, out, d -> socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, d.toMillis())));
    }

    /** Runs the session over a pair of streams (recorded bytes in tests). */
    public void run(InputStream in, OutputStream out) throws ColoSessionException {
        run(in, out, ReadTimeouts.NONE);
    }

    private void run(InputStream rawIn, OutputStream out, ReadTimeouts timeouts) throws ColoSessionException {
        StreamInput in = new StreamInput(rawIn);
        MigrationStreamReader reader = new MigrationStreamReader(in);
        try {
            epoch = 0;
            receiveInitial(reader, out);
            // Two staging areas: the store may still be applying the last epoch's pages from one
            // while the next checkpoint arrives into the other.
            EpochStaging[] staging = {new EpochStaging(reader.ram().pageSize()), new EpochStaging(reader.ram().pageSize())};
            while (true) {
                epoch++;
                step = "waiting for CHECKPOINT_REQUEST";
                timeouts.set(vm.idleTimeout());
                if (in.atEnd()) {
                    log.info("vm={} epoch={} event=primary-closed", vm.name(), epoch - 1);
                    listener.sessionEnded(epoch - 1, null);
                    return;
                }
                timeouts.set(vm.transferTimeout());
                receiveCheckpoint(reader, out, staging[(int) (epoch & 1)]);
            }
        } catch (IOException | RuntimeException e) {
            ColoSessionException f = fail(e);
            listener.sessionEnded(epoch - 1, f);
            throw f;
        } finally {
            disks.sessionEnded();
        }
    }

    private ColoSessionException fail(Throwable e) {
        if (e instanceof ColoSessionException c) {
            return c;
        }
        return new ColoSessionException(vm.name(), epoch, step, e);
    }

    // ------------------------------------------------------------------------------------------ epoch 0

    private void receiveInitial(MigrationStreamReader reader, OutputStream out) throws IOException {
        StreamInput in = reader.input();
        step = "reading the stream header";
        reader.readHeader();
        long t0 = System.nanoTime();
        InitialSink sink = new InitialSink(reader);
        reader.setRamSink(sink);
        ByteArrayOutputStream devices = new ByteArrayOutputStream(64 * 1024);
        boolean coloEnabled = false;
        StreamItem.RamSection ramStart = null;
        String vmdesc = null;
        step = "reading the initial stream";
        while (vmdesc == null) {
            StreamItem item = reader.next();
            if (item instanceof StreamItem.Configuration c) {
                if (vm.machineType() != null && !vm.machineType().equals(c.machineType())) {
                    throw new StreamFormatException(in.offset(), "machine type " + vm.machineType(), c.machineType());
                }
                sink.machineType = c.machineType();
            } else if (item instanceof StreamItem.Command c) {
                switch (c.command()) {
                    case ENABLE_COLO -> coloEnabled = true;
                    case SWITCHOVER_START, OPEN_RETURN_PATH, PING -> { }
                    default -> throw new StreamFormatException(in.offset(), "a command of a COLO primary's stream",
                            c.command().toString());
                }
            } else if (item instanceof StreamItem.RamSection r) {
                if (r.type() == StreamTags.SECTION_START) {
                    ramStart = r;
                }
            } else if (item instanceof StreamItem.DeviceSection d) {
                if (d.type() != StreamTags.SECTION_FULL) {
                    throw new StreamFormatException(in.offset(), "only RAM as an iterable section",
                            StreamTags.typeName(d.type()) + " of '" + d.idstr() + "' (unsupported iterable)");
                }
                devices.writeBytes(d.raw());
            } else if (item instanceof StreamItem.EndOfState) {
                StreamItem next = reader.next();
                if (!(next instanceof StreamItem.VmDescription v)) {
                    throw new StreamFormatException(in.offset(), "the vmdesc after the initial state's EOF", describe(next));
                }
                vmdesc = v.json();
            } else {
                throw new StreamFormatException(in.offset(), "a section", "a vmdesc before EOF");
            }
        }
        if (!coloEnabled) {
            throw new StreamFormatException(in.offset(), "ENABLE_COLO in the initial stream (x-colo capability on the primary)",
                    "a plain migration stream");
        }
        if (ramStart == null || sink.load == null) {
            throw new StreamFormatException(in.offset(), "a RAM section with the block list", "none");
        }
        devices.write(StreamTags.EOF);
        long t1 = System.nanoTime();
        step = "committing the initial state";
        StreamItem.RamSection ram = ramStart;
        String desc = vmdesc;
        gate.commit(0, () -> {
            store.commitInitial(sink.load, ram.sectionId(), ram.instanceId(), ram.version(), devices.toByteArray(), desc);
            step = "starting disk epochs";
            disks.initialStateCommitted();
        });
        long t2 = System.nanoTime();
        step = "sending CHECKPOINT_READY";
        ColoMessageCodec.write(out, ColoMessage.CHECKPOINT_READY);
        log.info("vm={} epoch=0 event=initial-committed bytes={} pages={} device={} receive_ms={} commit_ms={}",
                vm.name(), in.offset(), sink.load.pages(), devices.size(), (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000);
        listener.epochCommitted(new EpochMetrics(0, (int) sink.dataPages, (int) sink.filledPages, in.offset(), devices.size(),
                t1 - t0, t2 - t1, 0, t2 - t1, 0));
    }

    /** Creates the store's memory files when the block list arrives, then writes pages into them. */
    private final class InitialSink implements RamRecordSink {
        private final MigrationStreamReader reader;
        String machineType;
        BackupStore.InitialLoad load;
        long dataPages;
        long filledPages;

        InitialSink(MigrationStreamReader reader) {
            this.reader = reader;
        }

        @Override
        public void blockList(List<RamBlock> blocks) throws IOException {
            if (machineType == null) {
                throw new StreamFormatException(reader.input().offset(), "the configuration section before RAM", "RAM");
            }
            if (vm.mainRamBytes() > 0) {
                RamBlock main = blocks.stream().filter(b -> b.name().equals(StoreMetadata.MAIN_BLOCK)).findFirst().orElse(null);
                if (main == null || main.usedLength() != vm.mainRamBytes()) {
                    throw new StreamFormatException(reader.input().offset(), "block " + StoreMetadata.MAIN_BLOCK + " of "
                            + vm.mainRamBytes() + " bytes", blocks.toString());
                }
            }
            load = store.beginInitialLoad(machineType, reader.ram().pageSize(), blocks);
        }

        @Override
        public void page(int block, long offset, byte[] data, int off) throws IOException {
            load.page(block, offset, data, off);
            dataPages++;
        }

        @Override
        public void filledPage(int block, long offset, int fill) throws IOException {
            load.filledPage(block, offset, fill);
            filledPages++;
        }
    }

    // ------------------------------------------------------------------------------------------ epochs ≥ 1

    private void receiveCheckpoint(MigrationStreamReader reader, OutputStream out, EpochStaging staging) throws IOException {
        StreamInput in = reader.input();
        long startOffset = in.offset();
        step = "reading CHECKPOINT_REQUEST";
        ColoMessageCodec.expect(in, ColoMessage.CHECKPOINT_REQUEST);
        long t0 = System.nanoTime();
        step = "sending CHECKPOINT_REPLY";
        ColoMessageCodec.write(out, ColoMessage.CHECKPOINT_REPLY);
        step = "reading VMSTATE_SEND";
        ColoMessageCodec.expect(in, ColoMessage.VMSTATE_SEND);
        // Each disk closed this epoch at the FLUSH of the VM stop, on its own connection (DiskEpochs).
        disks.epochClosed(epoch);

        step = "reading the checkpoint's RAM";
        staging.reset();
        reader.setRamSink(staging);
        boolean sawRam = false;
        while (true) {
            StreamItem item = reader.next();
            if (item instanceof StreamItem.EndOfState) {
                break;
            }
            if (item instanceof StreamItem.Command c && c.command() == MigrationCommand.SWITCHOVER_START) {
                continue;
            }
            if (item instanceof StreamItem.RamSection r
                    && (r.type() == StreamTags.SECTION_END || r.type() == StreamTags.SECTION_PART)) {
                sawRam = true;
                continue;
            }
            throw new StreamFormatException(in.offset(), "the RAM END section, SWITCHOVER_START or EOF of a checkpoint",
                    describe(item));
        }
        if (!sawRam) {
            throw new StreamFormatException(in.offset(), "a RAM section before the checkpoint's EOF", "EOF");
        }

        step = "reading the device state";
        long sizeAt = in.offset();
        long size = ColoMessageCodec.readSize(in);
        if (size <= 0 || size > MAX_DEVICE_STATE_BYTES) {
            throw new StreamFormatException(sizeAt, "a device state of 1-" + MAX_DEVICE_STATE_BYTES + " bytes", Long.toString(size));
        }
        byte[] deviceState = in.bytes((int) size, "device state");
        long t1 = System.nanoTime();
        checkDeviceState(deviceState, sizeAt + 12);
        listener.checkpointReceived(epoch);

        step = "sending VMSTATE_RECEIVED";
        ColoMessageCodec.write(out, ColoMessage.VMSTATE_RECEIVED);
        step = "committing";
        BackupStore.CommitStats[] committed = new BackupStore.CommitStats[1];
        long e = epoch;
        gate.commit(e, () -> {
            step = "checking the disks' epoch";
            disks.checkEpoch(e);
            step = "committing";
            // Durable at the commit point; the pages reach the memory files while the primary runs.
            committed[0] = store.commitAndApplyLater(e, staging, deviceState);
            step = "committing the disks";
            disks.commitEpoch(e);
        });
        BackupStore.CommitStats stats = committed[0];
        long t2 = System.nanoTime();
        listener.beforeRelease(epoch);
        step = "sending VMSTATE_LOADED";
        ColoMessageCodec.write(out, ColoMessage.VMSTATE_LOADED);
        long t3 = System.nanoTime();
        listener.epochCommitted(new EpochMetrics(epoch, stats.dataPages(), stats.filledPages(), in.offset() - startOffset,
                deviceState.length, t1 - t0, t2 - t1, t3 - t0, stats.logNanos(), stats.applyNanos()));
    }

    /** The device state must be FULL sections followed by EOF and nothing else (QEMU's qemu_save_device_state). */
    private static void checkDeviceState(byte[] blob, long streamOffset) throws IOException {
        MigrationStreamReader r = MigrationStreamReader.headless(new StreamInput(new ByteArrayInputStream(blob)),
                new RamSectionParser(4096));
        int sections = 0;
        while (true) {
            StreamItem item;
            try {
                item = r.next();
            } catch (StreamFormatException e) {
                throw new StreamFormatException(streamOffset + e.offset(), "a valid device state (" + e.getMessage() + ")",
                        "an invalid one");
            }
            if (item instanceof StreamItem.EndOfState) {
                break;
            }
            if (!(item instanceof StreamItem.DeviceSection d) || d.type() != StreamTags.SECTION_FULL) {
                throw new StreamFormatException(streamOffset + r.input().offset(), "a FULL device section or EOF", describe(item));
            }
            sections++;
        }
        if (!r.input().atEnd()) {
            throw new StreamFormatException(streamOffset + r.input().offset(), "the end of the device state after EOF", "more bytes");
        }
        if (sections == 0) {
            throw new StreamFormatException(streamOffset, "at least one device section", "none");
        }
    }

    private static String describe(StreamItem item) {
        if (item instanceof StreamItem.DeviceSection d) {
            return StreamTags.typeName(d.type()) + " of '" + d.idstr() + "'";
        }
        if (item instanceof StreamItem.RamSection r) {
            return "RAM " + StreamTags.typeName(r.type());
        }
        if (item instanceof StreamItem.Command c) {
            return "command " + c.command();
        }
        return item.getClass().getSimpleName();
    }
}

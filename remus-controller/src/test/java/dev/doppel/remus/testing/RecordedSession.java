package dev.doppel.remus.testing;

import dev.doppel.remus.colo.ColoMessage;
import dev.doppel.remus.colo.ColoMessageCodec;
import dev.doppel.remus.stream.MigrationStreamReader;
import dev.doppel.remus.stream.RamBlock;
import dev.doppel.remus.stream.RamRecordSink;
import dev.doppel.remus.stream.StreamInput;
import dev.doppel.remus.stream.StreamItem;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An index of a recorded COLO session (primary → backup bytes), built with the production reader:
 * where each record starts and ends, which pages each epoch carries, and the device state of each
 * epoch. Tests use it to cut and patch the recording at exact record boundaries and to know what
 * the store must contain.
 */
public final class RecordedSession {
    private static volatile RecordedSession coloSession;

    /** The recorded COLO primary → backup session, parsed once per test JVM (several classes replay it). */
    public static RecordedSession coloPrimaryToBackup() throws java.io.IOException {
        RecordedSession r = coloSession;
        if (r == null) {
            r = parse(RecordedStreams.load(RecordedStreams.COLO_P2B));
            coloSession = r;
        }
        return r;
    }

    /** A page as the recording carries it: data, or a fill byte. */
    public record Page(int block, long offset, byte[] data, int fill) {
    }

    /** One checkpoint of the recording. */
    public record Checkpoint(int epoch, long requestAt, long sendAt, List<Long> boundaries, long ramSectionAt,
                             long eofAt, long sizeAt, long deviceStateAt, long end, List<Page> pages, byte[] deviceState) {
    }

    public final byte[] bytes;
    public List<RamBlock> blocks;
    public String machineType;
    /** Offsets where a top-level record of the initial stream starts (and its end). */
    public final List<Long> initialBoundaries = new ArrayList<>();
    public long initialEnd;
    public final List<Page> initialPages = new ArrayList<>();
    public final List<Checkpoint> checkpoints = new ArrayList<>();
    public final List<String> deviceSections = new ArrayList<>();
    public String vmdesc;

    private RecordedSession(byte[] bytes) {
        this.bytes = bytes;
    }

    public static RecordedSession parse(byte[] p2b) throws IOException {
        RecordedSession s = new RecordedSession(p2b);
        StreamInput in = new StreamInput(new ByteArrayInputStream(p2b));
        MigrationStreamReader r = new MigrationStreamReader(in);
        List<Page> target = new ArrayList<>();
        List<Long> ramBoundaries = new ArrayList<>();
        r.setRamSink(new RamRecordSink() {
            @Override
            public void blockList(List<RamBlock> b) {
                s.blocks = b;
            }

            @Override
            public void page(int block, long offset, byte[] data, int off) {
                target.add(new Page(block, offset, Arrays.copyOfRange(data, off, off + 4096), -1));
                ramBoundaries.add(in.offset());
            }

            @Override
            public void filledPage(int block, long offset, int fill) {
                target.add(new Page(block, offset, null, fill));
                ramBoundaries.add(in.offset());
            }
        });
        r.readHeader();
        while (true) {
            s.initialBoundaries.add(in.offset());
            StreamItem item = r.next();
            if (item instanceof StreamItem.Configuration c) {
                s.machineType = c.machineType();
            } else if (item instanceof StreamItem.DeviceSection d) {
                s.deviceSections.add(d.idstr());
            } else if (item instanceof StreamItem.VmDescription v) {
                s.vmdesc = v.json();
                break;
            }
        }
        s.initialEnd = in.offset();
        s.initialPages.addAll(target);
        int epoch = 1;
        while (!in.atEnd()) {
            target.clear();
            ramBoundaries.clear();
            List<Long> boundaries = new ArrayList<>();
            long requestAt = in.offset();
            ColoMessageCodec.expect(in, ColoMessage.CHECKPOINT_REQUEST);
            long sendAt = in.offset();
            ColoMessageCodec.expect(in, ColoMessage.VMSTATE_SEND);
            long ramAt = -1;
            long eofAt;
            while (true) {
                long at = in.offset();
                boundaries.add(at);
                StreamItem item = r.next();
                if (item instanceof StreamItem.RamSection) {
                    ramAt = at;
                }
                if (item instanceof StreamItem.EndOfState) {
                    eofAt = at;
                    break;
                }
            }
            long sizeAt = in.offset();
            long size = ColoMessageCodec.readSize(in);
            long devAt = in.offset();
            byte[] dev = in.bytes((int) size, "device state");
            boundaries.addAll(ramBoundaries);
            boundaries.add(sizeAt);
            boundaries.add(devAt);
            boundaries.sort(Long::compare);
            s.checkpoints.add(new Checkpoint(epoch++, requestAt, sendAt, List.copyOf(boundaries), ramAt, eofAt, sizeAt, devAt,
                    in.offset(), List.copyOf(target), dev));
        }
        return s;
    }

    /** The recording cut after {@code n} checkpoints (a session that the primary closed there). */
    public byte[] upToCheckpoint(int n) {
        long end = n == 0 ? initialEnd : checkpoints.get(n - 1).end();
        return Arrays.copyOf(bytes, (int) end);
    }

    /** Expected content of every page the recording touches, after {@code epochs} checkpoints. */
    public Map<String, Page> pagesAfter(int epochs) {
        Map<String, Page> m = new LinkedHashMap<>();
        for (Page p : initialPages) {
            m.put(p.block() + ":" + p.offset(), p);
        }
        for (int i = 0; i < epochs; i++) {
            for (Page p : checkpoints.get(i).pages()) {
                m.put(p.block() + ":" + p.offset(), p);
            }
        }
        return m;
    }

    /**
     * The pages that carry data somewhere in the recording, plus every page a checkpoint touches:
     * what a replay changes beyond the zero pages of the initial stream (cheap enough to hash per commit).
     */
    public List<long[]> dataAndCheckpointPages() {
        Map<String, long[]> m = new LinkedHashMap<>();
        for (Page p : initialPages) {
            if (p.data() != null) {
                m.put(p.block() + ":" + p.offset(), new long[] {p.block(), p.offset()});
            }
        }
        for (Checkpoint c : checkpoints) {
            for (Page p : c.pages()) {
                m.put(p.block() + ":" + p.offset(), new long[] {p.block(), p.offset()});
            }
        }
        return List.copyOf(m.values());
    }

    /** Every page the whole recording touches (for digests that must see any change a replay could make). */
    public List<long[]> touchedPages() {
        Map<String, long[]> m = new LinkedHashMap<>();
        for (Map.Entry<String, Page> e : pagesAfter(checkpoints.size()).entrySet()) {
            m.put(e.getKey(), new long[] {e.getValue().block(), e.getValue().offset()});
        }
        return List.copyOf(m.values());
    }
}

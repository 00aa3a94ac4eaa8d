package dev.doppel.remus.nbd;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.colo.DiskEpochs;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backup side of one VM's replicated disks: per disk a raw image in the VM's store directory, an
 * {@link EpochDisk} holding each epoch's writes, and an {@link NbdServer} the primary's mirror job
 * writes to. The COLO session drives the epochs ({@link DiskEpochs}); the images always hold the last
 * committed epoch, so failover starts the VM on them as they are.
 *
 * <p>A disk whose writer went away during an epoch may have missed writes of that epoch (the
 * primary's mirror job aborts on a failed target write while the guest's own write succeeds), so
 * such an epoch is refused: memory and disks stay at the previous epoch, which is consistent. A disk
 * that failed to apply a committed epoch is <em>stale</em> for good, and the backup must not fail
 * over to it ({@link #staleReason()}).
 */
public final class ReplicatedDisks implements DiskEpochs, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ReplicatedDisks.class);

    /** A disk the primary asks to replicate: its node name (also the NBD export name) and size. */
    public record Request(String node, long sizeBytes) {
        public Request {
            if (!node.matches("[A-Za-z][A-Za-z0-9_-]{0,31}")) {
                throw new IllegalArgumentException("bad disk node name '" + node + "'");
            }
            if (sizeBytes <= 0 || sizeBytes % EpochDisk.BLOCK != 0) {
                throw new IllegalArgumentException("disk " + node + ": size " + sizeBytes + " is not a positive multiple of 4096");
            }
        }
    }

    /** One replicated disk. */
    public record Disk(String node, Path image, EpochDisk epochs, NbdServer server) {
    }

    private final String vm;
    private final List<Disk> disks;
    private final long[] endedAtEpochStart;
    private volatile String stale;
    private volatile boolean epochsStarted;

    private ReplicatedDisks(String vm, List<Disk> disks) {
        this.vm = vm;
        this.disks = disks;
        this.endedAtEpochStart = new long[disks.size()];
    }

    /**
     * Creates (or truncates to size) a raw image per requested disk under {@code directory} and
     * exports each over NBD on {@code bindAddress} (a free port each), in pass-through until the
     * initial state is committed.
     */
    public static ReplicatedDisks create(String vm, Path directory, List<Request> requests, InetAddress bindAddress,
                                         HostSockets host, dev.doppel.tls.PeerTls tls) throws IOException {
        Files.createDirectories(directory);
        List<Disk> disks = new ArrayList<>();
        try {
            for (Request r : requests) {
                Path image = directory.resolve("disk-" + r.node() + ".raw");
                // Sparse: the initial synchronisation fills it; zero regions cost nothing.
                try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
                    f.setLength(r.sizeBytes());
                }
                EpochDisk d = EpochDisk.openRaw(image, true);
                try {
                    NbdServer s = NbdServer.start(r.node(), d, new InetSocketAddress(bindAddress, 0), host, tls);
                    disks.add(new Disk(r.node(), image, d, s));
                } catch (IOException | RuntimeException e) {
                    d.close();
                    throw e;
                }
            }
        } catch (IOException | RuntimeException e) {
            new ReplicatedDisks(vm, disks).close();
            throw new IOException("VM '" + vm + "': cannot set up the replicated disks: " + e.getMessage(), e);
        }
        return new ReplicatedDisks(vm, List.copyOf(disks));
    }

    public List<Disk> disks() {
        return disks;
    }

    /** Node name → NBD port, for the primary. */
    public Map<String, Integer> ports() {
        Map<String, Integer> m = new LinkedHashMap<>();
        disks.forEach(d -> m.put(d.node(), d.server().address().getPort()));
        return m;
    }

    /** Node name → image holding the last committed epoch, for failover. */
    public Map<String, Path> images() {
        Map<String, Path> m = new LinkedHashMap<>();
        disks.forEach(d -> m.put(d.node(), d.image()));
        return m;
    }

    /** Why the images must not be used for failover, or null if they hold the last committed epoch. */
    public String staleReason() {
        return stale;
    }

    @Override
    public void initialStateCommitted() throws IOException {
        for (int i = 0; i < disks.size(); i++) {
            Disk d = disks.get(i);
            if (d.server().connectionCount() == 0) {
                throw new IOException("VM '" + vm + "': disk " + d.node()
                        + " has no replication connection at the initial commit; the primary is not mirroring it");
            }
            d.epochs().startEpochs();
            endedAtEpochStart[i] = d.server().connectionsEnded();
        }
        epochsStarted = true;
        log.info("vm={} epoch=0 event=disk-epochs-started disks={}", vm, ports().keySet());
    }

    /** Nothing to do: each disk's epoch closed at the FLUSH of the checkpoint's VM stop ({@link EpochDisk#boundary()}). */
    @Override
    public void epochClosed(long epoch) {
    }

    @Override
    public void checkEpoch(long epoch) throws IOException {
        for (int i = 0; i < disks.size(); i++) {
            Disk d = disks.get(i);
            if (d.server().connectionsEnded() != endedAtEpochStart[i] || d.server().connectionCount() == 0) {
                throw new IOException("VM '" + vm + "' epoch " + epoch + ": the replication connection of disk "
                        + d.node() + " ended during the epoch, so some of its writes may be missing; "
                        + "the epoch is not committed");
            }
            int boundaries = d.epochs().boundaries();
            if (boundaries > 1) {
                // A stop other than the checkpoint's (an operator's stop/cont, a savevm) flushed too:
                // which of the held writes are this epoch's is no longer known.
                throw new IOException("VM '" + vm + "' epoch " + epoch + ": disk " + d.node() + " saw " + boundaries
                        + " flushes since the last commit (one per checkpoint stop is expected), so this epoch's writes"
                        + " cannot be told from the next one's; the epoch is not committed");
            }
        }
    }

    @Override
    public void commitEpoch(long epoch) throws IOException {
        for (Disk d : disks) {
            try {
                d.epochs().commitClosed();
            } catch (IOException | RuntimeException e) {
                stale = "disk " + d.node() + " failed to apply epoch " + epoch + ": " + e.getMessage();
                log.error("vm={} epoch={} event=disk-stale cause=\"{}\"", vm, epoch, stale);
                throw new IOException("VM '" + vm + "' epoch " + epoch + ": " + stale, e);
            }
        }
    }

    @Override
    public void sessionEnded() {
        for (Disk d : disks) {
            d.epochs().discard();
        }
        if (!epochsStarted && !disks.isEmpty()) {
            // The initial synchronisation never completed: the images are a partial copy.
            stale = "the initial synchronisation of the disks did not complete";
        }
    }

    /** Stops serving: no writer can change the images any more (failover, retirement). */
    public void stopServing() {
        for (Disk d : disks) {
            try {
                d.server().close();
            } catch (IOException e) {
                log.debug("vm={} closing NBD export {}: {}", vm, d.node(), e.toString());
            }
            d.epochs().discard();
        }
    }

    @Override
    public void close() {
        stopServing();
        for (Disk d : disks) {
            try {
                d.epochs().close();
            } catch (IOException e) {
                log.debug("vm={} closing disk {}: {}", vm, d.node(), e.toString());
            }
        }
    }
}

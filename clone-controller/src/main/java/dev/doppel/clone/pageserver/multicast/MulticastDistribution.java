package dev.doppel.clone.pageserver.multicast;

import dev.doppel.clone.net.RemoteHost;
import dev.doppel.clone.pageserver.PageServer;
import dev.doppel.clone.pageserver.PageServerOptions;
import dev.doppel.clone.pageserver.SnapshotPages;
import dev.doppel.vm.Closeables;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One fork's multicast distribution: the segment, the origin, and per clone host a page cache and a
 * page server that serves that host's clones from it. What crosses the network between the origin
 * and the hosts: one multicast datagram per page (plus repairs), the small requests, and the fork
 * descriptor once per host ({@link #bytesOnWire()}).
 */
public final class MulticastDistribution implements AutoCloseable {
    /** The name prefix of the hosts' page cache files. */
    public static final String CACHE_PREFIX = "doppel-pages-";
    private static final Logger log = LoggerFactory.getLogger(MulticastDistribution.class);

    private final String fork;
    private final long descriptorBytes;
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final Map<RemoteHost, PageServer> servers = new LinkedHashMap<>();
    private final Map<RemoteHost, HostPageCache> caches = new LinkedHashMap<>();
    private MulticastSegment segment;
    private PageMulticaster origin;

    private MulticastDistribution(String fork, long descriptorBytes) {
        this.fork = fork;
        this.descriptorBytes = descriptorBytes;
    }

    /**
     * Sets up distribution of {@code snapshot} to {@code hosts}; cache files go to {@code cacheDir}
     * (tmpfs: they hold what the hosts' clones touched).
     */
    public static MulticastDistribution start(String fork, SnapshotPages snapshot, List<RemoteHost> hosts, Path cacheDir,
                                              long descriptorBytes, PageServerOptions options) throws IOException {
        MulticastDistribution d = new MulticastDistribution(fork, descriptorBytes);
        try {
            d.segment = MulticastSegment.create(hosts);
            d.origin = PageMulticaster.start(fork, snapshot, d.segment);
            long ramBytes = snapshot.blockMap().get(snapshot.ramBlock()).usedLength();
            for (RemoteHost h : hosts) {
                HostPageCache cache = HostPageCache.start(fork, h, cacheDir.resolve(CACHE_PREFIX + fork + "-" + h.name()),
                        ramBytes, d.segment, d.origin.requestAddress());
                d.caches.put(h, cache);
                // The host's own page server reads the descriptor it received once and the cache.
                SnapshotPages local = new SnapshotPages(snapshot.descriptor(), cache.file(), snapshot.ramBlock(), cache);
                d.owned.add(local);
                d.servers.put(h, new PageServer(fork + "@" + h.name(), local, options, h.sockets()));
            }
        } catch (IOException | RuntimeException e) {
            d.close();
            throw e;
        }
        log.info("fork={} event=multicast-distribution hosts={} group={}", fork, hosts.size(), d.segment.group());
        return d;
    }

    /** The page server on {@code host} that serves its clones. */
    public PageServer serverFor(RemoteHost host) {
        PageServer s = servers.get(host);
        if (s == null) {
            throw new IllegalArgumentException("fork " + fork + ": no multicast page server on " + host.name());
        }
        return s;
    }

    /** Bytes between the origin and the hosts: page datagrams (each once), requests, one descriptor per host. */
    public long bytesOnWire() {
        long requests = caches.values().stream().mapToLong(HostPageCache::requestsSent).sum() * PageDatagrams.REQUEST_BYTES;
        return origin.bytesSent() + requests + descriptorBytes * servers.size();
    }

    public long datagramsSent() {
        return origin.datagramsSent();
    }

    @Override
    public void close() {
        List<AutoCloseable> all = new ArrayList<>(servers.values());
        all.addAll(caches.values());
        all.addAll(owned);
        all.add(origin);
        all.add(segment);
        Closeables.closeAll(log, "fork=" + fork, all);
    }
}

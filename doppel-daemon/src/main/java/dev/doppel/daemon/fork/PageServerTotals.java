package dev.doppel.daemon.fork;

import dev.doppel.clone.RemoteFork;
import dev.doppel.clone.pageserver.SessionStats;
import java.util.ArrayList;
import java.util.List;

/**
 * What the page servers of the daemon's remote forks did, summed over every fork since the daemon
 * started. The sums only grow (Prometheus counters): a closed fork's figures are folded into the
 * retired part and the fork is let go.
 */
public final class PageServerTotals {
    /** One set of figures (of a fork, or the retired sum). */
    public record Figures(long requests, long pagesSent, long cloneBytes, long networkBytes, long multicastSavedBytes) {
        static final Figures NONE = new Figures(0, 0, 0, 0, 0);

        Figures plus(Figures o) {
            return new Figures(requests + o.requests, pagesSent + o.pagesSent, cloneBytes + o.cloneBytes,
                    networkBytes + o.networkBytes, multicastSavedBytes + o.multicastSavedBytes);
        }
    }

    private final List<RemoteFork> live = new ArrayList<>();
    private Figures retired = Figures.NONE;

    /** A remote fork to count (its figures are read on every scrape while it runs). */
    public synchronized void add(RemoteFork fork) {
        live.add(fork);
    }

    /** The sums now. */
    public synchronized Figures now() {
        Figures sum = retired;
        for (RemoteFork f : List.copyOf(live)) {
            Figures of = of(f);
            if (f.isClosed()) {
                retired = retired.plus(of);
                live.remove(f);
            }
            sum = sum.plus(of);
        }
        return sum;
    }

    /**
     * One fork's figures. Clone bytes are what the clones' migration streams carried (what unicast from
     * this host sends); network bytes what crossed the network from this host: with multicast each page
     * datagram once plus the hosts' requests and descriptors, without it the streams themselves.
     */
    private static Figures of(RemoteFork f) {
        long requests = 0, pages = 0, streams = 0;
        for (String c : f.clones()) {
            SessionStats s = f.stats(c);
            requests += s.requests();
            pages += s.pagesSent();
            streams += s.bytesOnWire();
        }
        long network = f.multicast() == null ? streams : f.multicast().bytesOnWire();
        return new Figures(requests, pages, streams, network, f.multicast() == null ? 0 : Math.max(0, streams - network));
    }
}

package dev.doppel.remus.guard;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.remus.fencing.FencingException;
import dev.doppel.remus.fencing.PrimaryFence;
import dev.doppel.remus.fencing.ProcessDeath;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The controller's side of a VM's guard: the fencing steps of the checkpoint loop, asked of the guard
 * process that holds the lease. One short connection per request (a handful per protection), so a
 * guard needs no session state for its controller and a controller may come and go.
 *
 * <p>When the guard cannot be asked (it is gone), {@link #goUnprotected} answers false: output never
 * leaves without a commit on an unconfirmed record. A gone guard has also taken its QEMU with it.
 */
public final class GuardClient implements PrimaryFence {
    private static final Logger log = LoggerFactory.getLogger(GuardClient.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String vm;
    private final Path socket;
    private final ProcessHandle qemu;
    private final long qemuPid;
    private boolean reattached;
    private volatile String fencedBecause;
    private volatile long token;

    GuardClient(String vm, Path socket, long qemuPid) {
        this.vm = vm;
        this.socket = socket;
        this.qemuPid = qemuPid;
        this.qemu = ProcessHandle.of(qemuPid).orElse(null);
    }

    GuardClient reattached(boolean r) {
        this.reattached = r;
        return this;
    }

    /** Whether this controller found the guard already running (it crashed or was restarted before). */
    public boolean reattached() {
        return reattached;
    }

    public GuardReply status() throws IOException {
        return ask(GuardRequest.of(GuardRequest.STATUS));
    }

    @Override
    public long token() {
        return token;
    }

    @Override
    public void protectWith(String store) throws FencingException {
        GuardReply r;
        try {
            r = ask(new GuardRequest(GuardRequest.PROTECT_WITH, store, null));
        } catch (IOException e) {
            throw new FencingException(vm, "the guard did not answer: " + e.getMessage(), e);
        }
        if (!r.ok()) {
            throw new FencingException(vm, r.error());
        }
    }

    @Override
    public boolean goUnprotected(String why) {
        if (qemu == null || ProcessDeath.gone(qemu)) {
            return true;   // a dead QEMU holds no output: nothing can leave
        }
        try {
            return ask(new GuardRequest(GuardRequest.GO_UNPROTECTED, null, why)).ok();
        } catch (IOException e) {
            fencedBecause = "the guard is gone (" + e.getMessage() + "); it took the QEMU with it";
            log.error("vm={} event=guard-unreachable cause=\"{}\" action=\"held output is not released\"", vm, e.getMessage());
            return false;
        }
    }

    @Override
    public String fencedBecause() {
        return fencedBecause;
    }

    @Override
    public boolean confirmDead(Duration wait) {
        return qemu == null || ProcessDeath.await(qemu, wait);
    }

    /**
     * Protection is over. With the QEMU alive (the operator stopped protection) the guard gives the
     * lease back and ends, leaving the VM running; with the QEMU gone it does that by itself.
     */
    @Override
    public void close() {
        if (qemu == null || ProcessDeath.gone(qemu) || fencedBecause != null) {
            return;
        }
        try {
            ask(GuardRequest.of(GuardRequest.RELEASE));
        } catch (IOException e) {
            log.warn("vm={} event=guard-release-failed cause=\"{}\"", vm, e.getMessage());
        }
    }

    /**
     * The VM's manager says its owner stopped it (libvirt: {@code stopped/destroyed}, {@code stopped/shutdown}):
     * the guard records that no backup may take it over, then gives the lease back. True once recorded; false
     * when the guard could not record it (or is gone): a backup may then fail the VM over, as after a crash.
     */
    public boolean stoppedByOwner(String why) {
        try {
            GuardReply r = ask(new GuardRequest(GuardRequest.STOPPED_BY_OWNER, null, why));
            if (!r.ok()) {
                log.error("vm={} event=stopped-by-owner-unrecorded cause=\"{}\" error=\"{}\"", vm, why, r.error());
            }
            return r.ok();
        } catch (IOException e) {
            log.error("vm={} event=stopped-by-owner-unrecorded cause=\"{}\" error=\"guard unreachable: {}\"", vm, why, e.getMessage());
            return false;
        }
    }

    /** The VM's manager says its QEMU failed (not an owner's stop): the guard gives the lease back at once. */
    public void crashed(String why) {
        try {
            ask(new GuardRequest(GuardRequest.CRASHED, null, why));
        } catch (IOException e) {
            // The guard ended already: the lease is back (or it went with the guard's session).
            log.info("vm={} event=crash-verdict-unheard cause=\"{}\"", vm, e.getMessage());
        }
    }

    private synchronized GuardReply ask(GuardRequest request) throws IOException {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(socket));
            var out = Channels.newOutputStream(ch);
            out.write((MAPPER.writeValueAsString(request) + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            String line = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8)).readLine();
            if (line == null) {
                throw new IOException("the guard of VM '" + vm + "' closed the connection without answering " + request.op());
            }
            GuardReply r = MAPPER.readValue(line, GuardReply.class);
            token = r.token();
            if (r.fenced() != null) {
                fencedBecause = r.fenced();
            }
            return r;
        }
    }

    @Override
    public String toString() {
        return "guard of VM '" + vm + "' at " + socket + " (QEMU pid " + qemuPid + ")";
    }
}

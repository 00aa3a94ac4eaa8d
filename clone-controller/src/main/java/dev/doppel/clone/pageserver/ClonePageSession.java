package dev.doppel.clone.pageserver;

import dev.doppel.clone.pageserver.wire.ForkDescriptor;
import dev.doppel.clone.pageserver.wire.PostcopySourceWriter;
import dev.doppel.clone.pageserver.wire.RamBlockInfo;
import dev.doppel.clone.pageserver.wire.ReturnPathMessage;
import dev.doppel.clone.pageserver.wire.ReturnPathProtocolException;
import dev.doppel.clone.pageserver.wire.ReturnPathReader;
import dev.doppel.clone.pageserver.wire.WireFormat;
import java.io.BufferedOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.Socket;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One clone's postcopy connection: the page server plays QEMU's migration source for a destination
 * QEMU that was started with {@code -incoming} and the {@code postcopy-ram} capability.
 *
 * <p>Two threads. The <em>sender</em> owns the socket's output, the stream writer and the sent
 * bitmaps (so a page can never be written twice: QEMU's destination exits when UFFDIO_COPY finds a
 * page already placed). The <em>return-path reader</em> parses what the destination sends, checks
 * page requests against the block list and queues them; requests start while the destination is
 * still loading the device state (it touches guest pages), so both threads run from the start.
 *
 * <p>Failure isolation: anything wrong on this connection — a bad request, garbage on the return
 * path, a write error — ends this session only; the page server and its other sessions go on.
 */
public final class ClonePageSession {
    private static final Logger log = LoggerFactory.getLogger(ClonePageSession.class);

    /** Where a session is in its life. */
    public enum State { STARTING, SERVING, FINISHING, COMPLETED, DISCONNECTED, FAILED }

    private final String clone;
    private final SnapshotPages pages;
    private final PageServerOptions options;
    private final ForkDescriptor descriptor;
    private final List<RamBlockInfo> blocks;
    private final Map<String, Integer> blockIndex = new HashMap<>();
    private final BitSet[] sent;
    private final BlockingQueue<ReturnPathMessage.PageRequest> requests = new LinkedBlockingQueue<>();
    private final BlockingQueue<ReturnPathMessage> control = new LinkedBlockingQueue<>();
    private final CompletableFuture<Void> completed = new CompletableFuture<>();
    private final CompletableFuture<Void> serving = new CompletableFuture<>();
    private final AtomicLong requestCount = new AtomicLong();
    private final AtomicLong pagesRequested = new AtomicLong();
    private final AtomicLong pagesSent = new AtomicLong();
    private final AtomicLong zeroPagesSent = new AtomicLong();
    private final AtomicLong pagesPushed = new AtomicLong();
    private volatile long bytesOnWire;
    private volatile State state = State.STARTING;
    private volatile boolean finishRequested;
    private volatile boolean shutReceived;
    /** Killed, possibly while its connection was still being made (the TLS handshake takes a moment). */
    private volatile boolean killed;
    private volatile Throwable failure;
    /** What the protocol runs over: the TLS socket, or the TCP socket itself when insecure. */
    private volatile Socket socket;
    /** The TCP connection underneath: closing it cuts the session at once, whatever a writer holds. */
    private volatile Socket tcp;
    private final byte[] pageBuffer = new byte[WireFormat.PAGE_SIZE];
    /** Background push position: block, page. */
    private int pushBlock;
    private int pushPage;

    ClonePageSession(String clone, SnapshotPages pages, PageServerOptions options) {
        this.clone = clone;
        this.pages = pages;
        this.options = options;
        this.descriptor = pages.descriptor();
        this.blocks = pages.blocks();
        this.sent = new BitSet[blocks.size()];
        for (int i = 0; i < blocks.size(); i++) {
            blockIndex.put(blocks.get(i).name(), i);
            sent[i] = new BitSet(blocks.get(i).pages());
        }
    }

    public String clone() {
        return clone;
    }

    public State state() {
        return state;
    }

    /** The cause of FAILED or DISCONNECTED, else null. */
    public Throwable failure() {
        return failure;
    }

    /** Completes when the destination runs on this connection (after the setup or the resume handshake). */
    public CompletableFuture<Void> serving() {
        return serving;
    }

    /** Completes after the clean end (every page sent, EOF, SHUT 0); fails when the session fails or is cut. */
    public CompletableFuture<Void> completed() {
        return completed;
    }

    public SessionStats stats() {
        return new SessionStats(requestCount.get(), pagesRequested.get(), pagesSent.get(), zeroPagesSent.get(),
                pagesPushed.get(), bytesOnWire);
    }

    /**
     * Starts a fresh migration on a connected socket: setup, device state, then pages on request.
     * {@code stream} is {@code tcp} itself, or the TLS session layered over it.
     */
    void start(Socket tcp, Socket stream) {
        launch(tcp, stream, false);
    }

    /**
     * Resumes a destination paused in {@code postcopy-paused} after {@code migrate-recover}: asks each
     * block's received bitmap (they become this session's sent bitmaps, so pages lost in flight are
     * sent again and no received page twice), then POSTCOPY_RESUME, then serves as usual.
     */
    void resume(Socket tcp, Socket stream) {
        launch(tcp, stream, true);
    }

    /** Asks for the clean end: push every unsent non-zero page, END, EOF, wait for SHUT. */
    public CompletableFuture<Void> finish() {
        finishRequested = true;
        return completed;
    }

    /** Cuts the connection without any end (what a crashed page server looks like to the clone). */
    void kill() {
        killed = true;
        closeSocket();
    }

    private void launch(Socket tcp, Socket stream, boolean resume) {
        this.tcp = tcp;
        this.socket = stream;
        if (killed) {
            closeSocket();   // the threads below then see the cut and report it
        }
        Thread reader = new Thread(this::readReturnPath, "pagesrv-rp-" + clone);
        Thread sender = new Thread(() -> send(resume), "pagesrv-send-" + clone);
        reader.setDaemon(true);
        sender.setDaemon(true);
        reader.start();
        sender.start();
    }

    // ---- return-path reader thread ----

    private void readReturnPath() {
        try {
            ReturnPathReader rp = new ReturnPathReader(socket.getInputStream(), pages.blockMap());
            while (true) {
                ReturnPathMessage m = rp.next();
                if (m instanceof ReturnPathMessage.PageRequest r) {
                    checkRequest(r);
                    requestCount.incrementAndGet();
                    requests.add(r);
                } else if (!(m instanceof ReturnPathMessage.Ignored)) {
                    if (m instanceof ReturnPathMessage.Shut) {
                        shutReceived = true;
                    }
                    control.add(m);
                }
            }
        } catch (ReturnPathProtocolException | BadRequestException e) {
            fail("return path", e.getMessage(), e);
        } catch (EOFException e) {
            lost("the destination closed the connection", e);
        } catch (IOException e) {
            lost("return path read: " + e.getMessage(), e);
        }
    }

    /** A request outside the block list or the block is a broken (or hostile) destination. */
    private void checkRequest(ReturnPathMessage.PageRequest r) throws BadRequestException {
        Integer b = blockIndex.get(r.block());
        if (b == null) {
            throw new BadRequestException("request for unknown RAM block '" + r.block() + "' (blocks: " + blockIndex.keySet() + ")");
        }
        long size = blocks.get(b).usedLength();
        long len = r.length() & 0xffffffffL;
        if (r.offset() < 0 || r.offset() % WireFormat.PAGE_SIZE != 0 || len == 0 || len % WireFormat.PAGE_SIZE != 0
                || r.offset() + len > size) {
            throw new BadRequestException(String.format("request for bytes 0x%x+0x%x of block %s, which has 0x%x bytes"
                    + " (page-aligned, non-empty, inside the block required)", r.offset(), len, r.block(), size));
        }
    }

    private static final class BadRequestException extends Exception {
        BadRequestException(String m) {
            super(m);
        }
    }

    // ---- sender thread ----

    private void send(boolean resume) {
        String step = resume ? "resume handshake" : "setup";
        try {
            socket.setTcpNoDelay(true);
            PostcopySourceWriter w = new PostcopySourceWriter(new BufferedOutputStream(socket.getOutputStream(), 256 * 1024));
            if (resume) {
                resumeHandshake(w);
            } else {
                setup(w);
            }
            if (!advance(State.STARTING, State.SERVING)) {
                return;   // the reader failed or lost the connection meanwhile; it reported why
            }
            serving.complete(null);
            log.info("clone={} event=page-server-{} bytes={}", clone, resume ? "resumed" : "serving", w.bytesWritten());
            step = "serving pages";
            serveUntilEnd(w);
            step = "clean end";
            awaitShut();
            if (!advance(State.FINISHING, State.COMPLETED)) {
                return;
            }
            closeCleanly();
            completed.complete(null);
            log.info("clone={} event=page-server-completed stats={}", clone, stats());
        } catch (IOException e) {
            if (state == State.FAILED || state == State.DISCONNECTED) {
                return;   // the reader saw it first
            }
            lost(step + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            fail(step, e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail(step, "interrupted", e);
        }
    }

    /** The sequence FINDINGS.md measured against a stock 10.0.2 destination (see the class comment of the writer). */
    private void setup(PostcopySourceWriter w) throws IOException {
        w.headerAndConfiguration(descriptor.machineType());
        w.openReturnPath();
        w.postcopyAdvise();
        w.ramSectionStart(descriptor.ramSectionId(), blocks);
        // At least one discard must come between ADVISE and LISTEN: the first one moves the
        // destination to POSTCOPY_INCOMING_DISCARD; LISTEN straight after ADVISE deadlocks 10.0.2.
        // The range is the first page of the first block, which ADVISE discarded already.
        w.discard(blocks.get(0).name(), 0, WireFormat.PAGE_SIZE);
        w.packagedDeviceState(descriptor.deviceSections());
        w.flush();
        bytesOnWire = w.bytesWritten();
    }

    private void resumeHandshake(PostcopySourceWriter w) throws IOException, InterruptedException {
        for (RamBlockInfo b : blocks) {
            w.requestReceivedBitmap(b.name());
        }
        w.flush();
        int got = 0;
        long deadline = System.nanoTime() + options.handshakeTimeout().toNanos();
        while (got < blocks.size()) {
            ReturnPathMessage m = awaitControl(deadline, "the received bitmaps (" + got + " of " + blocks.size() + ")");
            if (m instanceof ReturnPathMessage.ReceivedBitmap bm) {
                int i = blockIndex.get(bm.block());
                BitSet s = sent[i];
                s.clear();
                for (int p = 0; p < blocks.get(i).pages(); p++) {
                    if (bm.received(p)) {
                        s.set(p);
                    }
                }
                got++;
            } else {
                throw new IOException("expected RECV_BITMAP, got " + m);
            }
        }
        w.postcopyResume();
        w.flush();
        ReturnPathMessage ack = awaitControl(System.nanoTime() + options.handshakeTimeout().toNanos(), "RESUME_ACK");
        if (!(ack instanceof ReturnPathMessage.ResumeAck a) || a.value() != WireFormat.RESUME_ACK_VALUE) {
            throw new IOException("expected RESUME_ACK " + WireFormat.RESUME_ACK_VALUE + ", got " + ack);
        }
        bytesOnWire = w.bytesWritten();
    }

    private ReturnPathMessage awaitControl(long deadlineNanos, String what) throws IOException, InterruptedException {
        while (true) {
            State s = state;
            if (s == State.FAILED || s == State.DISCONNECTED) {
                throw new IOException("connection ended while waiting for " + what);
            }
            long left = deadlineNanos - System.nanoTime();
            if (left <= 0) {
                throw new IOException("no " + what + " within " + options.handshakeTimeout().toMillis() + " ms");
            }
            ReturnPathMessage m = control.poll(Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)), TimeUnit.NANOSECONDS);
            if (m != null) {
                return m;
            }
        }
    }

    /** Answers requests; pushes when idle (if enabled); returns after END and EOF were written. */
    private void serveUntilEnd(PostcopySourceWriter w) throws IOException, InterruptedException {
        List<long[]> batch = new ArrayList<>();
        while (true) {
            if (state == State.FAILED || state == State.DISCONNECTED) {
                throw new IOException("connection ended");
            }
            boolean pushing = finishRequested || options.backgroundPush();
            ReturnPathMessage.PageRequest r = pushing ? requests.poll() : requests.poll(50, TimeUnit.MILLISECONDS);
            if (r != null) {
                batch.clear();
                addRequested(r, batch);
                ReturnPathMessage.PageRequest more;
                while (batch.size() < options.batchPages() && (more = requests.poll()) != null) {
                    addRequested(more, batch);
                }
                writeBatch(w, batch, false);
            } else if (pushing) {
                batch.clear();
                boolean more = nextUnsent(batch, options.batchPages(), finishRequested);
                if (!batch.isEmpty()) {
                    writeBatch(w, batch, true);
                }
                if (!more && finishRequested) {
                    if (!advance(State.SERVING, State.FINISHING)) {
                        throw new IOException("connection ended");
                    }
                    w.sectionEnd(descriptor.ramSectionId());
                    w.endOfRamSection(descriptor.ramSectionId());
                    w.eof();
                    w.flush();
                    bytesOnWire = w.bytesWritten();
                    return;
                }
                if (!more && !finishRequested) {
                    Thread.sleep(50);   // everything is sent; only the end is left to do
                }
            }
        }
    }

    private void addRequested(ReturnPathMessage.PageRequest r, List<long[]> batch) {
        int b = blockIndex.get(r.block());
        long len = r.length() & 0xffffffffL;
        for (long off = r.offset(); off < r.offset() + len; off += WireFormat.PAGE_SIZE) {
            int page = (int) (off / WireFormat.PAGE_SIZE);
            if (!sent[b].get(page)) {
                pagesRequested.incrementAndGet();
                batch.add(new long[] {b, page});
            }
        }
    }

    /**
     * Adds up to {@code max} unsent pages in block order; returns false when the cursor reached the end.
     *
     * <p>Zero pages: at the clean end they are skipped ({@code skipZero}) — an unsent page reads as
     * zero on the destination once the migration ends. The background push sends them as ZERO
     * records (~15 bytes each) instead: with zero pages left out of the push, a clone that faulted in
     * fresh memory while pages were pushed hung 3 times of 3 (a vCPU waiting in the kernel's
     * handle_userfault, QEMU's fault thread idle, no request sent); with them pushed it ran 2 of 2.
     * The root cause is not known, so this is a mitigation, not a fix.
     */
    private boolean nextUnsent(List<long[]> batch, int max, boolean skipZero) throws IOException {
        while (pushBlock < blocks.size()) {
            RamBlockInfo info = blocks.get(pushBlock);
            while (pushPage < info.pages()) {
                int p = pushPage++;
                if (sent[pushBlock].get(p)) {
                    continue;
                }
                if (skipZero && pages.read(info.name(), (long) p * WireFormat.PAGE_SIZE, pageBuffer)) {
                    continue;
                }
                batch.add(new long[] {pushBlock, p});
                if (batch.size() >= max) {
                    return true;
                }
            }
            pushBlock++;
            pushPage = 0;
        }
        return false;
    }

    /** One RAM section PART with the pages of {@code batch} that are still unsent. */
    private void writeBatch(PostcopySourceWriter w, List<long[]> batch, boolean pushed) throws IOException {
        boolean open = false;
        for (long[] bp : batch) {
            int b = (int) bp[0];
            int page = (int) bp[1];
            if (sent[b].get(page)) {
                continue;   // requested twice in one batch
            }
            if (!open) {
                w.sectionPart(descriptor.ramSectionId());
                open = true;
            }
            String name = blocks.get(b).name();
            long offset = (long) page * WireFormat.PAGE_SIZE;
            if (pages.read(name, offset, pageBuffer)) {
                w.zeroPage(name, offset);
                zeroPagesSent.incrementAndGet();
            } else {
                w.page(name, offset, pageBuffer, 0);
            }
            sent[b].set(page);
            pagesSent.incrementAndGet();
            if (pushed) {
                pagesPushed.incrementAndGet();
            }
        }
        if (open) {
            w.endOfRamSection(descriptor.ramSectionId());
            w.flush();
            bytesOnWire = w.bytesWritten();
        }
    }

    private void awaitShut() throws IOException, InterruptedException {
        ReturnPathMessage m = awaitControl(System.nanoTime() + options.handshakeTimeout().toNanos(), "SHUT after EOF");
        if (!(m instanceof ReturnPathMessage.Shut s) || s.status() != 0) {
            throw new IOException("the destination ended with " + m + " instead of SHUT 0");
        }
    }

    // ---- ending ----

    /**
     * Moves from {@code from} to {@code to}; false if another thread already moved the session on
     * (a failure seen by the reader must never be overwritten by the sender's progress).
     */
    private synchronized boolean advance(State from, State to) {
        if (state != from) {
            return false;
        }
        state = to;
        return true;
    }

    private synchronized void fail(String step, String detail, Throwable cause) {
        if (state == State.COMPLETED || state == State.FAILED) {
            return;
        }
        state = State.FAILED;
        PageServerException e = new PageServerException(clone, step, detail, cause);
        failure = e;
        log.error("clone={} event=page-server-session-failed step=\"{}\" cause=\"{}\"", clone, step, detail);
        closeSocket();
        serving.completeExceptionally(e);
        completed.completeExceptionally(e);
    }

    /** The connection is gone without a protocol error: the clone pauses and may be recovered. */
    private synchronized void lost(String detail, Throwable cause) {
        if (state == State.COMPLETED || state == State.FAILED || state == State.DISCONNECTED) {
            return;
        }
        if (shutReceived) {
            return;   // the end of the connection after SHUT: the sender completes the session
        }
        state = State.DISCONNECTED;
        PageServerException e = new PageServerException(clone, "connection", detail, cause);
        failure = e;
        log.warn("clone={} event=page-server-disconnected cause=\"{}\"", clone, detail);
        closeSocket();
        serving.completeExceptionally(e);
        completed.completeExceptionally(e);
    }

    /**
     * Closes the TCP connection, not the TLS socket: an SSLSocket's close first takes the record lock
     * to send close_notify, and a sender blocked writing to a paused clone holds it.
     */
    private void closeSocket() {
        Socket s = tcp;
        if (s != null) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing a socket that is already broken
            }
        }
    }

    /** The clean end (the sender, after SHUT): close_notify on a TLS session, then the connection. */
    private void closeCleanly() {
        try {
            socket.close();
        } catch (IOException ignored) {
            // the destination may have closed first
        }
        closeSocket();
    }
}

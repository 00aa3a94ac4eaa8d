package dev.doppel.remus.testbed;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.remus.control.ControlMessage;
import dev.doppel.tls.PeerTls;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hostile peers on the client host against a protected VM's backup: each attempt is one connection
 * that tries to change something — "primary down" on the control port, a replication stream on the
 * VM's replication port, an NBD handshake and write on its disk export — once in plain TCP and once
 * with a certificate from another CA. An attempt counts as <em>accepted</em> when the backup answered it
 * with anything but a TLS alert (protocol bytes: the peer got through the door).
 */
final class RoguePeers {
    private static final Logger log = LoggerFactory.getLogger(RoguePeers.class);

    private RoguePeers() {
    }

    /** Runs every attempt from {@code from}; returns the descriptions of the accepted ones. */
    static List<String> attack(HostSockets from, String vm, InetSocketAddress control, InetSocketAddress replication,
                               InetSocketAddress nbd, PeerTls foreign) {
        List<String> accepted = new ArrayList<>();
        byte[] primaryDown = new ControlMessage(vm, ControlMessage.PRIMARY_DOWN, 1, "rogue").toLine().getBytes(StandardCharsets.UTF_8);
        byte[] streamHeader = ByteBuffer.allocate(8).putInt(0x5145564d).putInt(3).array();   // "QEVM", version 3
        // NBD client flags (fixed newstyle) and an NBD_OPT_GO for the export.
        byte[] nbdHello = ByteBuffer.allocate(4 + 16 + 4 + 2 + 2).putInt(1).putLong(0x49484156454F5054L).putInt(7).putInt(6)
                .putInt(0).putShort((short) 0).array();
        for (PeerTls tls : List.of(PeerTls.INSECURE, foreign)) {
            String how = tls.secure() ? "with another CA's certificate" : "in plain TCP";
            attempt(from, control, tls, primaryDown, "control: primary-down " + how, accepted);
            attempt(from, replication, tls, streamHeader, "replication: a stream " + how, accepted);
            attempt(from, nbd, tls, nbdHello, "NBD: option haggling " + how, accepted);
        }
        return accepted;
    }

    /**
     * A peer the CA does trust (a stale credential, an old primary) replays control messages it once
     * could have seen: a stand-down and a primary-down for the VM. TLS lets it in; the messages must
     * change nothing: the stand-down is checked against the ownership record, the primary-down only
     * starts an attempt that the primary's live lease defers.
     */
    static void replayStaleControl(HostSockets from, String vm, InetSocketAddress control, PeerTls trusted) throws IOException {
        try (Socket plain = from.connect(control, Duration.ofSeconds(2));
             Socket s = trusted.client(plain, "replayed control messages")) {
            for (String type : List.of(ControlMessage.STAND_DOWN, ControlMessage.PRIMARY_DOWN)) {
                s.getOutputStream().write(new ControlMessage(vm, type, 1, "replayed by a trusted peer").toLine()
                        .getBytes(StandardCharsets.UTF_8));
            }
            s.getOutputStream().flush();
            log.warn("event=stale-control-replayed vm={} messages=\"stand-down, primary-down\" peer={}", vm, control);
        }
    }

    private static void attempt(HostSockets from, InetSocketAddress to, PeerTls tls, byte[] payload, String what,
                                List<String> accepted) {
        try (Socket plain = from.connect(to, Duration.ofSeconds(2))) {
            plain.setSoTimeout(5000);
            Socket s;
            try {
                s = tls.client(plain, "rogue " + what);
            } catch (IOException e) {
                return;   // the handshake failed: refused at the door
            }
            s.getOutputStream().write(payload);
            s.getOutputStream().flush();
            boolean got = what.startsWith("NBD") ? nbdOptionGranted(s.getInputStream()) : answered(s.getInputStream());
            if (got) {
                accepted.add(what);
                log.error("event=rogue-accepted attempt=\"{}\" peer={}", what, to);
            }
        } catch (IOException e) {
            // connection reset or closed: refused
        }
    }

    /** Anything but a TLS alert or the end of the connection is an answer: the peer got past the door. */
    private static boolean answered(InputStream in) {
        try {
            int first = in.read();
            return first >= 0 && first != 0x15;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * The NBD server greets every client (18 bytes) before any TLS; what matters is the answer to the
     * rogue's option: an option reply without the error bit means the option was served.
     */
    private static boolean nbdOptionGranted(InputStream in) {
        try {
            byte[] greetingAndReply = in.readNBytes(18 + 20);
            if (greetingAndReply.length < 38) {
                return false;
            }
            int type = ByteBuffer.wrap(greetingAndReply, 18 + 12, 4).getInt();
            return type >= 0;   // NBD_REP_FLAG_ERROR is the sign bit
        } catch (IOException e) {
            return false;
        }
    }
}

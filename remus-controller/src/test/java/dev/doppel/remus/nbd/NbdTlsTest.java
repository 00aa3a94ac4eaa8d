package dev.doppel.remus.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.hostnet.HostSockets;
import dev.doppel.tls.PeerTls;
import dev.doppel.tls.Pki;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The backup's NBD export with TLS, judged by QEMU's own client (qemu-io, GnuTLS): with the host's
 * certificate (NBD_OPT_STARTTLS, then a client certificate from the installation's CA) it writes and
 * reads; without TLS, or with another CA's certificate, it gets nothing — not the export's size, not a
 * byte — and the image and the held epoch are untouched (the fencing issue's unauthenticated NBD write).
 */
class NbdTlsTest {
    @TempDir Path tmp;

    @Test
    void onlyAClientOfTheInstallationsCaReachesTheExport() throws Exception {
        Path pki = tmp.resolve("pki");
        Pki.init(pki, "ours");
        PeerTls backupTls = PeerTls.load(Pki.issue(pki, "127.0.0.1"));
        Path primaryDir = Pki.issue(pki, "primary");
        Pki.init(tmp.resolve("theirs"), "theirs");
        Path rogueDir = Pki.issue(tmp.resolve("theirs"), "primary");
        byte[] base = new byte[1 << 20];
        Arrays.fill(base, (byte) 0x11);
        Path image = Files.write(tmp.resolve("backup.img"), base);
        try (EpochDisk disk = EpochDisk.openRaw(image);
             NbdServer server = NbdServer.start("disk0", disk, new InetSocketAddress("127.0.0.1", 0), HostSockets.LOCAL, backupTls)) {
            int port = server.address().getPort();

            QemuTools.Result plain = QemuTools.qemuIo(server, "write -P 0x66 0 4k");
            assertFalse(plain.ok(), "a plain NBD client was served:\n" + plain.output());
            QemuTools.Result rogue = qemuIoTls(port, rogueDir, "write -P 0x66 0 4k");
            assertFalse(rogue.ok(), "a client with another CA's certificate was served:\n" + rogue.output());
            assertEquals(0, disk.stats().writesHeld(), "a rejected client's write was held");
            assertArrayEquals(base, Files.readAllBytes(image), "the image changed");

            QemuTools.Result good = qemuIoTls(port, primaryDir, "write -P 0x5a 0 4k", "read -P 0x5a 0 4k");
            assertTrue(good.ok(), "the primary's client failed over TLS:\n" + good.output());
            // held until its epoch commits (qemu-io's closing flush has closed the epoch: the closed stage holds it)
            assertEquals(4096, disk.stats().bytesHeld(), "the primary's write is held for its epoch");
        }
    }

    /** qemu-io over NBD with TLS credentials from {@code dir} (QEMU's tls-creds-x509, client end). */
    private static QemuTools.Result qemuIoTls(int port, Path dir, String... commands) throws Exception {
        List<String> argv = new java.util.ArrayList<>(List.of("qemu-io",
                "--object", "tls-creds-x509,id=tls0,endpoint=client,verify-peer=on,dir=" + dir,
                "--image-opts", "driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port=" + port
                        + ",file.export=disk0,file.tls-creds=tls0"));
        for (String c : commands) {
            argv.add("-c");
            argv.add(c);
        }
        return QemuTools.run(argv);
    }
}

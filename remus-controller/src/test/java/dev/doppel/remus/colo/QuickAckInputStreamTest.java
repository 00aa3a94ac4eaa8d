package dev.doppel.remus.colo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import jdk.net.ExtendedSocketOptions;
import org.junit.jupiter.api.Test;

/** TCP_QUICKACK is really set (not silently unsupported) and set again after reads. */
class QuickAckInputStreamTest {
    @Test
    void quickAckIsArmedAfterEveryRead() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
             Socket client = new Socket(InetAddress.getLoopbackAddress(), server.getLocalPort());
             Socket accepted = server.accept()) {
            assertTrue(accepted.supportedOptions().contains(ExtendedSocketOptions.TCP_QUICKACK), "Linux supports TCP_QUICKACK");
            InputStream in = new QuickAckInputStream(accepted.getInputStream(), accepted);
            for (int i = 0; i < 3; i++) {
                client.getOutputStream().write(new byte[] {1, 2, 3, 4});
                accepted.setOption(ExtendedSocketOptions.TCP_QUICKACK, false);
                assertEquals(4, in.readNBytes(4).length);
                assertTrue(accepted.getOption(ExtendedSocketOptions.TCP_QUICKACK), "re-armed after read " + i);
            }
        }
    }
}

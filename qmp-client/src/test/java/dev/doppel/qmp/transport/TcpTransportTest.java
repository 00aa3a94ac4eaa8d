package dev.doppel.qmp.transport;

import dev.doppel.qmp.QmpClient;
import dev.doppel.qmp.QmpClientOptions;
import dev.doppel.qmp.QmpConnectException;
import dev.doppel.qmp.QmpException;
import dev.doppel.qmp.testing.FakeQmpPeer;
import dev.doppel.qmp.testing.Transcript;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.ServerSocket;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("unit")
@Timeout(10)
class TcpTransportTest {

    static final Transcript HANDSHAKE = Transcript.load("handshake-oob.jsonl");

    @Test
    void qmpOverTcpButNoFdPassing() throws Exception {
        try (FakeQmpPeer peer = FakeQmpPeer.startTcp()) {
            CompletableFuture<QmpClient> f = CompletableFuture.supplyAsync(
                    () -> QmpClient.connectTcp("127.0.0.1", peer.port(), "tcp-vm", Duration.ofSeconds(5)));
            peer.write(HANDSHAKE.greeting());
            peer.answer(HANDSHAKE.exchange("qmp_capabilities"));
            try (QmpClient client = f.get(5, TimeUnit.SECONDS)) {
                assertTrue(client.describe().startsWith("tcp:127.0.0.1:"));
                CompletableFuture<String> status = CompletableFuture.supplyAsync(
                        () -> client.commands().queryStatus().status());
                peer.answer(HANDSHAKE.exchange("query-status"));
                assertEquals("prelaunch", status.get(5, TimeUnit.SECONDS));

                QmpException e = assertThrows(QmpException.class, () -> client.getfd("fd0", 0));
                assertTrue(e.getMessage().startsWith("VM 'tcp-vm': cannot pass file descriptors with 'getfd': transport tcp:"),
                        e.getMessage());
                assertTrue(e.getMessage().contains("does not support fd passing"), e.getMessage());
            }
        }
    }

    @Test
    void refusedUntilDeadline() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        int p = port;
        QmpConnectException e = assertThrows(QmpConnectException.class,
                () -> QmpClient.connectTcp("127.0.0.1", p, "tcp-vm", Duration.ofMillis(200)));
        assertTrue(e.getMessage().startsWith("VM 'tcp-vm': could not connect to QMP at tcp:127.0.0.1:" + p), e.getMessage());
    }
}

package dev.doppel.qmp.transport;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;

/** A QMP transport over TCP ({@code -qmp tcp:host:port,server=on}). Cannot pass file descriptors. */
public final class TcpTransport implements QmpTransport {

    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;
    private final String description;
    private volatile boolean closed;

    private TcpTransport(Socket socket, String description) throws IOException {
        this.socket = socket;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        this.description = description;
    }

    /** Connects with TCP_NODELAY (QMP is small request/response traffic; Nagle would only add latency). */
    public static TcpTransport connect(String host, int port, Duration connectTimeout) throws IOException {
        Socket s = new Socket();
        try {
            s.setTcpNoDelay(true);
            s.connect(new InetSocketAddress(host, port), (int) Math.max(1, Math.min(Integer.MAX_VALUE, connectTimeout.toMillis())));
            return new TcpTransport(s, "tcp:" + host + ":" + port);
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    @Override
    public void send(byte[] data, int[] fds) throws IOException {
        if (fds != null && fds.length > 0) {
            throw new UnsupportedOperationException("cannot pass file descriptors over " + description
                    + ": SCM_RIGHTS needs a unix socket transport");
        }
        out.write(data);
        out.flush();
    }

    @Override
    public int read(byte[] buf) throws IOException {
        if (closed) {
            return -1;
        }
        try {
            return in.read(buf);
        } catch (IOException e) {
            if (closed) {
                return -1;
            }
            throw e;
        }
    }

    @Override
    public boolean supportsFdPassing() {
        return false;
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public void close() {
        closed = true;
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    @Override
    public String toString() {
        return "TcpTransport[" + description + "]";
    }
}

package dev.doppel.hostnet;

import com.sun.jna.Library;
import com.sun.jna.Native;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;

/**
 * Where a component's TCP sockets live: this process's own network namespace, or a "host" that is a
 * network namespace (tests run the primary, backup and client hosts as namespaces in one process).
 *
 * <p>A socket belongs to the namespace of the thread that creates it, for its whole life; only the
 * creating thread needs to be inside. So a namespace's sockets are created (and bound or connected)
 * on a short-lived thread that first joins the namespace with {@code setns(2)} — which affects only
 * that thread — and are then used from any thread. This is what lets a controller in the root
 * namespace relay a primary host's replication stream over that host's own link (it dies with the
 * link, as it would on a real host) without running a process per host.
 */
public interface HostSockets {
    /** Creates a listening socket bound to {@code address}. */
    ServerSocket listen(InetSocketAddress address, int backlog) throws IOException;

    /** Opens a TCP connection to {@code address}. */
    Socket connect(InetSocketAddress address, Duration timeout) throws IOException;

    /**
     * Runs {@code action} where this host's sockets are created (e.g. to open a multicast
     * DatagramChannel and join a group on one of this host's interfaces).
     */
    <T> T within(Callable<T> action) throws IOException;

    /** Sockets of this process's namespace. */
    HostSockets LOCAL = new HostSockets() {
        @Override
        public ServerSocket listen(InetSocketAddress address, int backlog) throws IOException {
            return bind(address, backlog);
        }

        @Override
        public Socket connect(InetSocketAddress address, Duration timeout) throws IOException {
            return open(address, timeout);
        }

        @Override
        public <T> T within(Callable<T> action) throws IOException {
            try {
                return action.call();
            } catch (IOException | RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IOException(e);
            }
        }

        @Override
        public String toString() {
            return "local";
        }
    };

    /** Sockets of the named network namespace ({@code /run/netns/NAME}). */
    static HostSockets inNamespace(String netns) {
        if (netns == null) {
            return LOCAL;
        }
        return new HostSockets() {
            @Override
            public ServerSocket listen(InetSocketAddress address, int backlog) throws IOException {
                return Setns.call(netns, () -> bind(address, backlog));
            }

            @Override
            public Socket connect(InetSocketAddress address, Duration timeout) throws IOException {
                return Setns.call(netns, () -> open(address, timeout));
            }

            @Override
            public <T> T within(Callable<T> action) throws IOException {
                return Setns.call(netns, action);
            }

            @Override
            public String toString() {
                return "netns " + netns;
            }
        };
    }

    private static ServerSocket bind(InetSocketAddress address, int backlog) throws IOException {
        ServerSocket s = new ServerSocket();
        try {
            s.setReuseAddress(true);
            s.bind(address, backlog);
            return s;
        } catch (IOException e) {
            s.close();
            throw e;
        }
    }

    private static Socket open(InetSocketAddress address, Duration timeout) throws IOException {
        Socket s = new Socket();
        try {
            s.connect(address, (int) Math.min(Integer.MAX_VALUE, timeout.toMillis()));
            return s;
        } catch (IOException e) {
            s.close();
            throw e;
        }
    }

    /** Runs an action on a fresh thread inside a network namespace. */
    final class Setns {
        private static final int O_RDONLY = 0;
        private static final int O_CLOEXEC = 0x80000;
        private static final int CLONE_NEWNET = 0x40000000;

        private interface LibC extends Library {
            LibC INSTANCE = Native.load("c", LibC.class);

            int open(String path, int flags);

            int setns(int fd, int nstype);

            int close(int fd);
        }

        private Setns() {
        }

        static <T> T call(String netns, Callable<T> action) throws IOException {
            FutureTask<T> task = new FutureTask<>(() -> {
                String path = "/run/netns/" + netns;
                int fd = LibC.INSTANCE.open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                    throw new IOException("network namespace " + netns + ": cannot open " + path + " (errno "
                            + Native.getLastError() + ")");
                }
                try {
                    if (LibC.INSTANCE.setns(fd, CLONE_NEWNET) != 0) {
                        throw new IOException("network namespace " + netns + ": setns failed (errno " + Native.getLastError() + ")");
                    }
                } finally {
                    LibC.INSTANCE.close(fd);
                }
                return action.call();
            });
            // The thread ends right after: it must never run anything else inside the namespace.
            Thread t = new Thread(task, "netns-" + netns);
            t.setDaemon(true);
            t.start();
            try {
                return task.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while opening a socket in netns " + netns, e);
            } catch (ExecutionException e) {
                Throwable c = e.getCause();
                if (c instanceof IOException io) {
                    throw io;
                }
                if (c instanceof UncheckedIOException u) {
                    throw u.getCause();
                }
                throw new IOException("netns " + netns + ": " + c, c);
            }
        }
    }
}

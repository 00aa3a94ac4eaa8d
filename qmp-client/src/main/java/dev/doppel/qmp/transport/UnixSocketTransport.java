package dev.doppel.qmp.transport;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.NativeLong;

import java.io.IOException;
import java.net.ConnectException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * A QMP transport over an {@code AF_UNIX} stream socket, driven through libc with JNA because the JDK's unix
 * sockets cannot pass file descriptors ({@code SCM_RIGHTS}), which {@code getfd} and {@code add-fd} need.
 *
 * <p>Closing: {@link #close} calls {@code shutdown(SHUT_RDWR)}, which wakes a reader blocked in {@code recv}
 * (it sees end of stream); the descriptor itself is closed only once no read or send is using it, so a
 * concurrent reader can never end up reading a recycled descriptor number.
 */
public final class UnixSocketTransport implements QmpTransport {

    private static final int READ_CHUNK = 64 * 1024;

    private final String description;
    private final Object fdLock = new Object();
    private final Object sendLock = new Object();
    private final Memory readBuffer = new Memory(READ_CHUNK);
    private final int fd;
    private int users;
    private boolean closing;
    private boolean fdClosed;
    private Memory sendBuffer = new Memory(4096);

    private UnixSocketTransport(int fd, String description) {
        this.fd = fd;
        this.description = description;
    }

    /**
     * Connects to the unix socket at {@code path}.
     *
     * @throws NoSuchFileException if the socket file does not exist (yet)
     * @throws ConnectException if nobody listens on it (ECONNREFUSED)
     * @throws IOException on any other failure
     */
    public static UnixSocketTransport connect(Path path) throws IOException {
        Posix.LibC libc = Posix.libc();
        String p = path.toString();
        int[] len = new int[1];
        Memory addr = Posix.sockaddrUn(p, len);
        int fd;
        try {
            fd = libc.socket(Posix.AF_UNIX, Posix.SOCK_STREAM | Posix.SOCK_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw Posix.ioError("socket(AF_UNIX)", e);
        }
        try {
            while (true) {
                try {
                    libc.connect(fd, addr, len[0]);
                    break;
                } catch (LastErrorException e) {
                    if (e.getErrorCode() == Posix.EINTR) {
                        continue;
                    }
                    throw e;
                }
            }
        } catch (LastErrorException e) {
            closeQuietly(fd);
            String msg = "connect(" + p + ") failed: " + Posix.describeErrno(e.getErrorCode());
            if (e.getErrorCode() == Posix.ENOENT) {
                NoSuchFileException nsf = new NoSuchFileException(p, null, msg);
                nsf.initCause(e);
                throw nsf;
            }
            if (e.getErrorCode() == Posix.ECONNREFUSED) {
                ConnectException ce = new ConnectException(msg);
                ce.initCause(e);
                throw ce;
            }
            throw new IOException(msg, e);
        }
        return new UnixSocketTransport(fd, "unix:" + p);
    }

    /**
     * Adopts an already connected unix stream socket descriptor (e.g. one end of a {@code socketpair} whose
     * other end was handed to QEMU as {@code -chardev socket,fd=N}). The transport owns it from now on.
     */
    public static UnixSocketTransport adopt(int fd, String description) {
        return new UnixSocketTransport(fd, description);
    }

    /** A connected pair of unix stream sockets (both close-on-exec), e.g. for tests or fd-based chardevs. */
    public static int[] socketPair() throws IOException {
        int[] sv = new int[2];
        try {
            Posix.libc().socketpair(Posix.AF_UNIX, Posix.SOCK_STREAM | Posix.SOCK_CLOEXEC, 0, sv);
        } catch (LastErrorException e) {
            throw Posix.ioError("socketpair(AF_UNIX)", e);
        }
        return sv;
    }

    @Override
    public void send(byte[] data, int[] fds) throws IOException {
        boolean withFds = fds != null && fds.length > 0;
        int descriptor = acquire("send");
        try {
            synchronized (sendLock) {
                if (sendBuffer.size() < data.length) {
                    sendBuffer = new Memory(Math.max(data.length, sendBuffer.size() * 2));
                }
                sendBuffer.write(0, data, 0, data.length);
                long off = 0;
                if (withFds) {
                    off = sendWithFds(descriptor, sendBuffer, data.length, fds);
                }
                while (off < data.length) {
                    try {
                        long n = Posix.libc().send(descriptor, sendBuffer.share(off), new NativeLong(data.length - off),
                                Posix.MSG_NOSIGNAL).longValue();
                        off += n;
                    } catch (LastErrorException e) {
                        if (e.getErrorCode() != Posix.EINTR) {
                            throw Posix.ioError("send on " + description, e);
                        }
                    }
                }
            }
        } finally {
            release();
        }
    }

    /** One sendmsg carrying the descriptors and as many bytes as the kernel takes; returns that count. */
    private long sendWithFds(int descriptor, Memory data, int length, int[] fds) throws IOException {
        long headerSize = Posix.cmsgHeaderSize();
        long dataLen = 4L * fds.length;
        long cmsgLen = headerSize + dataLen;                 // CMSG_LEN
        long space = headerSize + Posix.cmsgAlign(dataLen);  // CMSG_SPACE
        Memory control = new Memory(space);
        control.clear();
        control.setNativeLong(0, new NativeLong(cmsgLen));
        control.setInt(NativeLong.SIZE, Posix.SOL_SOCKET);
        control.setInt(NativeLong.SIZE + 4, Posix.SCM_RIGHTS);
        for (int i = 0; i < fds.length; i++) {
            control.setInt(headerSize + 4L * i, fds[i]);
        }
        Memory iov = new Memory(2L * NativeLong.SIZE);
        iov.setPointer(0, data);
        iov.setNativeLong(NativeLong.SIZE, new NativeLong(length));

        Posix.MsgHdr msg = new Posix.MsgHdr();
        msg.msg_name = null;
        msg.msg_namelen = 0;
        msg.msg_iov = iov;
        msg.msg_iovlen = new NativeLong(1);
        msg.msg_control = control;
        msg.msg_controllen = new NativeLong(space);
        msg.msg_flags = 0;
        while (true) {
            try {
                return Posix.libc().sendmsg(descriptor, msg, Posix.MSG_NOSIGNAL).longValue();
            } catch (LastErrorException e) {
                if (e.getErrorCode() != Posix.EINTR) {
                    throw Posix.ioError("sendmsg(SCM_RIGHTS, " + fds.length + " fd(s)) on " + description, e);
                }
            }
        }
    }

    @Override
    public int read(byte[] buf) throws IOException {
        int descriptor;
        synchronized (fdLock) {
            if (closing) {
                return -1;
            }
            users++;
            descriptor = fd;
        }
        try {
            int want = Math.min(buf.length, READ_CHUNK);
            while (true) {
                try {
                    long n = Posix.libc().recv(descriptor, readBuffer, new NativeLong(want), 0).longValue();
                    if (n == 0) {
                        return -1;
                    }
                    readBuffer.read(0, buf, 0, (int) n);
                    return (int) n;
                } catch (LastErrorException e) {
                    if (e.getErrorCode() == Posix.EINTR) {
                        continue;
                    }
                    synchronized (fdLock) {
                        if (closing) {
                            return -1;
                        }
                    }
                    throw Posix.ioError("recv on " + description, e);
                }
            }
        } finally {
            release();
        }
    }

    @Override
    public boolean supportsFdPassing() {
        return true;
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public void close() {
        synchronized (fdLock) {
            if (closing) {
                return;
            }
            closing = true;
            try {
                Posix.libc().shutdown(fd, Posix.SHUT_RDWR);
            } catch (LastErrorException ignored) {
                // ENOTCONN when the peer is already gone: nothing to wake up
            }
            if (users == 0) {
                closeFd();
            }
        }
    }

    private int acquire(String op) throws IOException {
        synchronized (fdLock) {
            if (closing) {
                throw new IOException(op + " on closed transport " + description);
            }
            users++;
            return fd;
        }
    }

    private void release() {
        synchronized (fdLock) {
            users--;
            if (closing && users == 0) {
                closeFd();
            }
        }
    }

    private void closeFd() {
        if (!fdClosed) {
            fdClosed = true;
            closeQuietly(fd);
        }
    }

    private static void closeQuietly(int fd) {
        try {
            Posix.libc().close(fd);
        } catch (LastErrorException ignored) {
            // nothing sensible to do
        }
    }

    @Override
    public String toString() {
        return "UnixSocketTransport[" + description + "]";
    }
}

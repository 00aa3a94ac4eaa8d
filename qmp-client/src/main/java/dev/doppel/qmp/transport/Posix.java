package dev.doppel.qmp.transport;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;

import java.io.IOException;

/**
 * The handful of libc calls Doppel needs that the JDK does not offer: AF_UNIX sockets that can carry file
 * descriptors ({@code sendmsg} with {@code SCM_RIGHTS}) and raw {@code open(2)}/{@code pipe(2)}.
 *
 * <p>Linux only (the constants below are Linux's, identical on x86_64 and aarch64). Internal to Doppel: it is
 * public only so that {@link dev.doppel.qmp.FileDescriptors} and tests can reach it.
 */
public final class Posix {

    public static final int AF_UNIX = 1;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_CLOEXEC = 0x80000;
    public static final int SOL_SOCKET = 1;
    public static final int SCM_RIGHTS = 1;
    public static final int SHUT_RDWR = 2;
    public static final int MSG_NOSIGNAL = 0x4000;

    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0100;
    public static final int O_TRUNC = 01000;
    public static final int O_APPEND = 02000;
    public static final int O_CLOEXEC = 02000000;

    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EAGAIN = 11;
    public static final int ECONNREFUSED = 111;

    /** {@code sizeof(sun_path)} on Linux. */
    public static final int UNIX_PATH_MAX = 108;

    /** Direct libc bindings; every call reports failure through {@link LastErrorException}. */
    public interface LibC extends Library {
        int socket(int domain, int type, int protocol) throws LastErrorException;

        int socketpair(int domain, int type, int protocol, int[] sv) throws LastErrorException;

        int connect(int fd, Pointer addr, int addrlen) throws LastErrorException;

        NativeLong recv(int fd, Pointer buf, NativeLong len, int flags) throws LastErrorException;

        NativeLong send(int fd, Pointer buf, NativeLong len, int flags) throws LastErrorException;

        NativeLong sendmsg(int fd, MsgHdr msg, int flags) throws LastErrorException;

        NativeLong read(int fd, Pointer buf, NativeLong len) throws LastErrorException;

        NativeLong write(int fd, Pointer buf, NativeLong len) throws LastErrorException;

        int shutdown(int fd, int how) throws LastErrorException;

        int close(int fd) throws LastErrorException;

        int open(String path, int flags, int mode) throws LastErrorException;

        int pipe2(int[] fds, int flags) throws LastErrorException;

        int dup(int fd) throws LastErrorException;

        String strerror(int errnum);
    }

    /** {@code struct msghdr}; JNA lays out the padding. {@code size_t} is {@link NativeLong} on Linux. */
    @Structure.FieldOrder({"msg_name", "msg_namelen", "msg_iov", "msg_iovlen", "msg_control", "msg_controllen",
            "msg_flags"})
    public static final class MsgHdr extends Structure {
        public Pointer msg_name;
        public int msg_namelen;
        public Pointer msg_iov;
        public NativeLong msg_iovlen;
        public Pointer msg_control;
        public NativeLong msg_controllen;
        public int msg_flags;
    }

    private static volatile LibC libc;

    private Posix() {
    }

    /** The libc binding, loaded on first use. */
    public static LibC libc() {
        LibC l = libc;
        if (l == null) {
            synchronized (Posix.class) {
                l = libc;
                if (l == null) {
                    if (!com.sun.jna.Platform.isLinux()) {
                        throw new UnsupportedOperationException("Doppel's native helpers support Linux only");
                    }
                    l = Native.load("c", LibC.class);
                    libc = l;
                }
            }
        }
        return l;
    }

    /** Turns a failed libc call into an IOException naming the call and errno. */
    public static IOException ioError(String what, LastErrorException e) {
        return new IOException(what + " failed: " + describeErrno(e.getErrorCode()) + " (errno " + e.getErrorCode() + ")", e);
    }

    /** strerror(3) text for an errno value. */
    public static String describeErrno(int errno) {
        try {
            return libc().strerror(errno);
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            return "errno " + errno;
        }
    }

    /** Builds a {@code struct sockaddr_un} for {@code path}; returns the memory and sets its length in [0]. */
    static Memory sockaddrUn(String path, int[] lengthOut) {
        byte[] p = path.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (p.length >= UNIX_PATH_MAX) {
            throw new IllegalArgumentException("unix socket path is " + p.length + " bytes; the limit is "
                    + (UNIX_PATH_MAX - 1) + ": " + path);
        }
        Memory m = new Memory(2 + UNIX_PATH_MAX);
        m.clear();
        m.setShort(0, (short) AF_UNIX);
        m.write(2, p, 0, p.length);
        lengthOut[0] = 2 + p.length + 1;
        return m;
    }

    /** {@code CMSG_ALIGN}: control-message data is aligned to {@code sizeof(size_t)}. */
    static long cmsgAlign(long len) {
        long a = NativeLong.SIZE;
        return (len + a - 1) & ~(a - 1);
    }

    /** {@code sizeof(struct cmsghdr)}: size_t cmsg_len; int cmsg_level; int cmsg_type. */
    static long cmsgHeaderSize() {
        return cmsgAlign(NativeLong.SIZE + 4 + 4);
    }
}

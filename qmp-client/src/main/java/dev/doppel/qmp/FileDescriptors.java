package dev.doppel.qmp;

import com.sun.jna.LastErrorException;
import dev.doppel.qmp.transport.Posix;

import java.io.FileDescriptor;
import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.file.Path;

/**
 * Raw file descriptors for {@link QmpClient#getfd}/{@link QmpClient#addFd}. The JDK hides descriptor numbers,
 * so these helpers open files with libc {@code open(2)} directly (close-on-exec). The caller owns every
 * descriptor returned and must {@link #close(int)} it; QEMU gets its own duplicate when the fd is passed.
 */
public final class FileDescriptors {

    private FileDescriptors() {
    }

    /** Opens {@code path} read-only. */
    public static int openReadOnly(Path path) throws IOException {
        return open(path, Posix.O_RDONLY, 0);
    }

    /** Opens {@code path} read-write, creating it (mode 0600) if needed. */
    public static int openReadWrite(Path path) throws IOException {
        return open(path, Posix.O_RDWR | Posix.O_CREAT, 0600);
    }

    /** Opens {@code path} write-only, creating (0600) and truncating it. */
    public static int openForWriting(Path path) throws IOException {
        return open(path, Posix.O_WRONLY | Posix.O_CREAT | Posix.O_TRUNC, 0600);
    }

    /** {@code open(2)} with the given flags ({@link Posix} constants; O_CLOEXEC is always added). */
    public static int open(Path path, int flags, int mode) throws IOException {
        try {
            return Posix.libc().open(path.toString(), flags | Posix.O_CLOEXEC, mode);
        } catch (LastErrorException e) {
            throw Posix.ioError("open(" + path + ")", e);
        }
    }

    /** A pipe: {@code [readEnd, writeEnd]}, both close-on-exec. */
    public static int[] pipe() throws IOException {
        int[] fds = new int[2];
        try {
            Posix.libc().pipe2(fds, Posix.O_CLOEXEC);
        } catch (LastErrorException e) {
            throw Posix.ioError("pipe2", e);
        }
        return fds;
    }

    /** Closes a descriptor; errors (e.g. already closed) are reported as IOException. */
    public static void close(int fd) throws IOException {
        try {
            Posix.libc().close(fd);
        } catch (LastErrorException e) {
            throw Posix.ioError("close(" + fd + ")", e);
        }
    }

    /**
     * The number behind a JDK {@link FileDescriptor} (e.g. {@code new FileOutputStream(f).getFD()}). The JDK
     * keeps it private, so this needs {@code --add-opens java.base/java.io=ALL-UNNAMED}; without it this throws
     * UnsupportedOperationException saying so (use {@link #open} instead). The JDK object still owns the fd.
     */
    public static int of(FileDescriptor fd) {
        try {
            Field f = FileDescriptor.class.getDeclaredField("fd");
            f.setAccessible(true);
            int n = f.getInt(fd);
            if (n < 0) {
                throw new IllegalArgumentException("FileDescriptor is not valid (closed?)");
            }
            return n;
        } catch (ReflectiveOperationException | RuntimeException e) {
            if (e instanceof IllegalArgumentException iae) {
                throw iae;
            }
            throw new UnsupportedOperationException("cannot read the number of a java.io.FileDescriptor (run with "
                    + "--add-opens java.base/java.io=ALL-UNNAMED, or use FileDescriptors.open): " + e, e);
        }
    }
}

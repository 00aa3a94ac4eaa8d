package dev.doppel.remus.testing;

import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** Copies every byte that passes through a stream into memory (for recording a session). */
public final class CountingTee {
    private final ByteArrayOutputStream copy = new ByteArrayOutputStream(1 << 20);

    public synchronized int size() {
        return copy.size();
    }

    public synchronized byte[] bytes() {
        return copy.toByteArray();
    }

    private synchronized void add(byte[] b, int off, int n) {
        copy.write(b, off, n);
    }

    public InputStream wrap(InputStream in) {
        return new FilterInputStream(in) {
            @Override
            public int read() throws IOException {
                int b = super.read();
                if (b >= 0) {
                    add(new byte[] {(byte) b}, 0, 1);
                }
                return b;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                int n = super.read(b, off, len);
                if (n > 0) {
                    add(b, off, n);
                }
                return n;
            }
        };
    }

    public OutputStream wrap(OutputStream out) {
        return new FilterOutputStream(out) {
            @Override
            public void write(int b) throws IOException {
                out.write(b);
                add(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                out.write(b, off, len);
                add(b, off, len);
            }
        };
    }
}

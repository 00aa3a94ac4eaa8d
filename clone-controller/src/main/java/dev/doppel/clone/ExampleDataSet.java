package dev.doppel.clone;

import dev.doppel.hostnet.HostCommand;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The data disk of the guest's parallel-sum example (guest/examples/parallel-sum): a first line
 * "COUNT BYTES" (BYTES = the whole data set's length, header included), then the numbers 1..COUNT,
 * one per line. The sum the example must print is {@link #expectedSum}.
 */
public final class ExampleDataSet {
    private ExampleDataSet() {
    }

    /** Writes the data set into a qcow2 image at {@code image} (16 MiB). */
    public static void writeQcow2(Path image, int count) throws IOException {
        Path raw = image.resolveSibling(image.getFileName() + ".raw");
        try {
            Files.writeString(raw, text(count), StandardCharsets.US_ASCII);
            HostCommand.run("truncate", "-s", "16M", raw.toString());
            HostCommand.run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw.toString(), image.toString());
        } finally {
            Files.deleteIfExists(raw);
        }
    }

    public static long expectedSum(int count) {
        return (long) count * (count + 1) / 2;
    }

    static String text(int count) {
        StringBuilder body = new StringBuilder();
        for (int i = 1; i <= count; i++) {
            body.append(i).append('\n');
        }
        // The header states the total length, which includes the header's own digits: iterate to the fixed point.
        long total = body.length();
        while (true) {
            String header = count + " " + total + "\n";
            long next = header.length() + body.length();
            if (next == total) {
                return header + body;
            }
            total = next;
        }
    }
}

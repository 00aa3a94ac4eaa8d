package dev.doppel.vm;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.List;

/**
 * What a run directory says about its VM, written at start so that another process (the CLI's
 * {@code vm list}, {@code vm stop}, {@code qmp}) can find and address a VM it did not start.
 */
public record VmRecord(String name, long pid, String accelerator, String qemu, List<String> argv, long startedAtMillis) {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    void writeTo(VmRunDir dir) {
        try {
            Files.write(dir.specFile(), MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(this));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + dir.specFile(), e);
        }
    }

    public static VmRecord readFrom(VmRunDir dir) {
        try {
            return MAPPER.readValue(dir.specFile().toFile(), VmRecord.class);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read VM record " + dir.specFile(), e);
        }
    }

    /** Whether the recorded QEMU process still runs (and is still a QEMU, not a recycled pid). */
    public boolean alive() {
        return ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                .flatMap(h -> h.info().command())
                .map(cmd -> cmd.contains("qemu"))
                .orElse(false);
    }
}

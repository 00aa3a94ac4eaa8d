package dev.doppel.qmp;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("unit")
class FileDescriptorsTest {

    @TempDir
    Path dir;

    @Test
    void openPipeAndClose() throws Exception {
        int fd = FileDescriptors.openForWriting(dir.resolve("f"));
        assertTrue(fd > 2);
        FileDescriptors.close(fd);
        assertThrows(IOException.class, () -> FileDescriptors.close(fd), "double close is reported");
        int[] p = FileDescriptors.pipe();
        assertTrue(p[0] > 2 && p[1] > 2 && p[0] != p[1]);
        FileDescriptors.close(p[0]);
        FileDescriptors.close(p[1]);
        IOException e = assertThrows(IOException.class, () -> FileDescriptors.openReadOnly(dir.resolve("missing")));
        assertTrue(e.getMessage().contains("No such file or directory"), e.getMessage());
    }

    @Test
    void numberOfAJdkDescriptorOrAClearError() throws Exception {
        Path f = dir.resolve("g");
        Files.createFile(f);
        try (FileOutputStream out = new FileOutputStream(f.toFile())) {
            try {
                assertTrue(FileDescriptors.of(out.getFD()) > 2);
            } catch (UnsupportedOperationException e) {
                assertTrue(e.getMessage().contains("--add-opens java.base/java.io=ALL-UNNAMED"), e.getMessage());
            }
        }
    }
}

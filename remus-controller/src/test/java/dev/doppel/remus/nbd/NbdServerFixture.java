package dev.doppel.remus.nbd;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/** An NbdServer on loopback exporting an EpochDisk over a raw image of random base contents. */
abstract class NbdServerFixture {
    @TempDir
    Path dir;
    Path image;
    byte[] base;
    EpochDisk disk;
    NbdServer server;

    /** Image size in bytes. */
    abstract int size();

    /** Seed of the image's random base contents. */
    abstract long seed();

    @BeforeEach
    void startServer() throws IOException {
        base = new byte[size()];
        new Random(seed()).nextBytes(base);
        image = Files.write(dir.resolve("backup.img"), base);
        disk = EpochDisk.openRaw(image);
        server = NbdServer.start("disk0", disk, new InetSocketAddress("127.0.0.1", 0));
    }
}

package dev.doppel.clone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.doppel.clone.disk.DiskImage;
import dev.doppel.clone.memory.GenerationFile;
import dev.doppel.clone.memory.GenerationStore;
import dev.doppel.clone.net.CloneAddress;
import dev.doppel.hostnet.HostCommand;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a fork family shares and frees: generation files, overlay chains, derived addresses. */
class ForkResourcesTest {
    @TempDir Path tmp;

    @Test
    void generationFileIsDeletedWithItsLastUserAndFrozenReadOnly() throws Exception {
        GenerationStore store = new GenerationStore(tmp.resolve("gens"));
        GenerationFile gen = store.create();
        Files.write(gen.path(), new byte[4096]);
        gen.acquire();
        gen.acquire();
        gen.freeze();
        assertEquals("r--------", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(gen.path())));
        gen.release();
        assertTrue(Files.exists(gen.path()), "one user left");
        gen.release();
        assertFalse(Files.exists(gen.path()), "deleted with the last user");
        assertThrows(IllegalStateException.class, gen::acquire, "a freed generation cannot be mapped again");
        assertThrows(IllegalStateException.class, gen::release);
    }

    @Test
    void overlayChainFreesLeavesThenBackingButNeverTheBase() throws Exception {
        Path basePath = tmp.resolve("base.qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", basePath.toString(), "16M");
        DiskImage base = DiskImage.base(basePath, "qcow2");
        base.acquire();                                        // the root VM's process
        DiskImage mid = DiskImage.overlay(tmp.resolve("mid.qcow2"), base);
        mid.acquire();                                         // the parent's next process
        DiskImage leaf = DiskImage.overlay(tmp.resolve("leaf.qcow2"), mid);
        leaf.acquire();                                        // a clone of that parent
        assertTrue(HostCommand.run("qemu-img", "info", leaf.path().toString()).contains("mid.qcow2"), "leaf backs onto mid");

        mid.release();                                         // the parent ended; its clone still needs mid
        assertTrue(Files.exists(mid.path()));
        leaf.release();                                        // the clone ended: leaf, then mid go
        assertFalse(Files.exists(leaf.path()));
        assertFalse(Files.exists(mid.path()));
        base.release();
        assertTrue(Files.exists(basePath), "the user's base image is never deleted");
    }

    @Test
    void keptOverlaySurvivesItsUsers() throws Exception {
        Path basePath = tmp.resolve("b.qcow2");
        HostCommand.run("qemu-img", "create", "-q", "-f", "qcow2", basePath.toString(), "16M");
        DiskImage base = DiskImage.base(basePath, "qcow2");
        DiskImage leaf = DiskImage.overlay(tmp.resolve("kept.qcow2"), base);
        leaf.keep();
        leaf.acquire();
        leaf.release();
        assertTrue(Files.exists(leaf.path()));
    }

    @Test
    void addressesAreUniqueAcrossForksAndWithinRange() {
        Set<String> ips = new HashSet<>();
        Set<String> macs = new HashSet<>();
        for (int f = 0; f <= 3; f++) {
            for (int k = 1; k <= CloneAddress.MAX_CLONE_ID; k++) {
                CloneAddress a = new CloneAddress(f, k);
                assertTrue(ips.add(a.ip()), "duplicate " + a.ip());
                assertTrue(macs.add(a.mac()), "duplicate " + a.mac());
                assertTrue(a.mac().startsWith("52:54:00:77:"));
            }
        }
        assertEquals("10.77.0.1/16", CloneAddress.ROOT.cidr());
        assertEquals("52:54:00:77:0c:22", new CloneAddress(12, 34).mac());
        assertThrows(IllegalArgumentException.class, () -> new CloneAddress(1, 0));
        assertThrows(IllegalArgumentException.class, () -> new CloneAddress(256, 1));
        assertThrows(IllegalArgumentException.class, () -> new CloneAddress(1, 255));
    }

    @Test
    void exampleDataSetHeaderStatesItsOwnLength() {
        for (int count : new int[] {1, 9, 10, 999, 20_000}) {
            String text = ExampleDataSet.text(count);
            String[] header = text.substring(0, text.indexOf('\n')).split(" ");
            assertEquals(count, Integer.parseInt(header[0]));
            assertEquals(text.length(), Integer.parseInt(header[1]), "BYTES for count " + count);
            assertEquals(count + 1, text.split("\n").length);
        }
        assertEquals(200_010_000L, ExampleDataSet.expectedSum(20_000));
    }
}

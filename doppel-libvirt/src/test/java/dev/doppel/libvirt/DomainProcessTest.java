package dev.doppel.libvirt;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DomainProcessTest {

    @Test
    void aQemuIsRecognisedByTheUuidLibvirtPassesIt() {
        List<String> argv = List.of("/usr/bin/qemu-system-x86_64", "-name", "guest=web1", "-uuid",
                "69231be4-2191-46a3-af7a-681a89ff9ee4", "-m", "128");
        assertTrue(DomainProcess.carriesUuid(argv, "69231BE4-2191-46a3-af7a-681a89ff9ee4"));
        assertFalse(DomainProcess.carriesUuid(argv, "69231be4-2191-46a3-af7a-681a89ff9ee5"));
        assertFalse(DomainProcess.carriesUuid(List.of("qemu-system-x86_64", "-uuid"), "x"), "no value after -uuid");
        assertFalse(DomainProcess.carriesUuid(List.of("qemu-system-x86_64", "-name", "69231be4-2191-46a3-af7a-681a89ff9ee4"),
                "69231be4-2191-46a3-af7a-681a89ff9ee4"), "only the -uuid argument counts");
    }
}

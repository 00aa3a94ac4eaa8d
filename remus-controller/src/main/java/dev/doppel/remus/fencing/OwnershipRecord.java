package dev.doppel.remus.fencing;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;

/**
 * Who owns a protected VM, as ZooKeeper stores it ({@code /doppel/vms/<vm>/record}).
 *
 * @param owner  the holder that may run the VM (e.g. {@code primary@10.83.1.1}, {@code backup@10.83.1.2})
 * @param token  the owner's fencing token: the creation zxid of its lease node
 * @param backup the backup store that holds a committed copy the owner's output never ran ahead of,
 *               or null while the VM runs unprotected: only that store may take the VM over
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record OwnershipRecord(String owner, long token, String backup) {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    byte[] toBytes() {
        try {
            return MAPPER.writeValueAsBytes(this);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static OwnershipRecord parse(String vm, byte[] data) throws FencingException {
        try {
            OwnershipRecord r = MAPPER.readValue(data, OwnershipRecord.class);
            if (r.owner() == null) {
                throw new IOException("no owner");
            }
            return r;
        } catch (IOException e) {
            throw new FencingException(vm, "the ownership record is unreadable: " + e.getMessage(), e);
        }
    }

    OwnershipRecord withBackup(String store) {
        return new OwnershipRecord(owner, token, store);
    }
}

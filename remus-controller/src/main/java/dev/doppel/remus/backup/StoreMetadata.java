package dev.doppel.remus.backup;

import dev.doppel.remus.stream.RamBlock;
import java.util.List;

/**
 * What a restore must reproduce exactly, learnt from the protected VM's initial stream: machine
 * type, page size, RAM blocks (names, sizes, guest addresses when the stream had them), and the
 * header of the RAM section.
 */
public record StoreMetadata(String machineType, int pageSize, List<RamBlock> blocks,
                            int ramSectionId, int ramInstanceId, int ramVersion) {
    /** Block id of the guest's main RAM, which a restore maps from the store's memory file. */
    public static final String MAIN_BLOCK = "pc.ram";

    public StoreMetadata {
        blocks = List.copyOf(blocks);
    }

    /** Index of {@link #MAIN_BLOCK}, else of the largest block. */
    public int mainBlockIndex() {
        int best = 0;
        for (int i = 0; i < blocks.size(); i++) {
            if (blocks.get(i).name().equals(MAIN_BLOCK)) {
                return i;
            }
            if (blocks.get(i).usedLength() > blocks.get(best).usedLength()) {
                best = i;
            }
        }
        return best;
    }
}

package dev.doppel.clone.pageserver.multicast;

/**
 * The two datagrams of multicast distribution (big-endian):
 * <pre>
 *   request  (host → origin, unicast):   u32 REQUEST_MAGIC, u64 page offset in the RAM block
 *   page     (origin → group, multicast): u32 PAGE_MAGIC, u64 page offset, u8 flags, [4096 bytes]
 * </pre>
 * flags bit 0: the page is all zero (no data follows). A page datagram is larger than the MTU and
 * travels as IP fragments; losing one loses the datagram, and the host asks again.
 */
final class PageDatagrams {
    static final int REQUEST_MAGIC = 0x44504d52;   // "DPMR"
    static final int PAGE_MAGIC = 0x44504d50;      // "DPMP"
    static final int REQUEST_BYTES = 12;
    static final int PAGE_HEADER_BYTES = 13;
    static final int FLAG_ZERO = 1;
    static final int PAGE_SIZE = 4096;

    private PageDatagrams() {
    }
}

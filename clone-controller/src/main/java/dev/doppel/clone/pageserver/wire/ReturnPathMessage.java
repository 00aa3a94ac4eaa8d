package dev.doppel.clone.pageserver.wire;

/** One message a postcopy destination sends on the return path (migration.c {@code migrate_send_rp_*}). */
public sealed interface ReturnPathMessage {
    /**
     * REQ_PAGES_ID / REQ_PAGES: "send me these bytes of this block". {@code block} is the name the
     * destination gave last when it did not repeat it (QEMU's {@code mis->last_rb}).
     */
    record PageRequest(String block, long offset, int length) implements ReturnPathMessage {
    }

    /** RECV_BITMAP: the block's received bitmap, one bit per page, bit set = the page arrived. */
    record ReceivedBitmap(String block, long[] bits) implements ReturnPathMessage {
        public boolean received(int page) {
            return (bits[page >>> 6] & (1L << (page & 63))) != 0;
        }
    }

    /** RESUME_ACK: the destination is ready to continue after {@code migrate-recover}. */
    record ResumeAck(int value) implements ReturnPathMessage {
    }

    /** SHUT: the destination has finished with the return path; 0 = success. */
    record Shut(int status) implements ReturnPathMessage {
    }

    /** PONG / SWITCHOVER_ACK: answers to things the page server never asks; read and dropped. */
    record Ignored(int type) implements ReturnPathMessage {
    }
}

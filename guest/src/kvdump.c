/*
 * kvdump - prints the records that kvserver --disk wrote.  Runs in the guest
 * (on /dev/vdb) and on the host (the same static binary) on a raw image;
 * callers convert qcow2 with "qemu-img convert -O raw" first.
 *
 * Output: "<seq> <key> <value>" per valid record in block order, then
 *         "records=<n> last_seq=<n> bad=<n>"
 * bad counts non-empty blocks that are not a valid record for their position
 * (torn write, wrong seq, bad crc).  Empty (all-zero) blocks are not counted;
 * a gap shows as records < last_seq.  Details of bad blocks go to stderr.
 * Exit status: 0 if the header is valid and bad == 0, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkv.h"

#define CHUNK_BLOCKS 256

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: kvdump IMAGE_OR_DEV\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "kvdump: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    struct stat st;
    uint64_t size = 0;
    if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
            size = 0;
    } else {
        size = (uint64_t)st.st_size;
    }

    static uint8_t buf[CHUNK_BLOCKS * DKV_BLOCK];
    uint64_t nblocks = size / DKV_BLOCK, records = 0, last_seq = 0, bad = 0;
    int header_ok = 0;

    if (pread(fd, buf, DKV_BLOCK, 0) == DKV_BLOCK && dkv_header_ok(buf))
        header_ok = 1;
    else
        fprintf(stderr, "kvdump: no valid DKVH header in block 0\n");

    uint64_t b = 1;
    while (header_ok && b < nblocks) {
        /* Skip holes of sparse images cheaply; a block device or a filesystem
         * without SEEK_DATA simply reads everything. */
        off_t data = lseek(fd, (off_t)(b * DKV_BLOCK), SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break; /* nothing but holes up to the end */
        if (data > (off_t)(b * DKV_BLOCK))
            b = (uint64_t)data / DKV_BLOCK;
        if (b >= nblocks)
            break;
        uint64_t n = nblocks - b < CHUNK_BLOCKS ? nblocks - b : CHUNK_BLOCKS;
        ssize_t got = pread(fd, buf, n * DKV_BLOCK, (off_t)(b * DKV_BLOCK));
        if (got <= 0) {
            if (got < 0)
                fprintf(stderr, "kvdump: read at block %" PRIu64 ": %s\n", b, strerror(errno));
            break;
        }
        n = (uint64_t)got / DKV_BLOCK;
        if (n == 0)
            break;
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *blk = buf + i * DKV_BLOCK;
            const char *k, *v;
            size_t kl, vl;
            if (dkv_all_zero(blk))
                continue;
            if (dkv_parse_record(blk, b + i, &k, &kl, &v, &vl) < 0) {
                bad++;
                fprintf(stderr, "kvdump: bad block %" PRIu64 "\n", b + i);
                continue;
            }
            printf("%" PRIu64 " %.*s %.*s\n", b + i, (int)kl, k, (int)vl, v);
            records++;
            last_seq = b + i;
        }
        b += n;
    }
    printf("records=%" PRIu64 " last_seq=%" PRIu64 " bad=%" PRIu64 "\n", records, last_seq, bad);
    return (header_ok && bad == 0) ? 0 : 1;
}

/*
 * dkv.h - on-disk record format shared by kvserver (writer, guest) and kvdump
 * (reader, guest or host).
 *
 * The disk is an array of 4096-byte blocks; block 0 is a header, block s holds
 * the PUT with sequence number s.  All integers are little-endian.
 *
 *   header (block 0):  "DKVH" | u32 version (=1) | zeros ... | u32 crc32
 *   record (block s):  "DKV1" | u64 seq | u16 keylen | u16 vallen | key | value
 *                      | zeros ... | u32 crc32
 *
 * crc32 is the IEEE/zlib CRC-32 (same as java.util.zip.CRC32) of bytes
 * 0..4091, stored in bytes 4092..4095.  A record is valid only if magic, crc,
 * lengths and seq == block index all agree, so a torn or misplaced write is
 * never mistaken for data.
 */
#ifndef DOPPEL_DKV_H
#define DOPPEL_DKV_H

#include <stdint.h>
#include <string.h>

#define DKV_BLOCK 4096
#define DKV_VERSION 1
#define DKV_MAX_FIELD 200

static inline uint32_t dkv_crc32(const uint8_t *d, size_t n)
{
    static uint32_t table[256];
    static int init;
    uint32_t c = 0xFFFFFFFFu;
    if (!init) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t x = i;
            for (int k = 0; k < 8; k++)
                x = (x & 1) ? (0xEDB88320u ^ (x >> 1)) : (x >> 1);
            table[i] = x;
        }
        init = 1;
    }
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ d[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static inline void dkv_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void dkv_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void dkv_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t dkv_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t dkv_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t dkv_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void dkv_seal(uint8_t *b) { dkv_put32(b + DKV_BLOCK - 4, dkv_crc32(b, DKV_BLOCK - 4)); }
static inline int dkv_crc_ok(const uint8_t *b)
{
    return dkv_get32(b + DKV_BLOCK - 4) == dkv_crc32(b, DKV_BLOCK - 4);
}

static inline void dkv_make_header(uint8_t *b)
{
    memset(b, 0, DKV_BLOCK);
    memcpy(b, "DKVH", 4);
    dkv_put32(b + 4, DKV_VERSION);
    dkv_seal(b);
}

static inline int dkv_header_ok(const uint8_t *b)
{
    return memcmp(b, "DKVH", 4) == 0 && dkv_get32(b + 4) == DKV_VERSION && dkv_crc_ok(b);
}

static inline void dkv_make_record(uint8_t *b, uint64_t seq, const char *k, size_t kl, const char *v,
                                   size_t vl)
{
    memset(b, 0, DKV_BLOCK);
    memcpy(b, "DKV1", 4);
    dkv_put64(b + 4, seq);
    dkv_put16(b + 12, (uint16_t)kl);
    dkv_put16(b + 14, (uint16_t)vl);
    memcpy(b + 16, k, kl);
    memcpy(b + 16 + kl, v, vl);
    dkv_seal(b);
}

/* Validates block b found at block index idx; on success points k and v into b. */
static inline int dkv_parse_record(const uint8_t *b, uint64_t idx, const char **k, size_t *kl,
                                   const char **v, size_t *vl)
{
    if (memcmp(b, "DKV1", 4) != 0 || !dkv_crc_ok(b) || dkv_get64(b + 4) != idx)
        return -1;
    *kl = dkv_get16(b + 12);
    *vl = dkv_get16(b + 14);
    if (*kl == 0 || *vl == 0 || *kl > DKV_MAX_FIELD || *vl > DKV_MAX_FIELD)
        return -1;
    *k = (const char *)b + 16;
    *v = (const char *)b + 16 + *kl;
    return 0;
}

static inline int dkv_all_zero(const uint8_t *b)
{
    for (size_t i = 0; i < DKV_BLOCK; i++)
        if (b[i])
            return 0;
    return 1;
}

#endif

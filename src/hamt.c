/* hamt.c - see hamt.h. */
#include "config.h"

#include "hamt.h"

#include "unixfs_enc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t hamt_murmur3_64(const void *key, size_t len)
{
    const uint8_t *data = key;
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    uint64_t h1 = 0, h2 = 0;
    size_t nblocks = len / 16;
    for (size_t i = 0; i < nblocks; i++) {
        uint64_t k1 = load_le64(data + i * 16), k2 = load_le64(data + i * 16 + 8);
        k1 *= c1;
        k1 = rotl64(k1, 31);
        k1 *= c2;
        h1 ^= k1;
        h1 = rotl64(h1, 27);
        h1 += h2;
        h1 = h1 * 5 + 0x52dce729;
        k2 *= c2;
        k2 = rotl64(k2, 33);
        k2 *= c1;
        h2 ^= k2;
        h2 = rotl64(h2, 31);
        h2 += h1;
        h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t *tail = data + nblocks * 16;
    uint64_t k1 = 0, k2 = 0;
    switch (len & 15) {
    case 15:
        k2 ^= (uint64_t)tail[14] << 48; /* fall through */
    case 14:
        k2 ^= (uint64_t)tail[13] << 40; /* fall through */
    case 13:
        k2 ^= (uint64_t)tail[12] << 32; /* fall through */
    case 12:
        k2 ^= (uint64_t)tail[11] << 24; /* fall through */
    case 11:
        k2 ^= (uint64_t)tail[10] << 16; /* fall through */
    case 10:
        k2 ^= (uint64_t)tail[9] << 8; /* fall through */
    case 9:
        k2 ^= (uint64_t)tail[8];
        k2 *= c2;
        k2 = rotl64(k2, 33);
        k2 *= c1;
        h2 ^= k2;
        /* fall through */
    case 8:
        k1 ^= (uint64_t)tail[7] << 56; /* fall through */
    case 7:
        k1 ^= (uint64_t)tail[6] << 48; /* fall through */
    case 6:
        k1 ^= (uint64_t)tail[5] << 40; /* fall through */
    case 5:
        k1 ^= (uint64_t)tail[4] << 32; /* fall through */
    case 4:
        k1 ^= (uint64_t)tail[3] << 24; /* fall through */
    case 3:
        k1 ^= (uint64_t)tail[2] << 16; /* fall through */
    case 2:
        k1 ^= (uint64_t)tail[1] << 8; /* fall through */
    case 1:
        k1 ^= (uint64_t)tail[0];
        k1 *= c1;
        k1 = rotl64(k1, 31);
        k1 *= c2;
        h1 ^= k1;
        break;
    default:
        break;
    }
    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    return h1;
}

int hamt_index(const char *name, size_t len, unsigned depth)
{
    if (depth >= HAMT_MAX_DEPTH)
        return -1;
    uint64_t h = hamt_murmur3_64(name, len);
    return (int)((h >> (56 - 8 * depth)) & 0xff);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int hamt_link_name(const char *name, size_t len, unsigned *bucket, const char **entry,
                   size_t *entry_len)
{
    if (len < 2)
        return -EINVAL;
    int hi = hexval(name[0]), lo = hexval(name[1]);
    if (hi < 0 || lo < 0)
        return -EINVAL;
    *bucket = (unsigned)(hi * 16 + lo);
    *entry = name + 2;
    *entry_len = len - 2;
    return len == 2 ? 0 : 1;
}

/* ---- building ---- */

struct hkey {
    uint64_t hash;
    struct hamt_entry *e;
};

struct hbuild {
    hamt_put_fn put;
    void *ud;
    bool has_mode, has_mtime;
    uint32_t mode;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
};

static int cmp_hkey(const void *a, const void *b)
{
    const struct hkey *x = a, *y = b;
    return (x->hash > y->hash) - (x->hash < y->hash);
}

static unsigned byte_at(uint64_t h, unsigned depth)
{
    return (unsigned)((h >> (56 - 8 * depth)) & 0xff);
}

/* One shard over keys[0..n) (sorted by hash) at depth. */
static int build_shard(struct hbuild *hb, struct hkey *keys, size_t n, unsigned depth,
                       struct cid *out, uint64_t *tsize)
{
    if (depth >= HAMT_MAX_DEPTH)
        return -EIO; /* 64 equal hash bits: boxo cannot store these either */
    /* Per-level scratch on the heap: up to 8 levels deep, ~120 KiB each. */
    struct scratch {
        struct pb_link_out links[HAMT_FANOUT];
        char names[HAMT_FANOUT][3];
        char longnames[HAMT_FANOUT][2 + 256];
        uint8_t sub_cids[HAMT_FANOUT][CID_MAX_MH + 20];
    } *sc = malloc(sizeof *sc);
    uint8_t bitfield[HAMT_FANOUT / 8] = {0};
    size_t nl = 0;
    uint64_t total = 0;
    struct bytebuf d = {0}, b = {0};
    int rc = 0;
    if (!sc)
        return -ENOMEM;
    struct pb_link_out *links = sc->links;
    for (size_t i = 0; i < n && rc == 0;) {
        unsigned idx = byte_at(keys[i].hash, depth);
        size_t j = i + 1;
        while (j < n && byte_at(keys[j].hash, depth) == idx)
            j++;
        bitfield[sizeof bitfield - 1 - idx / 8] |= (uint8_t)(1u << (idx % 8));
        snprintf(sc->names[nl], sizeof sc->names[nl], "%02X", idx);
        if (j - i == 1) {
            const struct hamt_entry *e = keys[i].e;
            if (e->name_len > 255) {
                rc = -ENAMETOOLONG;
                break;
            }
            memcpy(sc->longnames[nl], sc->names[nl], 2);
            memcpy(sc->longnames[nl] + 2, e->name, e->name_len);
            links[nl] = (struct pb_link_out){.hash = e->cid,
                                             .hash_len = e->cid_len,
                                             .name = sc->longnames[nl],
                                             .name_len = 2 + e->name_len,
                                             .tsize = e->tsize};
        } else {
            struct cid sub;
            uint64_t sts;
            rc = build_shard(hb, keys + i, j - i, depth + 1, &sub, &sts);
            int bl = rc == 0 ? cid_to_bytes(&sub, sc->sub_cids[nl], sizeof sc->sub_cids[nl]) : rc;
            if (bl < 0) {
                rc = bl;
                break;
            }
            links[nl] = (struct pb_link_out){.hash = sc->sub_cids[nl],
                                             .hash_len = (size_t)bl,
                                             .name = sc->names[nl],
                                             .name_len = 2,
                                             .tsize = sts};
        }
        total += links[nl].tsize;
        nl++;
        i = j;
    }
    if (rc < 0)
        goto out;
    /* go-bitfield's Bytes(): big-endian, leading zero bytes dropped */
    size_t skip = 0;
    while (skip < sizeof bitfield && bitfield[skip] == 0)
        skip++;
    struct unixfs_fields f = {
        .type = UNIXFS_HAMT_SHARD,
        .data = bitfield + skip,
        .data_len = sizeof bitfield - skip,
        .has_data = true,
        .hash_type = HAMT_HASH_MURMUR3,
        .has_hash_type = true,
        .fanout = HAMT_FANOUT,
        .has_fanout = true,
    };
    if (depth == 0) {
        f.has_mode = hb->has_mode;
        f.mode = hb->mode;
        f.has_mtime = hb->has_mtime;
        f.mtime_sec = hb->mtime_sec;
        f.mtime_nsec = hb->mtime_nsec;
    }
    rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, nl, d.p, d.len, true, &b);
    if (rc == 0)
        rc = hb->put(hb->ud, b.p, b.len, out);
    if (rc == 0)
        *tsize = total + b.len;
out:
    bytebuf_free(&d);
    bytebuf_free(&b);
    free(sc);
    return rc;
}

int hamt_build(struct hamt_entry *entries, size_t n, bool has_mode, uint32_t mode, bool has_mtime,
               int64_t mtime_sec, uint32_t mtime_nsec, hamt_put_fn put, void *ud, struct cid *out,
               uint64_t *tsize)
{
    struct hbuild hb = {.put = put,
                        .ud = ud,
                        .has_mode = has_mode,
                        .mode = mode,
                        .has_mtime = has_mtime,
                        .mtime_sec = mtime_sec,
                        .mtime_nsec = mtime_nsec};
    struct hkey *keys = calloc(n ? n : 1, sizeof *keys);
    if (!keys)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        keys[i].hash = hamt_murmur3_64(entries[i].name, entries[i].name_len);
        keys[i].e = &entries[i];
    }
    qsort(keys, n, sizeof *keys, cmp_hkey);
    int rc = build_shard(&hb, keys, n, 0, out, tsize);
    free(keys);
    return rc;
}

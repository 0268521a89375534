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

int hamt_shard_find(const struct dagpb_node *pb, const char *name, size_t len, unsigned depth,
                    const struct dagpb_link **out)
{
    int idx = hamt_index(name, len, depth);
    if (idx < 0 || depth > HAMT_MAX_DEPTH || pb->nlinks > HAMT_FANOUT)
        return -EAGAIN;
    int kind = -ENOENT;
    for (size_t i = 0; i < pb->nlinks; i++) {
        const struct dagpb_link *lk = &pb->links[i];
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0)
            return -EAGAIN;
        if (bucket != (unsigned)idx)
            continue;
        if (kind != -ENOENT)
            return -EAGAIN;
        if (t == 1 && !(elen == len && memcmp(ename, name, len) == 0))
            return -ENOENT;
        *out = lk;
        kind = t;
    }
    return kind;
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

/* Encode one shard over links[0..n) (bucket order, buckets[i] the bucket of links[i]) and put
 * it. The root shard (depth 0) carries hb's mode and mtime. */
static int encode_shard(const struct hbuild *hb, const struct pb_link_out *links,
                        const unsigned *buckets, size_t n, unsigned depth, struct cid *out,
                        uint64_t *tsize)
{
    uint8_t bitfield[HAMT_FANOUT / 8] = {0};
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        bitfield[sizeof bitfield - 1 - buckets[i] / 8] |= (uint8_t)(1u << (buckets[i] % 8));
        total += links[i].tsize;
    }
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
    struct bytebuf d = {0}, b = {0};
    int rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, n, d.p, d.len, true, &b);
    if (rc == 0)
        rc = hb->put(hb->ud, b.p, b.len, out);
    if (rc == 0)
        *tsize = total + b.len;
    bytebuf_free(&d);
    bytebuf_free(&b);
    return rc;
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
        unsigned buckets[HAMT_FANOUT];
        char names[HAMT_FANOUT][3];
        char longnames[HAMT_FANOUT][2 + 256];
        uint8_t sub_cids[HAMT_FANOUT][CID_MAX_MH + 20];
    } *sc = malloc(sizeof *sc);
    size_t nl = 0;
    int rc = 0;
    if (!sc)
        return -ENOMEM;
    struct pb_link_out *links = sc->links;
    for (size_t i = 0; i < n && rc == 0;) {
        unsigned idx = byte_at(keys[i].hash, depth);
        size_t j = i + 1;
        while (j < n && byte_at(keys[j].hash, depth) == idx)
            j++;
        sc->buckets[nl] = idx;
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
        nl++;
        i = j;
    }
    if (rc == 0)
        rc = encode_shard(hb, links, sc->buckets, nl, depth, out, tsize);
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

/* ---- editing in place ----
 * Setting or removing one name rewrites only the shards on its path (its bucket at each depth),
 * as boxo's Shard.Set and Shard.Remove do: a bucket holding another entry becomes a sub-shard
 * of both, and a sub-shard left with one entry (and no sub-shard) collapses into its parent's
 * bucket. On a canonical HAMT that keeps it canonical, so the result is the one hamt_build
 * gives for the new set of names: the edit costs the path's shards, not the whole directory. */

enum { EDIT_SHARD, EDIT_LEAF, EDIT_EMPTY };

struct hedit {
    const char *name;
    size_t name_len;
    uint64_t hash;
    const uint8_t *cid; /* NULL: remove name */
    size_t cid_len;
    uint64_t tsize;
    hamt_get_fn get;
    struct hbuild hb;
    bool block_est; /* the estimate hamt_entry_est makes */
    int64_t change;
};

/* What an edited sub-shard leaves in its parent's bucket. */
struct hresult {
    int kind;
    struct cid cid; /* EDIT_SHARD: the new shard */
    uint64_t tsize; /* EDIT_SHARD and EDIT_LEAF */
    char name[256]; /* EDIT_LEAF: the one entry left */
    size_t name_len;
    uint8_t bin[CID_MAX_MH + 20];
    size_t bin_len;
};

/* Link names as boxo writes them: two upper-case hex digits, then the entry's name. */
static bool upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int edit_shard(struct hedit *ed, const struct dagpb_node *pb, const struct unixfs_data *u,
                      unsigned depth, struct hresult *res);

/* Remove link at of the n in a shard's three parallel arrays; returns n - 1. */
static size_t drop_link(struct pb_link_out *links, unsigned *buckets, bool *leaf, size_t n,
                        size_t at)
{
    n--;
    memmove(&links[at], &links[at + 1], (n - at) * sizeof *links);
    memmove(&buckets[at], &buckets[at + 1], (n - at) * sizeof *buckets);
    memmove(&leaf[at], &leaf[at + 1], (n - at) * sizeof *leaf);
    return n;
}

/* Edit the sub-shard link lk points to (depth: the sub-shard's). */
static int edit_sub(struct hedit *ed, const uint8_t *hash, size_t hash_len, unsigned depth,
                    struct hresult *res)
{
    struct cid c;
    if (cid_from_bytes(hash, hash_len, &c) < 0 || c.codec != CID_CODEC_DAG_PB)
        return HAMT_REBUILD;
    uint8_t *block = NULL;
    size_t len = 0;
    int rc = ed->get(ed->hb.ud, &c, &block, &len);
    if (rc < 0)
        return rc;
    struct dagpb_node pb;
    struct unixfs_data u;
    if (dagpb_decode(block, len, &pb) < 0) {
        free(block);
        return HAMT_REBUILD;
    }
    rc = pb.has_data && unixfs_decode(pb.data, pb.data_len, &u) == 0
             ? edit_shard(ed, &pb, &u, depth, res)
             : HAMT_REBUILD;
    dagpb_node_free(&pb);
    free(block);
    return rc;
}

static int edit_shard(struct hedit *ed, const struct dagpb_node *pb, const struct unixfs_data *u,
                      unsigned depth, struct hresult *res)
{
    if (depth >= HAMT_MAX_DEPTH || u->type != UNIXFS_HAMT_SHARD || !u->has_fanout ||
        u->fanout != HAMT_FANOUT || u->hash_type != HAMT_HASH_MURMUR3 ||
        pb->nlinks > HAMT_FANOUT)
        return HAMT_REBUILD;
    /* on the heap: up to 8 levels deep, ~20 KiB each */
    struct escratch {
        struct pb_link_out links[HAMT_FANOUT + 1];
        unsigned buckets[HAMT_FANOUT + 1];
        bool leaf[HAMT_FANOUT + 1];
        char leafname[2 + 256];
        char subname[3];
        uint8_t bin[CID_MAX_MH + 20];
        struct hresult sub;
    } *sc = malloc(sizeof *sc);
    if (!sc)
        return -ENOMEM;
    unsigned idx = byte_at(ed->hash, depth);
    size_t n = 0, at = SIZE_MAX, ins = 0;
    int rc = 0;
    for (size_t i = 0; i < pb->nlinks; i++) {
        const struct dagpb_link *lk = &pb->links[i];
        unsigned b;
        const char *en;
        size_t el;
        int t = hamt_link_name(lk->name, lk->name_len, &b, &en, &el);
        /* anything hamt_build would not have written: rebuild it whole */
        if (t < 0 || !upper_hex(lk->name[0]) || !upper_hex(lk->name[1]) || el > 255 ||
            (n && b <= sc->buckets[n - 1])) {
            rc = HAMT_REBUILD;
            goto out;
        }
        /* an entry out of its place (a crafted HAMT: a shard linked from several buckets) */
        if (t == 1) {
            uint64_t h = hamt_murmur3_64(en, el);
            if (byte_at(h, depth) != b ||
                (depth && (h >> (64 - 8 * depth)) != (ed->hash >> (64 - 8 * depth)))) {
                rc = HAMT_REBUILD;
                goto out;
            }
        }
        sc->links[n] = (struct pb_link_out){.hash = lk->hash,
                                            .hash_len = lk->hash_len,
                                            .name = lk->name,
                                            .name_len = lk->name_len,
                                            .tsize = lk->tsize};
        sc->buckets[n] = b;
        sc->leaf[n] = t == 1;
        if (b < idx)
            ins = n + 1;
        if (b == idx)
            at = n;
        n++;
    }
    snprintf(sc->subname, sizeof sc->subname, "%02X", idx);
    memcpy(sc->leafname, sc->subname, 2);
    if (at == SIZE_MAX) { /* an empty bucket */
        if (!ed->cid) {
            rc = -ENOENT;
            goto out;
        }
        memmove(&sc->links[ins + 1], &sc->links[ins], (n - ins) * sizeof sc->links[0]);
        memmove(&sc->buckets[ins + 1], &sc->buckets[ins], (n - ins) * sizeof sc->buckets[0]);
        memmove(&sc->leaf[ins + 1], &sc->leaf[ins], (n - ins) * sizeof sc->leaf[0]);
        memcpy(sc->leafname + 2, ed->name, ed->name_len);
        sc->links[ins] = (struct pb_link_out){.hash = ed->cid,
                                              .hash_len = ed->cid_len,
                                              .name = sc->leafname,
                                              .name_len = 2 + ed->name_len,
                                              .tsize = ed->tsize};
        sc->buckets[ins] = idx;
        sc->leaf[ins] = true;
        n++;
        ed->change += (int64_t)hamt_entry_est(ed->block_est, ed->name_len, ed->cid_len, ed->tsize);
    } else if (sc->leaf[at]) {
        struct pb_link_out *lk = &sc->links[at];
        const char *en = lk->name + 2;
        size_t el = lk->name_len - 2;
        if (el == ed->name_len && memcmp(en, ed->name, el) == 0) {
            ed->change -= (int64_t)hamt_entry_est(ed->block_est, el, lk->hash_len, lk->tsize);
            if (!ed->cid) {
                n = drop_link(sc->links, sc->buckets, sc->leaf, n, at);
            } else {
                lk->hash = ed->cid;
                lk->hash_len = ed->cid_len;
                lk->tsize = ed->tsize;
                ed->change +=
                    (int64_t)hamt_entry_est(ed->block_est, ed->name_len, ed->cid_len, ed->tsize);
            }
        } else { /* another name in the bucket: a sub-shard of both */
            if (!ed->cid) {
                rc = -ENOENT;
                goto out;
            }
            struct hamt_entry two[2] = {
                {.name = en, .name_len = el, .cid = lk->hash, .cid_len = lk->hash_len,
                 .tsize = lk->tsize},
                {.name = ed->name, .name_len = ed->name_len, .cid = ed->cid,
                 .cid_len = ed->cid_len, .tsize = ed->tsize}};
            struct hkey keys[2] = {{.hash = hamt_murmur3_64(en, el), .e = &two[0]},
                                   {.hash = ed->hash, .e = &two[1]}};
            if (keys[0].hash > keys[1].hash) {
                struct hkey k = keys[0];
                keys[0] = keys[1];
                keys[1] = k;
            }
            struct cid sub;
            uint64_t sts;
            rc = build_shard(&ed->hb, keys, 2, depth + 1, &sub, &sts);
            int bl = rc == 0 ? cid_to_bytes(&sub, sc->bin, sizeof sc->bin) : rc;
            if (bl < 0) {
                rc = bl;
                goto out;
            }
            *lk = (struct pb_link_out){.hash = sc->bin,
                                       .hash_len = (size_t)bl,
                                       .name = sc->subname,
                                       .name_len = 2,
                                       .tsize = sts};
            sc->leaf[at] = false;
            ed->change +=
                (int64_t)hamt_entry_est(ed->block_est, ed->name_len, ed->cid_len, ed->tsize);
        }
    } else { /* a sub-shard: edit it */
        struct pb_link_out *lk = &sc->links[at];
        if (lk->name_len != 2) {
            rc = HAMT_REBUILD;
            goto out;
        }
        rc = edit_sub(ed, lk->hash, lk->hash_len, depth + 1, &sc->sub);
        if (rc != 0)
            goto out;
        if (sc->sub.kind == EDIT_SHARD) {
            int bl = cid_to_bytes(&sc->sub.cid, sc->bin, sizeof sc->bin);
            if (bl < 0) {
                rc = bl;
                goto out;
            }
            lk->hash = sc->bin;
            lk->hash_len = (size_t)bl;
            lk->tsize = sc->sub.tsize;
        } else if (sc->sub.kind == EDIT_LEAF) {
            memcpy(sc->leafname + 2, sc->sub.name, sc->sub.name_len);
            *lk = (struct pb_link_out){.hash = sc->sub.bin,
                                       .hash_len = sc->sub.bin_len,
                                       .name = sc->leafname,
                                       .name_len = 2 + sc->sub.name_len,
                                       .tsize = sc->sub.tsize};
            sc->leaf[at] = true;
        } else {
            n = drop_link(sc->links, sc->buckets, sc->leaf, n, at);
        }
    }
    if (depth > 0 && n == 0) {
        res->kind = EDIT_EMPTY;
    } else if (depth > 0 && n == 1 && sc->leaf[0]) {
        const struct pb_link_out *lk = &sc->links[0];
        if (lk->hash_len > sizeof res->bin) {
            rc = HAMT_REBUILD;
            goto out;
        }
        res->kind = EDIT_LEAF;
        res->name_len = lk->name_len - 2;
        memcpy(res->name, lk->name + 2, res->name_len);
        res->bin_len = lk->hash_len;
        memcpy(res->bin, lk->hash, lk->hash_len);
        res->tsize = lk->tsize;
    } else {
        res->kind = EDIT_SHARD;
        rc = encode_shard(&ed->hb, sc->links, sc->buckets, n, depth, &res->cid, &res->tsize);
    }
out:
    free(sc);
    return rc;
}

int hamt_set(const struct dagpb_node *root, const struct unixfs_data *u, const char *name,
             size_t name_len, const uint8_t *cid, size_t cid_len, uint64_t tsize,
             hamt_get_fn get, hamt_put_fn put, void *ud, bool block_est, struct cid *out,
             uint64_t *out_tsize, int64_t *change)
{
    if (name_len == 0 || name_len > 255 || (cid && cid_len > CID_MAX_MH + 20))
        return HAMT_REBUILD;
    struct hedit ed = {.name = name,
                       .name_len = name_len,
                       .hash = hamt_murmur3_64(name, name_len),
                       .cid = cid,
                       .cid_len = cid_len,
                       .tsize = tsize,
                       .get = get,
                       .block_est = block_est,
                       .hb = {.put = put,
                              .ud = ud,
                              .has_mode = u->has_mode,
                              .mode = u->mode,
                              .has_mtime = u->has_mtime,
                              .mtime_sec = u->mtime_sec,
                              .mtime_nsec = u->mtime_nsec}};
    struct hresult res;
    int rc = edit_shard(&ed, root, u, 0, &res);
    if (rc == 0) {
        *out = res.cid;
        *out_tsize = res.tsize;
        *change = ed.change;
    }
    return rc;
}

/* Bytes of v as a varint (varint_encode writes at most 10). */
static uint64_t varint_size(uint64_t v)
{
    uint8_t buf[10];
    return varint_encode(v, buf);
}

uint64_t hamt_entry_est(bool block_est, size_t name_len, size_t cid_len, uint64_t tsize)
{
    if (!block_est)
        return (uint64_t)name_len + cid_len;
    /* PBLink: Hash (tag, length, bytes), Name (tag, length, bytes), Tsize (tag, varint); in
     * PBNode.Links: tag, length, the link. */
    uint64_t link = 1 + varint_size(cid_len) + cid_len + 1 + varint_size(name_len) + name_len +
                    1 + varint_size(tsize);
    return 1 + varint_size(link) + link;
}

uint64_t hamt_dir_data_est(bool has_mode, uint32_t mode, bool has_mtime, int64_t mtime_sec,
                           uint32_t mtime_nsec)
{
    uint64_t inner = 2; /* Type = Directory */
    if (has_mode && mode != 0)
        inner += 1 + varint_size(mode);
    if (has_mtime) {
        uint64_t m = mtime_sec >= 0 ? 1 + varint_size((uint64_t)mtime_sec) : 1 + 10;
        if (mtime_nsec > 0)
            m += 1 + 4; /* fixed32 */
        inner += 1 + varint_size(m) + m;
    }
    return 1 + varint_size(inner) + inner;
}

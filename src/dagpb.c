/* dagpb.c - see dagpb.h.
 *
 * dag-pb (https://ipld.io/specs/codecs/dag-pb/spec/):
 *   PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
 *   PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
 * UnixFS (https://specs.ipfs.tech/unixfs/):
 *   Data { required DataType Type = 1; optional bytes Data = 2; optional uint64 filesize = 3;
 *          repeated uint64 blocksizes = 4; optional uint64 hashType = 5;
 *          optional uint64 fanout = 6; optional uint32 mode = 7; optional UnixTime mtime = 8; }
 *   UnixTime { required int64 Seconds = 1; optional fixed32 FractionalNanoseconds = 2; }
 *
 * Every length is checked against what is left of the buffer before use. dag-pb is decoded
 * strictly (it is content-addressed: one block, one meaning); UnixFS skips unknown fields so that
 * later versions of the format still decode.
 */
#include "config.h"

#include "dagpb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
    WT_VARINT = 0,
    WT_FIXED64 = 1,
    WT_LEN = 2,
    WT_FIXED32 = 5,
};

#define PB_VARINT_MAX 10
#define PB_FIELD_MAX 0x1fffffff

struct pb_buf {
    const uint8_t *p;
    const uint8_t *end;
};

static void pb_init(struct pb_buf *b, const uint8_t *data, size_t len)
{
    b->p = data;
    b->end = data ? data + len : data;
}

static size_t pb_left(const struct pb_buf *b)
{
    return b->p == b->end ? 0 : (size_t)(b->end - b->p);
}

/* Protobuf base-128 varint, at most 10 bytes; the 10th byte may only carry the 64th bit. */
static int pb_varint(struct pb_buf *b, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < PB_VARINT_MAX; i++) {
        if (b->p >= b->end)
            return -EINVAL;
        uint8_t byte = *b->p++;
        if (i == PB_VARINT_MAX - 1 && byte > 1)
            return -EINVAL;
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -EINVAL;
}

static int pb_key(struct pb_buf *b, uint32_t *field, unsigned *wt)
{
    uint64_t k;

    if (pb_varint(b, &k) < 0)
        return -EINVAL;
    if ((k >> 3) == 0 || (k >> 3) > PB_FIELD_MAX)
        return -EINVAL;
    *field = (uint32_t)(k >> 3);
    *wt = (unsigned)(k & 7);
    return 0;
}

/* Length-delimited field: the bytes are returned in place. */
static int pb_bytes(struct pb_buf *b, const uint8_t **p, size_t *len)
{
    uint64_t n;

    if (pb_varint(b, &n) < 0 || n > pb_left(b))
        return -EINVAL;
    *p = b->p;
    *len = (size_t)n;
    b->p += n;
    return 0;
}

static int pb_fixed32(struct pb_buf *b, uint32_t *out)
{
    if (pb_left(b) < 4)
        return -EINVAL;
    *out = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 |
           (uint32_t)b->p[3] << 24;
    b->p += 4;
    return 0;
}

/* Skip a field's value of wire type wt. Groups (3, 4) and reserved types are refused. */
static int pb_skip(struct pb_buf *b, unsigned wt)
{
    uint64_t v;
    const uint8_t *p;
    size_t n;

    switch (wt) {
    case WT_VARINT:
        return pb_varint(b, &v);
    case WT_FIXED64:
        if (pb_left(b) < 8)
            return -EINVAL;
        b->p += 8;
        return 0;
    case WT_LEN:
        return pb_bytes(b, &p, &n);
    case WT_FIXED32:
        if (pb_left(b) < 4)
            return -EINVAL;
        b->p += 4;
        return 0;
    default:
        return -EINVAL;
    }
}

/* ---- dag-pb ------------------------------------------------------------------------------- */

/* No CID is shorter: version, codec, multihash code and digest length, one byte each. */
#define LINK_HASH_MIN 4
/* Lengths inside a block fit a link's 30-bit name_len. */
#define DAGPB_MAX_LEN (1u << 30)

static int decode_link(const uint8_t *p, size_t len, struct dagpb_link *l)
{
    struct pb_buf b;
    bool has_hash = false;
    const uint8_t *v;
    size_t n;

    memset(l, 0, sizeof *l);
    pb_init(&b, p, len);
    while (pb_left(&b) > 0) {
        uint32_t field;
        unsigned wt;

        if (pb_key(&b, &field, &wt) < 0)
            return -EINVAL;
        switch (field) {
        case 1:
            if (wt != WT_LEN || has_hash || pb_bytes(&b, &v, &n) < 0 || n < LINK_HASH_MIN)
                return -EINVAL;
            l->hash = v;
            l->hash_len = (uint32_t)n;
            has_hash = true;
            break;
        case 2:
            if (wt != WT_LEN || l->has_name || pb_bytes(&b, &v, &n) < 0)
                return -EINVAL;
            l->name = (const char *)v;
            l->name_len = (uint32_t)n;
            l->has_name = 1;
            break;
        case 3:
            if (wt != WT_VARINT || l->has_tsize || pb_varint(&b, &l->tsize) < 0)
                return -EINVAL;
            l->has_tsize = 1;
            break;
        default:
            return -EINVAL;
        }
    }
    /* The dag-pb data model requires a Hash in every link. */
    return has_hash ? 0 : -EINVAL;
}

/* One pass over the block: validate it and count its links (links == NULL), or fill links,
 * which has room for every one of them. */
static int decode_pass(const uint8_t *block, size_t len, struct dagpb_node *out,
                       struct dagpb_link *links)
{
    struct pb_buf b;

    pb_init(&b, block, len);
    out->nlinks = 0;
    out->has_data = false;
    /* Canonical blocks put all Links (2) before Data (1); either order is accepted. */
    while (pb_left(&b) > 0) {
        uint32_t field;
        unsigned wt;
        const uint8_t *p;
        size_t n;
        struct dagpb_link l;

        if (pb_key(&b, &field, &wt) < 0 || wt != WT_LEN || pb_bytes(&b, &p, &n) < 0)
            return -EINVAL;
        if (field == 1) {
            if (out->has_data)
                return -EINVAL;
            out->data = p;
            out->data_len = n;
            out->has_data = true;
        } else if (field == 2) {
            if (decode_link(p, n, &l) < 0)
                return -EINVAL;
            if (links)
                links[out->nlinks] = l;
            out->nlinks++;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

int dagpb_decode(const uint8_t *block, size_t len, struct dagpb_node *out)
{
    struct dagpb_link *links;
    size_t count;
    int r;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if ((!block && len > 0) || len > DAGPB_MAX_LEN)
        return -EINVAL;
    /* Counting first costs a second parse but no reallocation: a block of tiny links held
     * ~60 bytes per link in a doubling array (and twice that while it grew). */
    r = decode_pass(block, len, out, NULL);
    if (r < 0 || out->nlinks == 0) {
        if (r < 0)
            memset(out, 0, sizeof *out);
        return r;
    }
    count = out->nlinks;
    links = malloc(count * sizeof *links);
    if (!links) {
        memset(out, 0, sizeof *out);
        return -ENOMEM;
    }
    r = decode_pass(block, len, out, links);
    if (r < 0 || out->nlinks != count) { /* cannot happen: the same bytes decoded again */
        free(links);
        memset(out, 0, sizeof *out);
        return -EINVAL;
    }
    out->links = links;
    return 0;
}

void dagpb_node_free(struct dagpb_node *n)
{
    if (!n)
        return;
    free(n->links);
    memset(n, 0, sizeof *n);
}

/* ---- UnixFS ------------------------------------------------------------------------------- */

static int decode_mtime(const uint8_t *p, size_t len, struct unixfs_data *u)
{
    struct pb_buf b;
    bool has_sec = false, has_nsec = false;
    uint64_t v;

    pb_init(&b, p, len);
    while (pb_left(&b) > 0) {
        uint32_t field;
        unsigned wt;

        if (pb_key(&b, &field, &wt) < 0)
            return -EINVAL;
        if (field == 1) {
            if (wt != WT_VARINT || has_sec || pb_varint(&b, &v) < 0)
                return -EINVAL;
            /* int64 is sent as its two's complement bit pattern */
            u->mtime_sec = (int64_t)v;
            has_sec = true;
        } else if (field == 2) {
            if (wt != WT_FIXED32 || has_nsec || pb_fixed32(&b, &u->mtime_nsec) < 0)
                return -EINVAL;
            if (u->mtime_nsec > 999999999)
                return -EINVAL;
            has_nsec = true;
        } else if (pb_skip(&b, wt) < 0) {
            return -EINVAL;
        }
    }
    if (!has_sec)
        return -EINVAL;
    u->has_mtime = true;
    return 0;
}

/* Count (and, if want != NULL, fetch entry idx of) the blocksizes while decoding everything. */
static int unixfs_scan(const uint8_t *data, size_t len, struct unixfs_data *u, size_t idx,
                       uint64_t *want)
{
    struct pb_buf b;
    bool has_type = false, has_hash_type = false;
    uint64_t v;

    memset(u, 0, sizeof *u);
    if (!data && len > 0)
        return -EINVAL;
    pb_init(&b, data, len);
    while (pb_left(&b) > 0) {
        uint32_t field;
        unsigned wt;
        const uint8_t *p;
        size_t n;

        if (pb_key(&b, &field, &wt) < 0)
            return -EINVAL;
        switch (field) {
        case 1:
            if (wt != WT_VARINT || has_type || pb_varint(&b, &v) < 0 || v > UNIXFS_HAMT_SHARD)
                return -EINVAL;
            u->type = (enum unixfs_type)v;
            has_type = true;
            break;
        case 2:
            if (wt != WT_LEN || u->has_data || pb_bytes(&b, &u->data, &u->data_len) < 0)
                return -EINVAL;
            u->has_data = true;
            break;
        case 3:
            if (wt != WT_VARINT || u->has_filesize || pb_varint(&b, &u->filesize) < 0)
                return -EINVAL;
            u->has_filesize = true;
            break;
        case 4:
            if (wt == WT_VARINT) {
                if (pb_varint(&b, &v) < 0)
                    return -EINVAL;
                if (want && u->nblocksizes == idx)
                    *want = v;
                u->blocksizes_sum = u->blocksizes_sum + v < v ? UINT64_MAX : u->blocksizes_sum + v;
                u->nblocksizes++;
            } else if (wt == WT_LEN) {
                struct pb_buf packed;
                if (pb_bytes(&b, &p, &n) < 0)
                    return -EINVAL;
                pb_init(&packed, p, n);
                while (pb_left(&packed) > 0) {
                    if (pb_varint(&packed, &v) < 0)
                        return -EINVAL;
                    if (want && u->nblocksizes == idx)
                        *want = v;
                    u->blocksizes_sum =
                        u->blocksizes_sum + v < v ? UINT64_MAX : u->blocksizes_sum + v;
                    u->nblocksizes++;
                }
            } else {
                return -EINVAL;
            }
            break;
        case 5:
            if (wt != WT_VARINT || has_hash_type || pb_varint(&b, &u->hash_type) < 0)
                return -EINVAL;
            has_hash_type = true;
            break;
        case 6:
            if (wt != WT_VARINT || u->has_fanout || pb_varint(&b, &u->fanout) < 0)
                return -EINVAL;
            u->has_fanout = true;
            break;
        case 7:
            if (wt != WT_VARINT || u->has_mode || pb_varint(&b, &v) < 0 || v > UINT32_MAX)
                return -EINVAL;
            u->mode = (uint32_t)v;
            u->has_mode = true;
            break;
        case 8:
            if (wt != WT_LEN || u->has_mtime || pb_bytes(&b, &p, &n) < 0 ||
                decode_mtime(p, n, u) < 0)
                return -EINVAL;
            break;
        default:
            /* A newer UnixFS may add fields: skip them if they are well formed. */
            if (pb_skip(&b, wt) < 0)
                return -EINVAL;
            break;
        }
    }
    /* Type is a required field. */
    return has_type ? 0 : -EINVAL;
}

int unixfs_decode(const uint8_t *data, size_t len, struct unixfs_data *out)
{
    struct unixfs_data u;
    int r;

    if (!out)
        return -EINVAL;
    r = unixfs_scan(data, len, &u, 0, NULL);
    if (r < 0) {
        memset(out, 0, sizeof *out);
        return r;
    }
    *out = u;
    return 0;
}

int unixfs_blocksize(const uint8_t *data, size_t len, size_t i, uint64_t *out)
{
    struct unixfs_data u;
    uint64_t v = 0;
    int r;

    if (!out)
        return -EINVAL;
    r = unixfs_scan(data, len, &u, i, &v);
    if (r < 0)
        return r;
    if (i >= u.nblocksizes)
        return -ERANGE;
    *out = v;
    return 0;
}

void unixfs_bs_begin(struct unixfs_bs_iter *it, const uint8_t *data, size_t len)
{
    it->p = data;
    it->end = data ? data + len : data;
    it->pp = it->pend = NULL;
}

int unixfs_bs_next(struct unixfs_bs_iter *it, uint64_t *out)
{
    struct pb_buf b;

    if (it->pp && it->pp < it->pend) {
        b.p = it->pp;
        b.end = it->pend;
        if (pb_varint(&b, out) < 0)
            return -EINVAL;
        it->pp = b.p;
        return 1;
    }
    b.p = it->p;
    b.end = it->end;
    while (pb_left(&b) > 0) {
        uint32_t field;
        unsigned wt;
        const uint8_t *p;
        size_t n;

        if (pb_key(&b, &field, &wt) < 0)
            return -EINVAL;
        if (field == 4 && wt == WT_VARINT) {
            if (pb_varint(&b, out) < 0)
                return -EINVAL;
            it->p = b.p;
            return 1;
        }
        if (field == 4 && wt == WT_LEN) {
            struct pb_buf packed;
            if (pb_bytes(&b, &p, &n) < 0)
                return -EINVAL;
            it->p = b.p;
            if (n == 0)
                continue;
            pb_init(&packed, p, n);
            if (pb_varint(&packed, out) < 0)
                return -EINVAL;
            it->pp = packed.p;
            it->pend = packed.end;
            return 1;
        }
        if (pb_skip(&b, wt) < 0)
            return -EINVAL;
    }
    it->p = b.p;
    return 0;
}

static uint64_t varint_len(uint64_t v)
{
    uint64_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* PBNode{Data: <u bytes>}: tag, length, payload. */
static uint64_t pbnode_len(uint64_t u)
{
    return 1 + varint_len(u) + u;
}

int unixfs_guess_small(uint64_t tsize, uint64_t size)
{
    if (size > (1u << 20))
        return -1;
    /* File: Type, Data (absent when empty), filesize. Symlink: Type, Data. */
    uint64_t file_u = 2 + (size ? 1 + varint_len(size) + size : 0) + 1 + varint_len(size);
    uint64_t sym_u = 2 + 1 + varint_len(size) + size;
    if (tsize == pbnode_len(file_u))
        return UNIXFS_FILE;
    if (size > 0 && tsize == pbnode_len(sym_u))
        return UNIXFS_SYMLINK;
    return -1;
}

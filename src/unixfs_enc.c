/* unixfs_enc.c - see unixfs_enc.h. Wire format: protobuf, keys are (field << 3) | wire type. */
#include "config.h"

#include "unixfs_enc.h"

#include "sha256.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WT_VARINT 0
#define WT_LEN 2
#define WT_FIXED32 5

void bytebuf_free(struct bytebuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int bytebuf_reserve(struct bytebuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t want = b->len + extra;
    if (want < b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int bytebuf_put(struct bytebuf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int rc = bytebuf_reserve(b, len);
    if (rc < 0)
        return rc;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static int put_varint(struct bytebuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    return bytebuf_put(b, tmp, n);
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static int put_key(struct bytebuf *b, unsigned field, unsigned wt)
{
    return put_varint(b, ((uint64_t)field << 3) | wt);
}

static int put_u64_field(struct bytebuf *b, unsigned field, uint64_t v)
{
    int rc = put_key(b, field, WT_VARINT);
    return rc ? rc : put_varint(b, v);
}

static int put_bytes_field(struct bytebuf *b, unsigned field, const void *data, size_t len)
{
    int rc = put_key(b, field, WT_LEN);
    if (rc == 0)
        rc = put_varint(b, len);
    if (rc == 0)
        rc = bytebuf_put(b, data, len);
    return rc;
}

int unixfs_encode(const struct unixfs_fields *f, struct bytebuf *out)
{
    int rc = put_u64_field(out, 1, (uint64_t)f->type);
    if (rc == 0 && f->has_data)
        rc = put_bytes_field(out, 2, f->data, f->data_len);
    if (rc == 0 && f->has_filesize)
        rc = put_u64_field(out, 3, f->filesize);
    for (size_t i = 0; rc == 0 && i < f->nblocksizes; i++)
        rc = put_u64_field(out, 4, f->blocksizes[i]);
    if (rc == 0 && f->has_hash_type)
        rc = put_u64_field(out, 5, f->hash_type);
    if (rc == 0 && f->has_fanout)
        rc = put_u64_field(out, 6, f->fanout);
    if (rc == 0 && f->has_mode)
        rc = put_u64_field(out, 7, f->mode);
    if (rc == 0 && f->has_mtime) {
        /* UnixTime { int64 Seconds = 1; fixed32 FractionalNanoseconds = 2; } */
        uint64_t secs = (uint64_t)f->mtime_sec;
        size_t inner = 1 + varint_size(secs) + (f->mtime_nsec ? 5 : 0);
        rc = put_key(out, 8, WT_LEN);
        if (rc == 0)
            rc = put_varint(out, inner);
        if (rc == 0)
            rc = put_u64_field(out, 1, secs);
        if (rc == 0 && f->mtime_nsec) {
            uint8_t le[4] = {(uint8_t)f->mtime_nsec, (uint8_t)(f->mtime_nsec >> 8),
                             (uint8_t)(f->mtime_nsec >> 16), (uint8_t)(f->mtime_nsec >> 24)};
            rc = put_key(out, 2, WT_FIXED32);
            if (rc == 0)
                rc = bytebuf_put(out, le, sizeof le);
        }
    }
    return rc;
}

static uint8_t *write_varint(uint8_t *w, uint64_t v)
{
    while (v >= 0x80) {
        *w++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w++ = (uint8_t)v;
    return w;
}

static uint8_t *write_bytes_field(uint8_t *w, unsigned field, const void *data, size_t len)
{
    w = write_varint(w, ((uint64_t)field << 3) | WT_LEN);
    w = write_varint(w, len);
    if (len)
        memcpy(w, data, len);
    return w + len;
}

/* Sized first and written in one pass: a directory of thousands of entries is re-encoded on
 * every change of it, and growing the buffer field by field was most of that cost. */
int dagpb_encode(const struct pb_link_out *links, size_t nlinks, const uint8_t *data,
                 size_t data_len, bool has_data, struct bytebuf *out)
{
    size_t total = 0;
    for (size_t i = 0; i < nlinks; i++) {
        const struct pb_link_out *l = &links[i];
        size_t inner = 1 + varint_size(l->hash_len) + l->hash_len + 1 + varint_size(l->name_len) +
                       l->name_len + 1 + varint_size(l->tsize);
        total += 1 + varint_size(inner) + inner;
    }
    if (has_data)
        total += 1 + varint_size(data_len) + data_len;
    if (total == 0)
        return 0;
    int rc = bytebuf_reserve(out, total);
    if (rc < 0)
        return rc;
    uint8_t *w = out->p + out->len;
    for (size_t i = 0; i < nlinks; i++) {
        const struct pb_link_out *l = &links[i];
        size_t inner = 1 + varint_size(l->hash_len) + l->hash_len + 1 + varint_size(l->name_len) +
                       l->name_len + 1 + varint_size(l->tsize);
        w = write_varint(w, (2u << 3) | WT_LEN);
        w = write_varint(w, inner);
        w = write_bytes_field(w, 1, l->hash, l->hash_len);
        w = write_bytes_field(w, 2, l->name, l->name_len);
        w = write_varint(w, (3u << 3) | WT_VARINT);
        w = write_varint(w, l->tsize);
    }
    if (has_data)
        w = write_bytes_field(w, 1, data, data_len);
    out->len += total;
    return 0;
}

int unixfs_fields_from(const struct unixfs_data *u, const uint8_t *data, size_t len,
                       struct unixfs_fields *f, uint64_t **blocksizes)
{
    memset(f, 0, sizeof *f);
    *blocksizes = NULL;
    f->type = u->type;
    f->data = u->data;
    f->data_len = u->data_len;
    f->has_data = u->has_data;
    f->filesize = u->filesize;
    f->has_filesize = u->has_filesize;
    f->hash_type = u->hash_type;
    f->has_hash_type = u->has_fanout; /* HAMT nodes carry both */
    f->fanout = u->fanout;
    f->has_fanout = u->has_fanout;
    f->mode = u->mode;
    f->has_mode = u->has_mode;
    f->mtime_sec = u->mtime_sec;
    f->mtime_nsec = u->mtime_nsec;
    f->has_mtime = u->has_mtime;
    if (u->nblocksizes) {
        uint64_t *bs = calloc(u->nblocksizes, sizeof *bs);
        if (!bs)
            return -ENOMEM;
        /* One pass: unixfs_blocksize per index would rescan the block each time. */
        struct unixfs_bs_iter it;
        unixfs_bs_begin(&it, data, len);
        for (size_t i = 0; i < u->nblocksizes; i++) {
            if (unixfs_bs_next(&it, &bs[i]) != 1) {
                free(bs);
                return -EINVAL;
            }
        }
        f->blocksizes = bs;
        f->nblocksizes = u->nblocksizes;
        *blocksizes = bs;
    }
    return 0;
}

int block_cid(unsigned version, uint64_t codec, const uint8_t *block, size_t len, struct cid *out)
{
    if (version > 1 || (version == 0 && codec != CID_CODEC_DAG_PB))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->version = version;
    out->codec = codec;
    out->mh_code = MH_SHA2_256;
    out->mh[0] = MH_SHA2_256;
    out->mh[1] = SHA256_LEN;
    out->mh_len = 2 + SHA256_LEN;
    return sha256_digest(block, len, out->mh + 2);
}

int block_tsize(uint64_t codec, const uint8_t *block, size_t len, uint64_t *out)
{
    *out = len;
    if (codec != CID_CODEC_DAG_PB)
        return 0;
    struct dagpb_node pb;
    if (dagpb_decode(block, len, &pb) < 0)
        return -EINVAL;
    for (size_t i = 0; i < pb.nlinks; i++) /* saturating: hostile Tsizes may overflow */
        *out = *out + pb.links[i].tsize < *out ? UINT64_MAX : *out + pb.links[i].tsize;
    dagpb_node_free(&pb);
    return 0;
}

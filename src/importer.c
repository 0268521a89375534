/* importer.c - see importer.h.
 *
 * boxo's balanced builder fills a tree of depth d (174^d leaves) left to right and grows a new
 * root above a full tree when more data comes; every leaf sits at the same depth and a last
 * node with a single child is kept, not collapsed. The same shape is built here bottom up, as a
 * stack of levels: level k collects the links of the node being filled at height k + 1. A full
 * level is closed only when one more link arrives for it, and at EOF every level below the top
 * is closed into the one above, so the layout equals boxo's for every leaf count.
 */
#include "config.h"

#include "importer.h"

#include "unixfs_enc.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LEVELS 64 /* 2^64 chunks with 2 links per node: beyond any 64-bit size */
#define CID_BIN_MAX (CID_MAX_MH + 20)

struct pending {
    struct cid cid;
    uint64_t tsize;    /* cumulative DAG size */
    uint64_t filesize; /* file bytes below */
};

struct level {
    size_t n;
    struct pending e[]; /* max_links of them */
};

struct importer {
    const struct import_opts *o;
    import_put_fn put;
    void *ud;
    /* Level k exists once a link reaches it: a small file needs one (~37 KB). Allocating all
     * MAX_LEVELS at once (~450 KB) went past malloc's mmap threshold on every import, and
     * each munmap's TLB shootdown took ~15% of the daemon's CPU in cp -r of small files. */
    struct level *lv[MAX_LEVELS];
    int top;          /* highest level in use */
    size_t csize;     /* the chunk size */
    uint64_t off;     /* file bytes imported so far */
    bool short_seen;  /* a chunk shorter than csize came: it was the last */
    struct bytebuf enc, data;
    uint8_t *leaf;   /* a leaf block being made: header, chunk bytes read in place, trailer */
    size_t leaf_cap; /* bytes at leaf */
    size_t max_links;
    /* An internal node being encoded: max_links of each, made at the first one (a file of
     * one chunk has none). */
    struct pb_link_out *links;
    uint8_t (*hashes)[CID_BIN_MAX];
    uint64_t *sizes;
};

int import_opts_from(const struct node_add_opts *o, struct import_opts *out)
{
    int v = o && o->cid_version >= 0 ? o->cid_version : 0;
    if (v > 1)
        return -EINVAL;
    out->cid_version = (unsigned)v;
    out->raw_leaves = o && o->raw_leaves >= 0 ? o->raw_leaves != 0 : v == 1;
    out->chunk_size = IMPORT_DEFAULT_CHUNK;
    out->max_links = o && o->max_links ? o->max_links : IMPORT_MAX_LINKS;
    if (out->max_links < 2 || out->max_links > IMPORT_MAX_LINKS_CAP)
        return -EINVAL;
    const char *ch = o ? o->chunker : NULL;
    if (!ch || !*ch || strcmp(ch, "default") == 0)
        return 0;
    if (strncmp(ch, "size-", 5) != 0)
        return -ENOTSUP; /* rabin, buzhash: not implemented by the store */
    char *end;
    errno = 0;
    unsigned long long n = strtoull(ch + 5, &end, 10);
    if (errno || end == ch + 5 || *end || n == 0 || n > IMPORT_MAX_CHUNK)
        return -EINVAL;
    out->chunk_size = (size_t)n;
    return 0;
}

static int emit_block(struct importer *im, unsigned version, uint64_t codec, const uint8_t *b,
                      size_t len, struct pending *p)
{
    int rc = block_cid(version, codec, b, len, &p->cid);
    if (rc == 0 && im->put)
        rc = im->put(im->ud, &p->cid, b, len);
    return rc;
}

static int emit(struct importer *im, unsigned version, uint64_t codec, struct pending *p)
{
    /* The empty raw leaf has no buffer: never hand NULL to a put (memcpy, memcmp). */
    static const uint8_t none[1];
    return emit_block(im, version, codec, im->enc.p ? im->enc.p : none, im->enc.len, p);
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Room before a leaf's file bytes: PBNode Data key and length, UnixFS Type, Data key and length.
 * Two 10-byte varints and four single bytes at most. */
#define LEAF_HEAD_MAX 24
#define LEAF_TAIL_MAX 11 /* UnixFS filesize key and varint */

/* The bytes of a dag-pb leaf of n > 0 file bytes around those bytes, exactly as unixfs_encode
 * and dagpb_encode write PBNode{Data: UnixFS{Type=File, Data=bytes, filesize=n}} (no links):
 * 0a len(u) | u = 08 02 12 len(n) <n bytes> 18 n. The header goes at head (returns its length),
 * the trailer at tail (*tail_len). */
static size_t leaf_frame(size_t n, uint8_t *head, uint8_t *tail, size_t *tail_len)
{
    uint64_t ulen = 2 + 1 + varint_len(n) + n + 1 + varint_len(n);
    size_t o = 0;
    head[o++] = 0x0a; /* PBNode.Data, length-delimited */
    o += varint_encode(ulen, head + o);
    head[o++] = 0x08; /* UnixFS.Type = File */
    head[o++] = (uint8_t)UNIXFS_FILE;
    head[o++] = 0x12; /* UnixFS.Data, length-delimited */
    o += varint_encode(n, head + o);
    tail[0] = 0x18; /* UnixFS.filesize */
    *tail_len = 1 + varint_encode(n, tail + 1);
    return o;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off);

/* A leaf for the len > 0 bytes of fd at off, read straight into the block being made (no copy
 * between reading, hashing and storing it). */
static int read_leaf(struct importer *im, int fd, uint64_t off, size_t len, struct pending *p)
{
    uint8_t head[LEAF_HEAD_MAX], tail[LEAF_TAIL_MAX];
    size_t hl = 0, tl = 0;
    if (!im->o->raw_leaves)
        hl = leaf_frame(len, head, tail, &tl);
    /* Leave exactly hl bytes before the data, at the front of the buffer. */
    uint8_t *b = im->leaf + (LEAF_HEAD_MAX - hl);
    int rc = read_full(fd, b + hl, len, off);
    if (rc < 0)
        return rc;
    p->filesize = len;
    if (im->o->raw_leaves) {
        p->tsize = len;
        return emit_block(im, 1, CID_CODEC_RAW, b, len, p);
    }
    memcpy(b, head, hl);
    memcpy(b + hl + len, tail, tl);
    p->tsize = hl + len + tl;
    return emit_block(im, im->o->cid_version, CID_CODEC_DAG_PB, b, hl + len + tl, p);
}

/* A leaf for len bytes at buf (the generic encoder: the empty file's leaf). */
static int make_leaf(struct importer *im, const uint8_t *buf, size_t len, struct pending *p)
{
    im->enc.len = 0;
    p->filesize = len;
    if (im->o->raw_leaves) {
        int rc = bytebuf_put(&im->enc, buf, len);
        if (rc == 0)
            rc = emit(im, 1, CID_CODEC_RAW, p);
        p->tsize = len;
        return rc;
    }
    struct unixfs_fields f = {
        .type = UNIXFS_FILE,
        .data = buf,
        .data_len = len,
        .has_data = len > 0, /* go-unixfs leaves nil data out: the empty file has none */
        .filesize = len,
        .has_filesize = true,
    };
    im->data.len = 0;
    int rc = unixfs_encode(&f, &im->data);
    if (rc == 0)
        rc = dagpb_encode(NULL, 0, im->data.p, im->data.len, true, &im->enc);
    if (rc == 0)
        rc = emit(im, im->o->cid_version, CID_CODEC_DAG_PB, p);
    p->tsize = im->enc.len;
    return rc;
}

/* Encode the node whose links level k holds, and empty the level. */
static int close_level(struct importer *im, int k, struct pending *p)
{
    struct level *l = im->lv[k];
    uint64_t filesize = 0, tsize = 0;
    if (!im->links) {
        im->links = malloc(im->max_links * sizeof *im->links);
        im->hashes = malloc(im->max_links * sizeof *im->hashes);
        im->sizes = malloc(im->max_links * sizeof *im->sizes);
        if (!im->links || !im->hashes || !im->sizes) {
            free(im->links);
            free(im->hashes);
            free(im->sizes);
            im->links = NULL;
            im->hashes = NULL;
            im->sizes = NULL;
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        int n = cid_to_bytes(&l->e[i].cid, im->hashes[i], CID_BIN_MAX);
        if (n < 0)
            return n;
        im->links[i] = (struct pb_link_out){.hash = im->hashes[i],
                                            .hash_len = (size_t)n,
                                            .name = "",
                                            .name_len = 0,
                                            .tsize = l->e[i].tsize};
        im->sizes[i] = l->e[i].filesize;
        filesize += l->e[i].filesize;
        tsize += l->e[i].tsize;
    }
    struct unixfs_fields f = {
        .type = UNIXFS_FILE,
        .filesize = filesize,
        .has_filesize = true,
        .blocksizes = im->sizes,
        .nblocksizes = l->n,
    };
    im->data.len = 0;
    im->enc.len = 0;
    int rc = unixfs_encode(&f, &im->data);
    if (rc == 0)
        rc = dagpb_encode(im->links, l->n, im->data.p, im->data.len, true, &im->enc);
    if (rc == 0)
        rc = emit(im, im->o->cid_version, CID_CODEC_DAG_PB, p);
    p->filesize = filesize;
    p->tsize = tsize + im->enc.len;
    l->n = 0;
    return rc;
}

/* Add a child link at level k, closing the level into the one above first if it is full. */
static int push(struct importer *im, int k, const struct pending *p)
{
    if (k >= MAX_LEVELS)
        return -EFBIG;
    if (!im->lv[k]) {
        im->lv[k] = malloc(sizeof *im->lv[k] + im->max_links * sizeof im->lv[k]->e[0]);
        if (!im->lv[k])
            return -ENOMEM;
        im->lv[k]->n = 0;
    }
    struct level *l = im->lv[k];
    if (l->n == im->max_links) {
        struct pending up;
        int rc = close_level(im, k, &up);
        if (rc == 0)
            rc = push(im, k + 1, &up);
        if (rc < 0)
            return rc;
    }
    l->e[l->n++] = *p;
    if (k > im->top)
        im->top = k;
    return 0;
}

static int finish(struct importer *im, struct pending *root)
{
    for (int k = 0; k < MAX_LEVELS; k++) {
        struct level *l = im->lv[k];
        if (!l)
            return -EIO; /* a level below top that never got a link: cannot happen */
        if (k == im->top && l->n == 1) {
            *root = l->e[0];
            return 0;
        }
        if (l->n == 0)
            continue;
        struct pending up;
        int rc = close_level(im, k, &up);
        if (rc == 0)
            rc = push(im, k + 1, &up);
        if (rc < 0)
            return rc;
    }
    return -EFBIG;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* the file is shorter than announced */
        got += (size_t)r;
    }
    return 0;
}

int import_begin(const struct import_opts *o, uint64_t size_hint, import_put_fn put, void *ud,
                 struct importer **out)
{
    *out = NULL;
    struct importer *im = calloc(1, sizeof *im);
    if (!im)
        return -ENOMEM;
    im->o = o;
    im->max_links = o->max_links ? o->max_links : IMPORT_MAX_LINKS;
    im->put = put;
    im->ud = ud;
    im->csize = o->chunk_size ? o->chunk_size : IMPORT_DEFAULT_CHUNK;
    uint64_t first = size_hint < im->csize ? size_hint : im->csize; /* no bigger than needed */
    im->leaf_cap = LEAF_HEAD_MAX + (size_t)first + LEAF_TAIL_MAX;
    im->leaf = malloc(im->leaf_cap);
    if (!im->leaf) {
        free(im);
        return -ENOMEM;
    }
    *out = im;
    return 0;
}

size_t import_chunk_size(const struct importer *im)
{
    return im->csize;
}

uint64_t import_offset(const struct importer *im)
{
    return im->off;
}

int import_next(struct importer *im, int fd, size_t len)
{
    if (len == 0 || len > im->csize || im->short_seen)
        return -EINVAL; /* only the last chunk may be short */
    size_t need = LEAF_HEAD_MAX + len + LEAF_TAIL_MAX;
    if (need > im->leaf_cap) {
        uint8_t *b = realloc(im->leaf, need);
        if (!b)
            return -ENOMEM;
        im->leaf = b;
        im->leaf_cap = need;
    }
    struct pending p;
    int rc = read_leaf(im, fd, im->off, len, &p);
    if (rc == 0)
        rc = push(im, 0, &p);
    if (rc == 0) {
        im->off += len;
        im->short_seen = len < im->csize;
    }
    return rc;
}

int import_end(struct importer *im, struct cid *out, uint64_t *tsize)
{
    struct pending p;
    int rc = 0;
    if (im->off == 0) {
        static const uint8_t none[1];
        rc = make_leaf(im, none, 0, &p);
        if (rc == 0)
            rc = push(im, 0, &p);
    }
    if (rc == 0)
        rc = finish(im, &p);
    if (rc == 0) {
        *out = p.cid;
        if (tsize)
            *tsize = p.tsize;
    }
    return rc;
}

void import_free(struct importer *im)
{
    if (!im)
        return;
    bytebuf_free(&im->enc);
    bytebuf_free(&im->data);
    for (int k = 0; k < MAX_LEVELS; k++)
        free(im->lv[k]);
    free(im->links);
    free(im->hashes);
    free(im->sizes);
    free(im->leaf);
    free(im);
}

int import_fd(int fd, uint64_t size, const struct import_opts *o, import_put_fn put, void *ud,
              struct cid *out, uint64_t *tsize)
{
    struct importer *im;
    int rc = import_begin(o, size, put, ud, &im);
    for (uint64_t off = 0; rc == 0 && off < size; off += im->csize)
        rc = import_next(im, fd, size - off < im->csize ? (size_t)(size - off) : im->csize);
    if (rc == 0)
        rc = import_end(im, out, tsize);
    import_free(im);
    return rc;
}

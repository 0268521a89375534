/* node_store.c - see node_store.h.
 *
 * Reads decode blocks straight from the block store: stat decodes the root block, list walks a
 * directory's links (and HAMT shards), read walks a file's DAG using the UnixFS blocksizes.
 *
 * Names: DIR/root holds the CID of the root directory (text, one line), replaced atomically
 * (temporary file, fsync, rename, fsync DIR) after the blocks it points to are durable. A change
 * rewrites the directories from the changed entry up to the root (copy-on-write), so a crash
 * leaves either the old root or the new one, each complete. Directory links are sorted by name
 * bytes, as boxo encodes them, so the CIDs equal Kubo's for the same tree.
 *
 * Threads: blocks are immutable, so stat/list/read and imports run concurrently without locks.
 * names_lock guards root and DIR/root: every change to the names holds it from reading the root
 * to writing the new one; readers hold it only to copy the root CID.
 */
#include "config.h"

#include "node_store.h"

#include "blockstore.h"
#include "dagpb.h"
#include "hamt.h"
#include "importer.h"
#include "log.h"
#include "unixfs_enc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 64       /* DAG depth we follow (files: ~7 levels; HAMT: 8) */
#define MAX_COMPONENTS 256 /* path components in a name */
#define CID_BIN_MAX (CID_MAX_MH + 20)

struct node_store {
    struct node base; /* first: struct node * casts to struct node_store * */
    struct blockstore *bs;
    struct import_opts defaults;
    struct node_add_opts add_defaults;
    char *dir;
    char description[PATH_MAX + 64];
    pthread_mutex_t names_lock; /* guards root and the file DIR/root */
    int lock_fd;                /* DIR/lock, flock()ed: one process per store */
    struct cid root;
    uint64_t shard_bytes; /* a directory estimated larger than this is a HAMT */
    atomic_uint_fast64_t adds, add_bytes, name_changes;
};

static struct node_store *to_store(struct node *n)
{
    return (struct node_store *)n;
}

/* A block and, for dag-pb, its decoded node and UnixFS data. */
struct loaded {
    uint8_t *block;
    size_t len;
    bool raw;
    struct dagpb_node pb;
    struct unixfs_data u;
};

static void loaded_free(struct loaded *l)
{
    if (!l->raw && l->block)
        dagpb_node_free(&l->pb);
    free(l->block);
    memset(l, 0, sizeof *l);
}

static int load(struct node_store *ns, const struct cid *c, struct loaded *l)
{
    char cs[CID_STR_MAX];
    memset(l, 0, sizeof *l);
    if (c->codec != CID_CODEC_RAW && c->codec != CID_CODEC_DAG_PB) {
        cid_format(c, cs, sizeof cs);
        log_info("CID %s: codec 0x%" PRIx64 " is not UnixFS (only dag-pb and raw are)", cs,
                 c->codec);
        return -EIO;
    }
    int rc = blockstore_get(ns->bs, c, &l->block, &l->len);
    if (rc < 0)
        return rc;
    if (c->codec == CID_CODEC_RAW) {
        l->raw = true;
        return 0;
    }
    if (dagpb_decode(l->block, l->len, &l->pb) < 0) {
        cid_format(c, cs, sizeof cs);
        log_warn("block %s is not valid dag-pb", cs);
        free(l->block);
        l->block = NULL;
        return -EIO;
    }
    if (!l->pb.has_data || unixfs_decode(l->pb.data, l->pb.data_len, &l->u) < 0) {
        cid_format(c, cs, sizeof cs);
        log_warn("block %s has no valid UnixFS data", cs);
        loaded_free(l);
        return -EIO;
    }
    return 0;
}

static bool is_dir_type(const struct loaded *l)
{
    return !l->raw && (l->u.type == UNIXFS_DIRECTORY || l->u.type == UNIXFS_HAMT_SHARD);
}

/* Sum of the blocksizes, for a file root that does not state its filesize. */
static uint64_t file_size(const struct loaded *l)
{
    if (l->raw)
        return l->len;
    if (l->u.has_filesize)
        return l->u.filesize;
    uint64_t total = l->u.has_data ? l->u.data_len : 0;
    for (size_t i = 0; i < l->u.nblocksizes; i++) {
        uint64_t b;
        if (unixfs_blocksize(l->pb.data, l->pb.data_len, i, &b) == 0)
            total += b;
    }
    return total;
}

static int stat_loaded(const struct cid *c, const struct loaded *l, struct node_stat *out)
{
    char cs[CID_STR_MAX];
    memset(out, 0, sizeof *out);
    if (l->raw) {
        out->kind = NODE_FILE;
        out->size = l->len;
        return 0;
    }
    out->mode = l->u.has_mode ? (l->u.mode & 07777) : 0;
    out->has_mtime = l->u.has_mtime;
    out->mtime = l->u.mtime_sec;
    switch (l->u.type) {
    case UNIXFS_DIRECTORY:
    case UNIXFS_HAMT_SHARD:
        out->kind = NODE_DIR;
        return 0;
    case UNIXFS_FILE:
    case UNIXFS_RAW:
        out->kind = NODE_FILE;
        out->size = file_size(l);
        return 0;
    case UNIXFS_SYMLINK:
        if (!l->u.has_data || l->u.data_len == 0 || l->u.data_len > 4095 ||
            memchr(l->u.data, '\0', l->u.data_len)) {
            cid_format(c, cs, sizeof cs);
            log_warn("symlink %s has an invalid target", cs);
            return -EIO;
        }
        out->kind = NODE_SYMLINK;
        out->size = l->u.data_len;
        out->target = strndup((const char *)l->u.data, l->u.data_len);
        return out->target ? 0 : -ENOMEM;
    default:
        cid_format(c, cs, sizeof cs);
        log_warn("block %s: UnixFS type %d is not supported", cs, (int)l->u.type);
        return -EIO;
    }
}

static int store_stat(struct node *base, const struct cid *c, struct node_stat *out)
{
    struct loaded l;
    memset(out, 0, sizeof *out);
    int rc = load(to_store(base), c, &l);
    if (rc < 0)
        return rc;
    rc = stat_loaded(c, &l, out);
    loaded_free(&l);
    return rc;
}

/* ---- listings ---- */

struct list_ctx {
    struct node_store *ns;
    node_entry_fn fn;
    void *ud;
    unsigned skipped;
};

/* Tell the entry's kind, size and mode from its root block when it is here. */
static int emit_entry(struct list_ctx *lc, const char *name, size_t name_len,
                      const struct dagpb_link *link)
{
    struct node_entry e = {.name = name, .name_len = name_len};
    if (!node_name_ok(name, name_len) || cid_from_bytes(link->hash, link->hash_len, &e.cid) < 0) {
        lc->skipped++;
        return 0;
    }
    if (e.cid.codec == CID_CODEC_RAW && link->has_tsize) {
        e.kind = NODE_FILE;
        e.size = link->tsize; /* a raw block's Tsize is its length */
        return lc->fn(lc->ud, &e);
    }
    struct loaded l;
    struct node_stat st;
    if (load(lc->ns, &e.cid, &l) == 0) {
        if (stat_loaded(&e.cid, &l, &st) == 0) {
            e.kind = st.kind;
            e.size = st.kind == NODE_DIR ? 0 : st.size;
            e.mode = st.mode;
            node_stat_clear(&st);
        }
        loaded_free(&l);
    }
    return lc->fn(lc->ud, &e);
}

static int list_hamt(struct list_ctx *lc, const struct loaded *shard, unsigned depth)
{
    if (depth > HAMT_MAX_DEPTH)
        return -EIO;
    for (size_t i = 0; i < shard->pb.nlinks; i++) {
        const struct dagpb_link *lk = &shard->pb.links[i];
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0) {
            lc->skipped++;
            continue;
        }
        int rc;
        if (t == 1) {
            rc = emit_entry(lc, ename, elen, lk);
        } else {
            struct cid sc;
            struct loaded sub;
            if (cid_from_bytes(lk->hash, lk->hash_len, &sc) < 0)
                return -EIO;
            rc = load(lc->ns, &sc, &sub);
            if (rc < 0)
                return rc;
            rc = sub.raw || sub.u.type != UNIXFS_HAMT_SHARD ? -EIO : list_hamt(lc, &sub, depth + 1);
            loaded_free(&sub);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int store_list(struct node *base, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node_store *ns = to_store(base);
    struct list_ctx lc = {.ns = ns, .fn = fn, .ud = ud};
    struct loaded l;
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (!is_dir_type(&l)) {
        rc = -ENOTDIR;
    } else if (l.u.type == UNIXFS_HAMT_SHARD) {
        rc = list_hamt(&lc, &l, 0);
    } else {
        for (size_t i = 0; rc == 0 && i < l.pb.nlinks; i++)
            rc = emit_entry(&lc, l.pb.links[i].name, l.pb.links[i].name_len, &l.pb.links[i]);
    }
    loaded_free(&l);
    if (lc.skipped) {
        char cs[CID_STR_MAX];
        cid_format(c, cs, sizeof cs);
        log_warn("directory %s: hid %u entries with invalid names or CIDs", cs, lc.skipped);
    }
    return rc;
}

/* ---- reading files ---- */

/* A file node whose sizes do not add up: its DAG cannot give the bytes asked for. */
static int dag_short(const struct cid *c)
{
    char cs[CID_STR_MAX];
    cid_format(c, cs, sizeof cs);
    log_err("block %s: the DAG does not hold the bytes its sizes announce", cs);
    return -EIO;
}

static int read_dag(struct node_store *ns, const struct cid *c, uint64_t off, size_t len,
                    uint8_t *dst, unsigned depth)
{
    struct loaded l;
    if (depth > MAX_DEPTH)
        return -EIO;
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (l.raw) {
        if (off > l.len || len > l.len - off) {
            rc = dag_short(c);
            goto out;
        }
        memcpy(dst, l.block + off, len);
        goto out;
    }
    if (is_dir_type(&l)) {
        rc = -EISDIR;
        goto out;
    }
    if (l.u.nblocksizes != l.pb.nlinks) {
        rc = dag_short(c);
        goto out;
    }
    uint64_t pos = 0, end = off + len;
    size_t done = 0;
    if (l.u.has_data && l.u.data_len > 0 && off < l.u.data_len) {
        size_t n = l.u.data_len - off < len ? (size_t)(l.u.data_len - off) : len;
        memcpy(dst, l.u.data + off, n);
        done += n;
    }
    pos = l.u.has_data ? l.u.data_len : 0;
    for (size_t i = 0; i < l.pb.nlinks && pos < end; i++) {
        uint64_t bs;
        struct cid cc;
        if (unixfs_blocksize(l.pb.data, l.pb.data_len, i, &bs) < 0 ||
            cid_from_bytes(l.pb.links[i].hash, l.pb.links[i].hash_len, &cc) < 0) {
            rc = dag_short(c);
            goto out;
        }
        if (pos + bs > off && bs > 0) {
            uint64_t from = off > pos ? off : pos;
            uint64_t to = end < pos + bs ? end : pos + bs;
            rc = read_dag(ns, &cc, from - pos, (size_t)(to - from), dst + (from - off), depth + 1);
            if (rc < 0)
                goto out;
            done += (size_t)(to - from);
        }
        pos += bs;
    }
    if (done != len)
        rc = dag_short(c);
out:
    loaded_free(&l);
    return rc;
}

static ssize_t store_read(struct node *base, const struct cid *c, uint64_t off, size_t len,
                          char *buf)
{
    if (len == 0)
        return 0;
    int rc = read_dag(to_store(base), c, off, len, (uint8_t *)buf, 0);
    return rc < 0 ? rc : (ssize_t)len;
}

/* ---- writing blocks ---- */

static int put_block(struct node_store *ns, unsigned version, uint64_t codec,
                     const struct bytebuf *b, struct cid *out)
{
    int rc = block_cid(version, codec, b->p, b->len, out);
    return rc < 0 ? rc : blockstore_put(ns->bs, out, b->p, b->len);
}

static int pipe_put_direct(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    return blockstore_put(ud, c, data, len);
}

/* Imports hash the next chunk while one writer thread stores (and fsyncs) the previous ones:
 * a bounded queue between the importer and the writer. lock guards every field below it. */
#define PIPE_DEPTH 8 /* blocks in flight: at most ~2 MiB with the default chunker */

struct pipe_item {
    struct cid cid;
    uint8_t *data;
    size_t len;
};

struct pipe {
    struct blockstore *bs;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pipe_item q[PIPE_DEPTH];
    size_t head, count;
    bool done;
    int err; /* first error of the writer */
};

static void *pipe_writer(void *arg)
{
    struct pipe *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == 0 && !p->done)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->count == 0)
            break;
        struct pipe_item it = p->q[p->head];
        pthread_mutex_unlock(&p->lock);
        int rc = p->err ? 0 : blockstore_put(p->bs, &it.cid, it.data, it.len);
        free(it.data);
        pthread_mutex_lock(&p->lock);
        if (rc < 0 && !p->err)
            p->err = rc;
        p->head = (p->head + 1) % PIPE_DEPTH;
        p->count--;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int pipe_put(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    struct pipe *p = ud;
    struct pipe_item it = {.cid = *c, .data = malloc(len ? len : 1), .len = len};
    if (!it.data)
        return -ENOMEM;
    memcpy(it.data, data, len);
    pthread_mutex_lock(&p->lock);
    while (p->count == PIPE_DEPTH && !p->err)
        pthread_cond_wait(&p->cond, &p->lock);
    int rc = p->err;
    if (rc == 0) {
        p->q[(p->head + p->count) % PIPE_DEPTH] = it;
        p->count++;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0)
        free(it.data);
    return rc;
}

/* Import through the pipe: returns the importer's error, else the writer's. */
static int import_piped(struct node_store *ns, int fd, uint64_t size, const struct import_opts *io,
                        struct cid *out)
{
    struct pipe p = {.bs = ns->bs};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    int rc = pthread_create(&p.thread, NULL, pipe_writer, &p);
    if (rc != 0) {
        rc = import_fd(fd, size, io, pipe_put_direct, ns->bs, out, NULL);
        goto out;
    }
    rc = import_fd(fd, size, io, pipe_put, &p, out, NULL);
    pthread_mutex_lock(&p.lock);
    p.done = true;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    pthread_join(p.thread, NULL);
    if (rc == 0)
        rc = p.err;
out:
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return rc;
}

static int store_add(struct node *base, int fd, uint64_t size, const struct node_add_opts *o,
                     struct cid *out)
{
    struct node_store *ns = to_store(base);
    struct node_add_opts merged = ns->add_defaults;
    if (o) {
        if (o->cid_version >= 0)
            merged.cid_version = o->cid_version;
        if (o->raw_leaves >= 0)
            merged.raw_leaves = o->raw_leaves;
        if (o->chunker)
            merged.chunker = o->chunker;
    }
    struct import_opts io;
    int rc = import_opts_from(&merged, &io);
    if (rc < 0) {
        log_warn("add: unsupported import settings (cid-version %d, chunker %s)",
                 merged.cid_version, merged.chunker ? merged.chunker : "default");
        return rc;
    }
    rc = import_piped(ns, fd, size, &io, out);
    if (rc == 0)
        rc = blockstore_sync(ns->bs);
    if (rc < 0) {
        log_warn("add (%llu bytes): %s", (unsigned long long)size, strerror(-rc));
        return rc;
    }
    atomic_fetch_add(&ns->adds, 1);
    atomic_fetch_add(&ns->add_bytes, size);
    return 0;
}

static int store_put_symlink(struct node *base, const char *target, struct cid *out)
{
    struct node_store *ns = to_store(base);
    size_t tl = strlen(target);
    if (tl == 0 || tl > 4095)
        return -ENAMETOOLONG;
    struct unixfs_fields f = {
        .type = UNIXFS_SYMLINK, .data = (const uint8_t *)target, .data_len = tl, .has_data = true};
    struct bytebuf d = {0}, b = {0};
    int rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(NULL, 0, d.p, d.len, true, &b);
    if (rc == 0)
        rc = put_block(ns, ns->defaults.cid_version, CID_CODEC_DAG_PB, &b, out);
    if (rc == 0)
        rc = blockstore_sync(ns->bs);
    bytebuf_free(&d);
    bytebuf_free(&b);
    return rc;
}

/* ---- names ---- */

struct path_parts {
    const char *comp[MAX_COMPONENTS];
    size_t len[MAX_COMPONENTS];
    size_t n;
};

/* Split an absolute path into its components (no copies: they point into path). */
static int split_path(const char *path, struct path_parts *pp)
{
    pp->n = 0;
    if (!path || path[0] != '/')
        return -EINVAL;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (pp->n == MAX_COMPONENTS)
            return -ENAMETOOLONG;
        if (n > 255)
            return -ENAMETOOLONG;
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return -EINVAL;
        pp->comp[pp->n] = p;
        pp->len[pp->n++] = n;
        p = e;
    }
    return 0;
}

static bool same_name(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

static int hamt_find(struct node_store *ns, const struct loaded *shard, const char *name,
                     size_t len, unsigned depth, struct cid *out)
{
    int idx = hamt_index(name, len, depth);
    if (idx < 0)
        return -ENOENT;
    for (size_t i = 0; i < shard->pb.nlinks; i++) {
        const struct dagpb_link *lk = &shard->pb.links[i];
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0 || bucket != (unsigned)idx)
            continue;
        if (t == 1) {
            if (!same_name(ename, elen, name, len))
                return -ENOENT;
            return cid_from_bytes(lk->hash, lk->hash_len, out) < 0 ? -EIO : 0;
        }
        struct cid sc;
        struct loaded sub;
        if (cid_from_bytes(lk->hash, lk->hash_len, &sc) < 0)
            return -EIO;
        int rc = load(ns, &sc, &sub);
        if (rc < 0)
            return rc;
        rc = !sub.raw && sub.u.type == UNIXFS_HAMT_SHARD
                 ? hamt_find(ns, &sub, name, len, depth + 1, out)
                 : -EIO;
        loaded_free(&sub);
        return rc;
    }
    return -ENOENT;
}

/* Find name in the (loaded) directory dir. */
static int dir_find(struct node_store *ns, const struct loaded *dir, const char *name, size_t len,
                    struct cid *out)
{
    if (!is_dir_type(dir))
        return -ENOTDIR;
    if (dir->u.type == UNIXFS_HAMT_SHARD)
        return hamt_find(ns, dir, name, len, 0, out);
    for (size_t i = 0; i < dir->pb.nlinks; i++) {
        const struct dagpb_link *lk = &dir->pb.links[i];
        if (same_name(lk->name, lk->name_len, name, len))
            return cid_from_bytes(lk->hash, lk->hash_len, out) < 0 ? -EIO : 0;
    }
    return -ENOENT;
}

/* Walk the first n components of pp from the directory root. */
static int resolve(struct node_store *ns, const struct cid *root, const struct path_parts *pp,
                   size_t n, struct cid *out)
{
    struct cid cur = *root;
    for (size_t i = 0; i < n; i++) {
        struct loaded l;
        int rc = load(ns, &cur, &l);
        if (rc < 0)
            return rc;
        struct cid next;
        rc = dir_find(ns, &l, pp->comp[i], pp->len[i], &next);
        loaded_free(&l);
        if (rc < 0)
            return rc;
        cur = next;
    }
    *out = cur;
    return 0;
}

/* A directory's entries, copied out of its blocks (a HAMT spans many). */
struct entries {
    struct hamt_entry *e;
    size_t n, cap;
};

static void entries_free(struct entries *es)
{
    for (size_t i = 0; i < es->n; i++)
        free((void *)es->e[i].name); /* name and CID share one allocation */
    free(es->e);
    memset(es, 0, sizeof *es);
}

static int entries_add(struct entries *es, const char *name, size_t nlen, const uint8_t *cid,
                       size_t clen, uint64_t tsize)
{
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        struct hamt_entry *e = realloc(es->e, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        es->e = e;
        es->cap = cap;
    }
    char *mem = malloc(nlen + clen + 1);
    if (!mem)
        return -ENOMEM;
    memcpy(mem, name, nlen);
    memcpy(mem + nlen, cid, clen);
    es->e[es->n++] = (struct hamt_entry){.name = mem,
                                         .name_len = nlen,
                                         .cid = (const uint8_t *)mem + nlen,
                                         .cid_len = clen,
                                         .tsize = tsize};
    return 0;
}

static int collect_entries(struct node_store *ns, const struct loaded *dir, unsigned depth,
                           struct entries *es)
{
    if (depth > HAMT_MAX_DEPTH)
        return -EIO;
    for (size_t i = 0; i < dir->pb.nlinks; i++) {
        const struct dagpb_link *lk = &dir->pb.links[i];
        if (dir->u.type == UNIXFS_DIRECTORY) {
            int rc = entries_add(es, lk->name, lk->name_len, lk->hash, lk->hash_len, lk->tsize);
            if (rc < 0)
                return rc;
            continue;
        }
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0)
            return -EIO;
        int rc;
        if (t == 1) {
            rc = entries_add(es, ename, elen, lk->hash, lk->hash_len, lk->tsize);
        } else {
            struct cid sc;
            struct loaded sub;
            if (cid_from_bytes(lk->hash, lk->hash_len, &sc) < 0)
                return -EIO;
            rc = load(ns, &sc, &sub);
            if (rc < 0)
                return rc;
            rc = sub.raw || sub.u.type != UNIXFS_HAMT_SHARD
                     ? -EIO
                     : collect_entries(ns, &sub, depth + 1, es);
            loaded_free(&sub);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct hamt_entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

struct shard_put_ctx {
    struct node_store *ns;
    unsigned version;
};

static int shard_put(void *ud, const uint8_t *block, size_t len, struct cid *out)
{
    struct shard_put_ctx *sp = ud;
    int rc = block_cid(sp->version, CID_CODEC_DAG_PB, block, len, out);
    return rc < 0 ? rc : blockstore_put(sp->ns->bs, out, block, len);
}

/* A plain directory block over es (sorted here), with the UnixFS data given. */
static int encode_basic(struct node_store *ns, unsigned version, struct entries *es,
                        const uint8_t *data, size_t data_len, struct cid *out, uint64_t *tsize)
{
    struct bytebuf b = {0};
    struct pb_link_out *links = calloc(es->n ? es->n : 1, sizeof *links);
    uint64_t total = 0;
    if (!links)
        return -ENOMEM;
    qsort(es->e, es->n, sizeof *es->e, cmp_entry);
    for (size_t i = 0; i < es->n; i++) {
        const struct hamt_entry *e = &es->e[i];
        links[i] = (struct pb_link_out){.hash = e->cid,
                                        .hash_len = e->cid_len,
                                        .name = e->name,
                                        .name_len = e->name_len,
                                        .tsize = e->tsize};
        total += e->tsize;
    }
    int rc = dagpb_encode(links, es->n, data, data_len, true, &b);
    if (rc == 0)
        rc = put_block(ns, version, CID_CODEC_DAG_PB, &b, out);
    if (rc == 0)
        *tsize = total + b.len;
    bytebuf_free(&b);
    free(links);
    return rc;
}

/* A copy of directory dcid with entry name set to child (NULL: removed). The directory keeps
 * its UnixFS metadata (mode, mtime) and CID version. Like boxo's DynamicDirectory, a plain
 * directory becomes a HAMT when its estimated size (sum of name + binary CID lengths) goes
 * over the threshold, and a HAMT goes back to a plain directory when a change makes it smaller
 * and it is then at most the threshold. */
static int dir_set(struct node_store *ns, const struct cid *dcid, const char *name, size_t nlen,
                   const struct cid *child, uint64_t child_tsize, struct cid *out,
                   uint64_t *out_tsize)
{
    struct loaded l;
    struct entries es = {0};
    struct bytebuf data = {0};
    uint8_t hash[CID_BIN_MAX];
    int hl = 0, rc = load(ns, dcid, &l);
    if (rc < 0)
        return rc;
    if (!is_dir_type(&l)) {
        rc = -ENOTDIR;
        goto out;
    }
    if ((rc = collect_entries(ns, &l, 0, &es)) < 0)
        goto out;
    bool found = false;
    int64_t change = 0;
    uint64_t estimate = 0;
    for (size_t i = 0; i < es.n; i++) {
        struct hamt_entry *e = &es.e[i];
        if (!found && same_name(e->name, e->name_len, name, nlen)) {
            found = true;
            change -= (int64_t)(e->name_len + e->cid_len);
            free((void *)e->name);
            *e = es.e[--es.n];
            i--;
            continue;
        }
        estimate += e->name_len + e->cid_len;
    }
    if (!child && !found) {
        rc = -ENOENT;
        goto out;
    }
    if (child) {
        if ((hl = cid_to_bytes(child, hash, sizeof hash)) < 0) {
            rc = hl;
            goto out;
        }
        if ((rc = entries_add(&es, name, nlen, hash, (size_t)hl, child_tsize)) < 0)
            goto out;
        change += (int64_t)(nlen + (size_t)hl);
        estimate += nlen + (size_t)hl;
    }
    bool was_hamt = l.u.type == UNIXFS_HAMT_SHARD;
    bool shard = was_hamt ? change >= 0 || estimate > ns->shard_bytes : estimate > ns->shard_bytes;
    if (shard) {
        struct shard_put_ctx sp = {.ns = ns, .version = dcid->version};
        rc = hamt_build(es.e, es.n, l.u.has_mode, l.u.mode, l.u.has_mtime, l.u.mtime_sec,
                        l.u.mtime_nsec, shard_put, &sp, out, out_tsize);
    } else if (!was_hamt) {
        rc = encode_basic(ns, dcid->version, &es, l.pb.data, l.pb.data_len, out, out_tsize);
    } else {
        struct unixfs_fields f = {.type = UNIXFS_DIRECTORY,
                                  .mode = l.u.mode,
                                  .has_mode = l.u.has_mode,
                                  .mtime_sec = l.u.mtime_sec,
                                  .mtime_nsec = l.u.mtime_nsec,
                                  .has_mtime = l.u.has_mtime};
        rc = unixfs_encode(&f, &data);
        if (rc == 0)
            rc = encode_basic(ns, dcid->version, &es, data.p, data.len, out, out_tsize);
    }
out:
    bytebuf_free(&data);
    entries_free(&es);
    loaded_free(&l);
    return rc;
}

/* Set (child != NULL) or remove the entry at pp below directory dcid, rewriting every
 * directory on the way. pp->n must be at least 1. */
static int update_path(struct node_store *ns, const struct cid *dcid, const struct path_parts *pp,
                       size_t i, const struct cid *child, uint64_t child_tsize, struct cid *out,
                       uint64_t *out_tsize)
{
    if (i + 1 == pp->n)
        return dir_set(ns, dcid, pp->comp[i], pp->len[i], child, child_tsize, out, out_tsize);
    struct loaded l;
    struct cid sub, nsub;
    uint64_t nsub_tsize;
    int rc = load(ns, dcid, &l);
    if (rc < 0)
        return rc;
    rc = dir_find(ns, &l, pp->comp[i], pp->len[i], &sub);
    loaded_free(&l);
    if (rc == 0)
        rc = update_path(ns, &sub, pp, i + 1, child, child_tsize, &nsub, &nsub_tsize);
    if (rc == 0)
        rc = dir_set(ns, dcid, pp->comp[i], pp->len[i], &nsub, nsub_tsize, out, out_tsize);
    return rc;
}

/* Replace DIR/root with c, durably, after the blocks it points to. Call with names_lock. */
static int commit_root(struct node_store *ns, const struct cid *c)
{
    char cs[CID_STR_MAX], tmp[PATH_MAX], final[PATH_MAX];
    int rc = blockstore_sync(ns->bs);
    if (rc < 0)
        return rc;
    int n = cid_format(c, cs, sizeof cs - 1);
    if (n < 0)
        return n;
    cs[n++] = '\n';
    snprintf(tmp, sizeof tmp, "%s/.root.tmp-XXXXXX", ns->dir);
    snprintf(final, sizeof final, "%s/root", ns->dir);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = write(fd, cs, (size_t)n) == n ? 0 : -EIO;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        log_err("cannot update %s: %s", final, strerror(-rc));
        return rc;
    }
    int dfd = open(ns->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0)
            log_warn("fsync %s: %s", ns->dir, strerror(errno));
        close(dfd);
    }
    ns->root = *c;
    atomic_fetch_add(&ns->name_changes, 1);
    return 0;
}

static void get_root(struct node_store *ns, struct cid *out)
{
    pthread_mutex_lock(&ns->names_lock);
    *out = ns->root;
    pthread_mutex_unlock(&ns->names_lock);
}

static int mfs_resolve(struct node_store *ns, const char *path, struct cid *out)
{
    struct path_parts pp;
    struct cid root;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    get_root(ns, &root);
    return resolve(ns, &root, &pp, pp.n, out);
}

static int store_mfs_stat(struct node *base, const char *path, struct node_stat *out,
                          struct cid *cid)
{
    memset(out, 0, sizeof *out);
    int rc = mfs_resolve(to_store(base), path, cid);
    return rc < 0 ? rc : store_stat(base, cid, out);
}

static int store_mfs_list(struct node *base, const char *path, node_entry_fn fn, void *ud)
{
    struct cid c;
    int rc = mfs_resolve(to_store(base), path, &c);
    return rc < 0 ? rc : store_list(base, &c, fn, ud);
}

/* The parent of pp's last component must be a directory: -ENOENT/-ENOTDIR otherwise. Sets
 * *exists when the last component is there (and *existing to it). Call with names_lock. */
static int check_parent(struct node_store *ns, const struct path_parts *pp, bool *exists,
                        struct cid *existing)
{
    struct cid parent;
    struct loaded l;
    int rc = resolve(ns, &ns->root, pp, pp->n - 1, &parent);
    if (rc == 0)
        rc = load(ns, &parent, &l);
    if (rc < 0)
        return rc;
    rc = dir_find(ns, &l, pp->comp[pp->n - 1], pp->len[pp->n - 1], existing);
    loaded_free(&l);
    *exists = rc == 0;
    return rc == -ENOENT ? 0 : rc;
}

static bool last_name_ok(const struct path_parts *pp)
{
    return node_name_ok(pp->comp[pp->n - 1], pp->len[pp->n - 1]);
}

/* Link child (tsize known) at pp, which must not exist. */
static int link_new(struct node_store *ns, const struct path_parts *pp, const struct cid *child,
                    uint64_t tsize)
{
    struct cid existing, nroot;
    uint64_t rts;
    bool exists;
    pthread_mutex_lock(&ns->names_lock);
    int rc = check_parent(ns, pp, &exists, &existing);
    if (rc == 0 && exists)
        rc = -EEXIST;
    if (rc == 0)
        rc = update_path(ns, &ns->root, pp, 0, child, tsize, &nroot, &rts);
    if (rc == 0)
        rc = commit_root(ns, &nroot);
    pthread_mutex_unlock(&ns->names_lock);
    return rc;
}

static int empty_dir(struct node_store *ns, struct cid *out, uint64_t *tsize)
{
    static const uint8_t block[] = {0x0a, 0x02, 0x08, 0x01}; /* PBNode{Data: UnixFS{Dir}} */
    struct bytebuf b = {.p = (uint8_t *)block, .len = sizeof block};
    *tsize = sizeof block;
    return put_block(ns, ns->defaults.cid_version, CID_CODEC_DAG_PB, &b, out);
}

static int store_mfs_mkdir(struct node *base, const char *path)
{
    struct node_store *ns = to_store(base);
    struct path_parts pp;
    struct cid d;
    uint64_t ts;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    if (pp.n == 0)
        return -EEXIST;
    if (!last_name_ok(&pp))
        return -EINVAL;
    rc = empty_dir(ns, &d, &ts);
    return rc < 0 ? rc : link_new(ns, &pp, &d, ts);
}

static int store_mfs_link(struct node *base, const struct cid *c, const char *path)
{
    struct node_store *ns = to_store(base);
    struct path_parts pp;
    struct loaded l;
    uint64_t ts;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    if (pp.n == 0)
        return -EEXIST;
    if (!last_name_ok(&pp))
        return -EINVAL;
    rc = load(ns, c, &l); /* offline: the content must be here */
    if (rc < 0)
        return rc;
    rc = block_tsize(c->codec, l.block, l.len, &ts);
    loaded_free(&l);
    return rc < 0 ? -EIO : link_new(ns, &pp, c, ts);
}

/* Kind of c and whether it is a directory with entries. */
static int kind_of(struct node_store *ns, const struct cid *c, bool *is_dir, bool *nonempty,
                   uint64_t *tsize)
{
    struct loaded l;
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    *is_dir = is_dir_type(&l);
    *nonempty = *is_dir && l.pb.nlinks > 0;
    rc = block_tsize(c->codec, l.block, l.len, tsize) < 0 ? -EIO : 0;
    loaded_free(&l);
    return rc;
}

static int store_mfs_rm(struct node *base, const char *path, bool recursive)
{
    struct node_store *ns = to_store(base);
    struct path_parts pp;
    struct cid target, nroot;
    bool is_dir, nonempty;
    uint64_t ts;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    if (pp.n == 0)
        return -EBUSY; /* the root cannot go */
    pthread_mutex_lock(&ns->names_lock);
    rc = resolve(ns, &ns->root, &pp, pp.n, &target);
    if (rc == 0)
        rc = kind_of(ns, &target, &is_dir, &nonempty, &ts);
    if (rc == 0 && is_dir && !recursive)
        rc = -EISDIR;
    if (rc == 0)
        rc = update_path(ns, &ns->root, &pp, 0, NULL, 0, &nroot, &ts);
    if (rc == 0)
        rc = commit_root(ns, &nroot);
    pthread_mutex_unlock(&ns->names_lock);
    return rc;
}

static bool is_prefix(const struct path_parts *a, const struct path_parts *b)
{
    if (a->n > b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_name(a->comp[i], a->len[i], b->comp[i], b->len[i]))
            return false;
    return true;
}

static int store_mfs_mv(struct node *base, const char *src, const char *dst)
{
    struct node_store *ns = to_store(base);
    struct path_parts sp, dp;
    struct cid scid, dcid, r1, r2;
    bool sdir, snonempty, exists = false;
    uint64_t sts, ts;
    int rc = split_path(src, &sp);
    if (rc == 0)
        rc = split_path(dst, &dp);
    if (rc < 0)
        return rc;
    if (sp.n == 0 || dp.n == 0)
        return -EBUSY;
    if (!last_name_ok(&dp))
        return -EINVAL;
    if (is_prefix(&sp, &dp))
        return sp.n == dp.n ? 0 : -EINVAL; /* onto itself / into its own subtree */
    pthread_mutex_lock(&ns->names_lock);
    rc = resolve(ns, &ns->root, &sp, sp.n, &scid);
    if (rc == 0)
        rc = kind_of(ns, &scid, &sdir, &snonempty, &sts);
    if (rc == 0)
        rc = check_parent(ns, &dp, &exists, &dcid);
    if (rc == 0 && exists) {
        bool ddir, dnonempty;
        rc = kind_of(ns, &dcid, &ddir, &dnonempty, &ts);
        if (rc == 0 && ddir && !sdir)
            rc = -EISDIR;
        else if (rc == 0 && !ddir && sdir)
            rc = -ENOTDIR;
        else if (rc == 0 && dnonempty)
            rc = -ENOTEMPTY;
    }
    if (rc == 0)
        rc = update_path(ns, &ns->root, &sp, 0, NULL, 0, &r1, &ts);
    if (rc == 0)
        rc = update_path(ns, &r1, &dp, 0, &scid, sts, &r2, &ts);
    if (rc == 0)
        rc = commit_root(ns, &r2);
    pthread_mutex_unlock(&ns->names_lock);
    return rc;
}

/* The mode that no stored mode means: 0755 for directories, 0644 for everything else. */
static uint32_t default_mode(const struct loaded *l)
{
    return is_dir_type(l) ? 0755 : 0644;
}

/* A copy of the node c with UnixFS 1.5 metadata set; a raw block becomes a dag-pb File leaf.
 * Setting the default mode (default_mode) removes the stored mode instead of storing it, as
 * js-ipfs does and as fs.c never stores it on create, mkdir or after a rewrite: a file that
 * rsync or cp -p chmods to 0644 keeps the CID of its content (and a raw leaf stays raw). */
static int with_meta(struct node_store *ns, const struct cid *c, const uint32_t *mode,
                     const int64_t *mtime, struct cid *out, uint64_t *tsize)
{
    struct loaded l;
    struct unixfs_fields f;
    uint64_t *bs = NULL;
    struct pb_link_out *links = NULL;
    struct bytebuf d = {0}, b = {0};
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (l.raw) {
        f = (struct unixfs_fields){.type = UNIXFS_FILE,
                                   .data = l.block,
                                   .data_len = l.len,
                                   .has_data = l.len > 0,
                                   .filesize = l.len,
                                   .has_filesize = true};
    } else if ((rc = unixfs_fields_from(&l.u, l.pb.data, l.pb.data_len, &f, &bs)) < 0) {
        goto out;
    }
    if (mode) {
        f.mode = *mode & 07777;
        f.has_mode = f.mode != default_mode(&l);
    }
    if (mtime) {
        f.mtime_sec = *mtime;
        f.mtime_nsec = 0;
        f.has_mtime = true;
    }
    if (l.raw && !f.has_mode && !f.has_mtime) {
        *out = *c;
        rc = block_tsize(c->codec, l.block, l.len, tsize) < 0 ? -EIO : 0;
        goto out;
    }
    size_t n = l.raw ? 0 : l.pb.nlinks;
    if (n && !(links = calloc(n, sizeof *links))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct dagpb_link *lk = &l.pb.links[i];
        links[i] = (struct pb_link_out){.hash = lk->hash,
                                        .hash_len = lk->hash_len,
                                        .name = lk->name ? lk->name : "",
                                        .name_len = lk->name_len,
                                        .tsize = lk->tsize};
    }
    rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, n, d.p, d.len, true, &b);
    if (rc == 0)
        rc = put_block(ns, c->version, CID_CODEC_DAG_PB, &b, out);
    if (rc == 0)
        rc = block_tsize(CID_CODEC_DAG_PB, b.p, b.len, tsize) < 0 ? -EIO : 0;
out:
    bytebuf_free(&d);
    bytebuf_free(&b);
    free(links);
    free(bs);
    loaded_free(&l);
    return rc;
}

static int set_meta(struct node_store *ns, const char *path, const uint32_t *mode,
                    const int64_t *mtime)
{
    struct path_parts pp;
    struct cid target, ncid, nroot;
    uint64_t ts, rts;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ns->names_lock);
    rc = resolve(ns, &ns->root, &pp, pp.n, &target);
    if (rc == 0)
        rc = with_meta(ns, &target, mode, mtime, &ncid, &ts);
    if (rc == 0 && pp.n == 0)
        nroot = ncid;
    else if (rc == 0)
        rc = update_path(ns, &ns->root, &pp, 0, &ncid, ts, &nroot, &rts);
    if (rc == 0)
        rc = commit_root(ns, &nroot);
    pthread_mutex_unlock(&ns->names_lock);
    return rc;
}

static int store_mfs_chmod(struct node *base, const char *path, uint32_t mode)
{
    return set_meta(to_store(base), path, &mode, NULL);
}

static int store_mfs_touch(struct node *base, const char *path, int64_t mtime)
{
    return set_meta(to_store(base), path, NULL, &mtime);
}

/* ---- the rest ---- */

static int store_stats(struct node *base, char *buf, size_t len)
{
    struct node_store *ns = to_store(base);
    struct blockstore_stats s;
    blockstore_get_stats(ns->bs, &s);
    return snprintf(buf, len,
                    "store_block_reads %" PRIu64 "\nstore_block_read_bytes %" PRIu64
                    "\nstore_block_writes %" PRIu64 "\nstore_block_write_bytes %" PRIu64
                    "\nstore_block_dedup %" PRIu64 "\nstore_corrupt_blocks %" PRIu64
                    "\nstore_adds %" PRIu64 "\nstore_add_bytes %" PRIu64
                    "\nstore_name_changes %" PRIu64 "\n",
                    s.gets, s.get_bytes, s.puts, s.put_bytes, s.dedup, s.corrupt,
                    (uint64_t)atomic_load(&ns->adds), (uint64_t)atomic_load(&ns->add_bytes),
                    (uint64_t)atomic_load(&ns->name_changes));
}

static void store_destroy(struct node *base)
{
    struct node_store *ns = to_store(base);
    blockstore_close(ns->bs);
    pthread_mutex_destroy(&ns->names_lock);
    close(ns->lock_fd);
    free(ns->dir);
    free(ns);
}

static const struct node_ops store_ops = {
    .stat = store_stat,
    .list = store_list,
    .read = store_read,
    .mfs_stat = store_mfs_stat,
    .mfs_list = store_mfs_list,
    .mfs_mkdir = store_mfs_mkdir,
    .mfs_rm = store_mfs_rm,
    .mfs_link = store_mfs_link,
    .mfs_mv = store_mfs_mv,
    .mfs_chmod = store_mfs_chmod,
    .mfs_touch = store_mfs_touch,
    .add = store_add,
    .put_symlink = store_put_symlink,
    .stats = store_stats,
    .destroy = store_destroy,
};

/* Read DIR/root, or create an empty root directory. */
static int open_root(struct node_store *ns, char *err, size_t errlen)
{
    char p[PATH_MAX], buf[CID_STR_MAX + 2];
    snprintf(p, sizeof p, "%s/root", ns->dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        uint64_t ts;
        struct cid c;
        int rc = empty_dir(ns, &c, &ts);
        if (rc == 0)
            rc = commit_root(ns, &c);
        if (rc < 0)
            snprintf(err, errlen, "cannot create the root directory in %s: %s", ns->dir,
                     strerror(-rc));
        return rc;
    }
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
        return rc;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    if (n <= 0 || cid_parse(buf, (size_t)n, &ns->root) < 0) {
        snprintf(err, errlen, "%s does not hold a CID", p);
        return -EINVAL;
    }
    struct loaded l;
    int rc = load(ns, &ns->root, &l);
    if (rc == 0 && !is_dir_type(&l))
        rc = -ENOTDIR;
    if (rc == 0)
        loaded_free(&l);
    if (rc < 0)
        snprintf(err, errlen, "the root directory %.*s in %s is unusable: %s", (int)n, buf, p,
                 strerror(-rc));
    return rc;
}

int node_store_new(const char *dir, const struct node_store_config *cfg, struct node **out,
                   char *err, size_t errlen)
{
    struct node_store *ns = calloc(1, sizeof *ns);
    int rc = -ENOMEM;
    if (!ns) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ns->lock_fd = -1;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    /* Absolute: the daemon changes its working directory to / after mounting. */
    if (!(ns->dir = realpath(dir, NULL))) {
        rc = -errno;
        snprintf(err, errlen, "cannot resolve %s: %s", dir, strerror(errno));
        goto fail;
    }
    /* Two processes on one store would each commit their own root, and the later commit
     * would drop the names the other wrote (after `fusermount3 -uz` the old process still
     * serves its open files). The flock belongs to the open file, so it survives the fork
     * into the background and goes with the process. */
    char lockp[PATH_MAX + 8];
    snprintf(lockp, sizeof lockp, "%s/lock", ns->dir);
    ns->lock_fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (ns->lock_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", lockp, strerror(errno));
        goto fail;
    }
    /* A process that was just unmounted may still be finishing its last commit: give it
     * up to 3 s to exit before refusing. */
    int tries = 0, lrc;
    while ((lrc = flock(ns->lock_fd, LOCK_EX | LOCK_NB)) < 0 &&
           (errno == EWOULDBLOCK || errno == EINTR) && ++tries < 30) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (lrc < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "the store %s is in use by another ipfsfs process (%s is locked)",
                 ns->dir, lockp);
        goto fail;
    }
    pthread_mutex_init(&ns->names_lock, NULL);
    ns->base.ops = &store_ops;
    ns->base.description = ns->description;
    snprintf(ns->description, sizeof ns->description, "embedded block store at %s (offline)",
             ns->dir);
    ns->add_defaults = cfg ? cfg->add : (struct node_add_opts){.cid_version = -1, .raw_leaves = -1};
    ns->shard_bytes =
        cfg && cfg->hamt_shard_bytes ? cfg->hamt_shard_bytes : NODE_STORE_HAMT_SHARD_BYTES;
    rc = import_opts_from(&ns->add_defaults, &ns->defaults);
    if (rc < 0) {
        snprintf(err, errlen, "unsupported import settings for the store (chunker %s)",
                 ns->add_defaults.chunker ? ns->add_defaults.chunker : "default");
        goto fail;
    }
    rc = blockstore_open(ns->dir, &ns->bs, err, errlen);
    if (rc < 0)
        goto fail;
    /* We hold the lock: temp files in the store are leftovers of a process that died. */
    if (blockstore_clean_tmp(ns->bs) < 0)
        log_warn("%s: cannot look for unfinished block files", ns->dir);
    rc = open_root(ns, err, errlen);
    if (rc < 0)
        goto fail;
    *out = &ns->base;
    return 0;
fail:
    if (ns) {
        blockstore_close(ns->bs);
        if (ns->base.ops)
            pthread_mutex_destroy(&ns->names_lock);
        if (ns->lock_fd >= 0)
            close(ns->lock_fd);
        free(ns->dir);
        free(ns);
    }
    return rc;
}

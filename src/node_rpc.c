/* node_rpc.c - struct node over the RPC API: block/get + UnixFS decoding for stat, streamed ls
 * for listings, ranged cat for reads. */
#include "config.h"

#include "node_rpc.h"

#include "dagpb.h"
#include "log.h"
#include "rpcjson.h"

#include <errno.h>
#include <stdatomic.h>
#include <jansson.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest block we accept: Kubo's chunker maximum is just under 2 MiB, plus headers. */
#define MAX_BLOCK (4u << 20)
#define MAX_LS_LINE (1u << 20)
/* Directory blocks kept from stat for the listing: at most this many, and this many bytes. */
#define KEEP_BLOCKS 16
#define KEEP_BYTES (4u << 20)

/* A directory block that stat fetched, kept for the listing that usually comes next (a lookup
 * of the directory, then opendir), so that the block is fetched once. */
struct kept_block {
    struct cid cid;
    char *data; /* NULL: a free slot */
    size_t len;
    uint64_t seq; /* when it was kept: the oldest goes first */
};

struct node_rpc {
    struct node base; /* first: struct node * casts to struct node_rpc * */
    struct rpc *rpc;
    struct rpcjson_quirks quirks;
    bool kubo;
    unsigned timeout_ms;
    atomic_bool mv_no_replace; /* files/mv refuses to replace: rm first */
    char description[256];
    /* keep_lock protects kept, kept_bytes, keep_seq and kept_reused. Never held across a
     * request to the node. */
    pthread_mutex_t keep_lock;
    struct kept_block kept[KEEP_BLOCKS];
    size_t kept_bytes;
    uint64_t keep_seq;
    uint64_t kept_reused; /* listings that used a kept block instead of a block/get */
};

static struct node_rpc *to_rpc(struct node *n)
{
    return (struct node_rpc *)n;
}

/* Keep the block of directory c (takes data), dropping the oldest blocks beyond the bounds. */
static void keep_block(struct node_rpc *n, const struct cid *c, char *data, size_t len)
{
    if (len > KEEP_BYTES) {
        free(data);
        return;
    }
    pthread_mutex_lock(&n->keep_lock);
    for (size_t i = 0; i < KEEP_BLOCKS; i++) {
        if (n->kept[i].data && cid_equal(&n->kept[i].cid, c)) {
            pthread_mutex_unlock(&n->keep_lock); /* already kept (two stats in a row) */
            free(data);
            return;
        }
    }
    for (;;) {
        struct kept_block *empty = NULL, *oldest = NULL;
        for (size_t i = 0; i < KEEP_BLOCKS; i++) {
            struct kept_block *k = &n->kept[i];
            if (!k->data)
                empty = empty ? empty : k;
            else if (!oldest || k->seq < oldest->seq)
                oldest = k;
        }
        if (empty && n->kept_bytes + len <= KEEP_BYTES) {
            *empty = (struct kept_block){.cid = *c, .data = data, .len = len,
                                         .seq = ++n->keep_seq};
            n->kept_bytes += len;
            break;
        }
        /* No free slot, or too many bytes (so some block is kept): drop the oldest. */
        n->kept_bytes -= oldest->len;
        free(oldest->data);
        oldest->data = NULL;
    }
    pthread_mutex_unlock(&n->keep_lock);
}

/* Take the kept block of c, if any: the caller owns *data then. */
static bool take_block(struct node_rpc *n, const struct cid *c, char **data, size_t *len)
{
    bool found = false;
    pthread_mutex_lock(&n->keep_lock);
    for (size_t i = 0; i < KEEP_BLOCKS && !found; i++) {
        struct kept_block *k = &n->kept[i];
        if (k->data && cid_equal(&k->cid, c)) {
            *data = k->data;
            *len = k->len;
            n->kept_bytes -= k->len;
            k->data = NULL;
            n->kept_reused++;
            found = true;
        }
    }
    pthread_mutex_unlock(&n->keep_lock);
    return found;
}

static void log_failure(const char *what, const struct cid *c, int rc, const char *err)
{
    char s[CID_STR_MAX];
    cid_format(c, s, sizeof s);
    /* ENOENT: a missing CID is the user's to report; ECANCELED: our reader stopped a
     * streaming read it no longer needs (the file was closed, the reads turned random). */
    if (rc == -ENOENT || rc == -ECANCELED)
        log_debug("%s %s: %s", what, s, err);
    else
        log_warn("%s %s: %s", what, s, err);
}

static int stat_raw(struct node_rpc *n, const struct cid *c, const char *cs, struct node_stat *out)
{
    struct rpc_arg args[] = {{"arg", cs}};
    struct rpc_buf buf = {.max = 64 << 10};
    char err[512];
    int rc = rpc_call_buf(n->rpc, "block/stat", args, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        log_failure("block/stat", c, rc, err);
        return rc;
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf.data, buf.len, JSON_DISABLE_EOF_CHECK, &jerr);
    rc = -EIO;
    uint64_t size;
    if (j && rpcjson_u64(json_object_get(j, "Size"), &size) == 0) {
        out->kind = NODE_FILE;
        out->size = size;
        rc = 0;
    } else {
        log_warn("block/stat %s: malformed reply", cs);
    }
    json_decref(j);
    free(buf.data);
    return rc;
}

static int stat_dagpb(struct node_rpc *n, const struct cid *c, const char *cs,
                      struct node_stat *out)
{
    struct rpc_arg args[] = {{"arg", cs}};
    struct rpc_buf buf = {.max = MAX_BLOCK};
    char err[512];
    int rc = rpc_call_buf(n->rpc, "block/get", args, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        log_failure("block/get", c, rc, err);
        return rc;
    }
    struct dagpb_node pb;
    struct unixfs_data u;
    rc = dagpb_decode((const uint8_t *)buf.data, buf.len, &pb);
    if (rc < 0) {
        log_warn("block %s is not valid dag-pb", cs);
        free(buf.data);
        return -EIO;
    }
    if (!pb.has_data || unixfs_decode(pb.data, pb.data_len, &u) < 0) {
        log_warn("block %s has no valid UnixFS data", cs);
        rc = -EIO;
        goto out;
    }
    out->mode = u.has_mode ? (u.mode & 07777) : 0;
    out->has_mtime = u.has_mtime;
    out->mtime = u.mtime_sec;
    switch (u.type) {
    case UNIXFS_DIRECTORY:
    case UNIXFS_HAMT_SHARD:
        out->kind = NODE_DIR;
        out->size = 0;
        if (n->quirks.symlink_as_file) { /* rpc_list will want this block: keep it */
            dagpb_node_free(&pb);
            keep_block(n, c, buf.data, buf.len);
            return 0;
        }
        break;
    case UNIXFS_FILE:
    case UNIXFS_RAW: {
        /* The bytes this node holds: its own data plus what its children declare. A filesize
         * that disagrees is a broken or hostile block: refuse it rather than serve a file cut
         * short or padded. (One pass: a block may hold ~500k blocksizes.) */
        uint64_t own = u.has_data ? u.data_len : 0;
        uint64_t total = own + u.blocksizes_sum < own ? UINT64_MAX : own + u.blocksizes_sum;
        if (u.nblocksizes != pb.nlinks || (u.has_filesize && u.filesize != total)) {
            log_warn("file %s is inconsistent (filesize %llu, data and children %llu, %zu links "
                     "for %zu blocksizes)", cs, (unsigned long long)u.filesize,
                     (unsigned long long)total, pb.nlinks, u.nblocksizes);
            rc = -EIO;
            goto out;
        }
        out->kind = NODE_FILE;
        out->size = total;
        break;
    }
    case UNIXFS_SYMLINK:
        if (!u.has_data || u.data_len == 0 || u.data_len > 4095 ||
            memchr(u.data, '\0', u.data_len)) {
            log_warn("symlink %s has an invalid target", cs);
            rc = -EIO;
            goto out;
        }
        out->kind = NODE_SYMLINK;
        out->size = u.data_len;
        out->target = strndup((const char *)u.data, u.data_len);
        if (!out->target) {
            rc = -ENOMEM;
            goto out;
        }
        break;
    default:
        log_warn("block %s: UnixFS type %d is not supported", cs, (int)u.type);
        rc = -EIO;
        goto out;
    }
    rc = 0;
out:
    dagpb_node_free(&pb);
    free(buf.data);
    return rc;
}

static int rpc_stat(struct node *base, const struct cid *c, struct node_stat *out)
{
    struct node_rpc *n = to_rpc(base);
    char cs[CID_STR_MAX];
    memset(out, 0, sizeof *out);
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    if (c->codec == CID_CODEC_RAW)
        return stat_raw(n, c, cs, out);
    if (c->codec == CID_CODEC_DAG_PB)
        return stat_dagpb(n, c, cs, out);
    log_info("CID %s: codec 0x%" PRIx64 " is not UnixFS (only dag-pb and raw are)", cs, c->codec);
    return -EIO;
}

/* The directory's own links (name -> Tsize), sorted by name, to resolve kinds ls left open. */
struct dirblock {
    char *block;
    struct dagpb_node pb;
    struct dagpb_link **sorted;
};

struct list_ctx {
    struct node_rpc *n;
    struct ndjson nd;
    node_entry_fn fn;
    void *ud;
    unsigned skipped;
    unsigned emitted;
    struct dirblock *db;
};

/* When ls fails (js-ipfs's ls fetches every child, so one missing child fails it all), a plain
 * directory is listed from its own block: names and CIDs are certain, kinds are left to stat
 * (raw children are files of their block size). */
static int list_from_block(struct list_ctx *lc)
{
    struct dirblock *db = lc->db;
    for (size_t i = 0; i < db->pb.nlinks; i++) {
        const struct dagpb_link *l = &db->pb.links[i];
        struct node_entry e = {.name = l->name, .name_len = l->name_len};
        if (!node_name_ok(l->name, l->name_len) ||
            cid_from_bytes(l->hash, l->hash_len, &e.cid) < 0) {
            lc->skipped++;
            continue;
        }
        if (e.cid.codec == CID_CODEC_RAW) {
            e.kind = NODE_FILE;
            e.size = l->tsize;
        } else {
            e.kind = NODE_UNKNOWN;
        }
        /* Names are not NUL-terminated in the block: copy for the callback. */
        char name[256];
        memcpy(name, l->name, l->name_len);
        name[l->name_len] = '\0';
        e.name = name;
        int rc = lc->fn(lc->ud, &e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_link(const void *a, const void *b)
{
    const struct dagpb_link *x = *(const struct dagpb_link *const *)a;
    const struct dagpb_link *y = *(const struct dagpb_link *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static void dirblock_free(struct dirblock *db)
{
    if (!db)
        return;
    free(db->sorted);
    dagpb_node_free(&db->pb);
    free(db->block);
    free(db);
}

/* Fetch (unless stat kept it) and index a plain (not sharded) directory block; NULL if not
 * worth it or failed. */
static struct dirblock *dirblock_get(struct node_rpc *n, const struct cid *c, const char *cs)
{
    struct rpc_arg args[] = {{"arg", cs}};
    struct rpc_buf buf = {.max = MAX_BLOCK};
    char err[512];
    if (!take_block(n, c, &buf.data, &buf.len) &&
        rpc_call_buf(n->rpc, "block/get", args, 1, NULL, &buf, err, sizeof err) < 0)
        return NULL;
    struct dirblock *db = calloc(1, sizeof *db);
    struct unixfs_data u;
    if (!db || dagpb_decode((const uint8_t *)buf.data, buf.len, &db->pb) < 0) {
        free(db);
        free(buf.data);
        return NULL;
    }
    db->block = buf.data;
    if (!db->pb.has_data || unixfs_decode(db->pb.data, db->pb.data_len, &u) < 0 ||
        u.type != UNIXFS_DIRECTORY || db->pb.nlinks == 0 ||
        !(db->sorted = malloc(db->pb.nlinks * sizeof *db->sorted))) {
        dirblock_free(db);
        return NULL;
    }
    for (size_t i = 0; i < db->pb.nlinks; i++)
        db->sorted[i] = &db->pb.links[i];
    qsort(db->sorted, db->pb.nlinks, sizeof *db->sorted, cmp_link);
    return db;
}

static const struct dagpb_link *dirblock_find(const struct dirblock *db, const char *name,
                                              size_t len)
{
    struct dagpb_link key = {.name = name, .name_len = len};
    const struct dagpb_link *kp = &key;
    struct dagpb_link **hit =
        bsearch(&kp, db->sorted, db->pb.nlinks, sizeof *db->sorted, cmp_link);
    return hit ? *hit : NULL;
}

static int list_entry(void *ud, const struct node_entry *e)
{
    struct list_ctx *lc = ud;
    if (!lc->db)
        return lc->fn(lc->ud, e);
    const struct dagpb_link *l = dirblock_find(lc->db, e->name, e->name_len);
    if (!l) {
        /* js-ipfs lists a link with an empty name under its CID: not a real name. */
        char safe[160];
        log_warn("hiding a listed entry the directory block does not have (\"%s\")",
                 log_safe(e->name, e->name_len, safe, sizeof safe));
        lc->skipped++;
        return 0;
    }
    lc->emitted++;
    if (e->kind != NODE_UNKNOWN || e->cid.codec != CID_CODEC_DAG_PB)
        return lc->fn(lc->ud, e);
    int t = l->has_tsize ? unixfs_guess_small(l->tsize, e->size) : -1;
    if (t < 0)
        return lc->fn(lc->ud, e);
    struct node_entry copy = *e;
    copy.kind = t == UNIXFS_SYMLINK ? NODE_SYMLINK : NODE_FILE;
    return lc->fn(lc->ud, &copy);
}

static int list_line(void *ud, const char *line, size_t len)
{
    struct list_ctx *lc = ud;
    return rpcjson_ls(line, len, &lc->n->quirks, list_entry, lc, &lc->skipped);
}

static int list_sink(void *ud, const char *data, size_t len)
{
    struct list_ctx *lc = ud;
    return ndjson_feed(&lc->nd, data, len, list_line, lc);
}

static int rpc_list(struct node *base, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node_rpc *n = to_rpc(base);
    char cs[CID_STR_MAX], path[CID_STR_MAX + 8];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "/ipfs/%s", cs);
    struct rpc_arg args[] = {{"arg", path}, {"stream", "true"}};
    struct list_ctx lc = {.n = n, .fn = fn, .ud = ud};
    /* js-ipfs lists symlinks as small files; the directory block's link sizes tell them
     * apart in one request instead of one per child. */
    if (n->quirks.symlink_as_file)
        lc.db = dirblock_get(n, c, cs);
    ndjson_init(&lc.nd, MAX_LS_LINE);
    char err[512];
    int rc = rpc_call(n->rpc, "ls", args, 2, NULL, list_sink, &lc, err, sizeof err);
    if (rc == 0)
        rc = ndjson_finish(&lc.nd, list_line, &lc);
    else if (rc == -EMSGSIZE)
        snprintf(err, sizeof err, "a listing line is larger than %u bytes", MAX_LS_LINE);
    ndjson_free(&lc.nd);
    if (rc < 0 && rc != -ENOMEM && lc.db && lc.emitted == 0) {
        log_warn("ls %s failed (%s); listing it from its own block instead", cs, err);
        rc = list_from_block(&lc);
        err[0] = '\0';
    }
    dirblock_free(lc.db);
    if (rc < 0 && err[0])
        log_failure("ls", c, rc, err);
    if (lc.skipped)
        log_warn("ls %s: hid %u entries with invalid names or CIDs", cs, lc.skipped);
    return rc == -EMSGSIZE ? -EIO : rc;
}

struct read_ctx {
    char *buf;
    size_t len, got;
};

static int read_sink(void *ud, const char *data, size_t len)
{
    struct read_ctx *rc = ud;
    if (rc->got + len > rc->len)
        return -EIO; /* more than asked for: the node is confused */
    memcpy(rc->buf + rc->got, data, len);
    rc->got += len;
    return 0;
}

static ssize_t rpc_read(struct node *base, const struct cid *c, uint64_t off, size_t len,
                        char *buf)
{
    struct node_rpc *n = to_rpc(base);
    if (len == 0)
        return 0; /* never ask the node for 0 bytes: js-ipfs answers 400 */
    char cs[CID_STR_MAX], path[CID_STR_MAX + 8], soff[24], slen[24];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "/ipfs/%s", cs);
    snprintf(soff, sizeof soff, "%" PRIu64, off);
    snprintf(slen, sizeof slen, "%zu", len);
    struct rpc_arg args[] = {{"arg", path}, {"offset", soff}, {"length", slen}};
    struct read_ctx rc = {.buf = buf, .len = len};
    char err[512];
    int r = rpc_call(n->rpc, "cat", args, 3, NULL, read_sink, &rc, err, sizeof err);
    if (r < 0) {
        log_failure("cat", c, r, err);
        return r;
    }
    if (rc.got != len) {
        log_warn("cat %s at %" PRIu64 ": %zu bytes instead of %zu (truncated answer)", cs, off,
                 rc.got, len);
        return -EIO;
    }
    return (ssize_t)len;
}

/* A call whose reply body we ignore (files/mkdir, rm, cp, mv...). */
static int simple_call(struct node_rpc *n, const char *cmd, const struct rpc_arg *args,
                       size_t nargs)
{
    struct rpc_buf buf = {.max = 1 << 20};
    char err[512];
    int rc = rpc_call_buf(n->rpc, cmd, args, nargs, NULL, &buf, err, sizeof err);
    if (rc == -EEXIST || rc == -ENOENT)
        log_debug("%s %s: %s", cmd, nargs ? args[0].value : "", err);
    else if (rc < 0)
        log_warn("%s %s: %s", cmd, nargs ? args[0].value : "", err);
    free(buf.data);
    return rc;
}

static int rpc_mfs_stat(struct node *base, const char *path, struct node_stat *out,
                        struct cid *cid)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_arg args[] = {{"arg", path}};
    struct rpc_buf buf = {.max = 64 << 10};
    char err[512];
    int rc = rpc_call_buf(n->rpc, "files/stat", args, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        if (rc != -ENOENT)
            log_warn("files/stat %s: %s", path, err);
        return rc;
    }
    rc = rpcjson_files_stat(buf.data, buf.len, out, cid);
    free(buf.data);
    if (rc < 0) {
        log_warn("files/stat %s: malformed reply", path);
        return rc;
    }
    /* files/stat cannot tell a symlink from a small file on every node: the block can. */
    if ((out->kind == NODE_FILE && out->size <= 4096 && cid->codec == CID_CODEC_DAG_PB) ||
        out->kind == NODE_SYMLINK) {
        struct node_stat st;
        rc = rpc_stat(base, cid, &st);
        if (rc < 0)
            return rc;
        uint32_t mode = out->mode;
        *out = st;
        if (!out->mode)
            out->mode = mode;
    }
    return 0;
}

struct mfs_list_ctx {
    node_entry_fn fn;
    void *ud;
};

static int rpc_mfs_list(struct node *base, const char *path, node_entry_fn fn, void *ud)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_arg args[] = {{"arg", path}, {"long", "true"}};
    struct rpc_buf buf = {.max = 64 << 20};
    char err[512];
    int rc = rpc_call_buf(n->rpc, "files/ls", args, 2, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        log_warn("files/ls %s: %s", path, err);
        return rc;
    }
    unsigned skipped = 0;
    rc = rpcjson_files_ls(buf.data, buf.len, fn, ud, &skipped);
    free(buf.data);
    if (skipped)
        log_warn("files/ls %s: hid %u entries with invalid names or CIDs", path, skipped);
    return rc;
}

static int rpc_mfs_mkdir(struct node *base, const char *path)
{
    struct rpc_arg args[] = {{"arg", path}};
    return simple_call(to_rpc(base), "files/mkdir", args, 1);
}

static int rpc_mfs_rm(struct node *base, const char *path, bool recursive)
{
    struct rpc_arg args[] = {{"arg", path}, {"recursive", "true"}};
    return simple_call(to_rpc(base), "files/rm", args, recursive ? 2 : 1);
}

static int rpc_mfs_link(struct node *base, const struct cid *c, const char *path)
{
    char cs[CID_STR_MAX], src[CID_STR_MAX + 8];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(src, sizeof src, "/ipfs/%s", cs);
    struct rpc_arg args[] = {{"arg", src}, {"arg", path}};
    return simple_call(to_rpc(base), "files/cp", args, 2);
}

static int rpc_mfs_mv(struct node *base, const char *src, const char *dst)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_arg args[] = {{"arg", src}, {"arg", dst}};
    int rc = -EEXIST;
    if (!atomic_load(&n->mv_no_replace)) {
        rc = simple_call(n, "files/mv", args, 2);
        if (rc != -EEXIST)
            return rc;
    }
    /* js-ipfs will not move onto an existing name (Kubo replaces): remove it, then move.
     * Learn it once, so later replacements do not pay for the failing call. */
    atomic_store(&n->mv_no_replace, true);
    rc = rpc_mfs_rm(base, dst, false);
    if (rc == -EISDIR || rc == -EIO)
        rc = rpc_mfs_rm(base, dst, true);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    return simple_call(n, "files/mv", args, 2);
}

static int rpc_mfs_chmod(struct node *base, const char *path, uint32_t mode)
{
    struct node_rpc *n = to_rpc(base);
    char m[16];
    snprintf(m, sizeof m, "%04o", mode & 07777);
    if (n->kubo) {
        /* Kubo: ipfs files chmod <mode> <path> */
        struct rpc_arg args[] = {{"arg", m}, {"arg", path}};
        return simple_call(n, "files/chmod", args, 2);
    }
    struct rpc_arg args[] = {{"arg", path}, {"mode", m}};
    return simple_call(n, "files/chmod", args, 2);
}

static int rpc_mfs_touch(struct node *base, const char *path, int64_t mtime)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)mtime);
    struct rpc_arg args[] = {{"arg", path}, {"mtime", t}};
    return simple_call(to_rpc(base), "files/touch", args, 2);
}

/* Multipart body for add: one part named "data" (test node: filenames need >= 2 chars). */
#define BOUNDARY "ipfsfs-7d1c3a9e5b2f4068"
static const char part_head[] = "--" BOUNDARY "\r\n"
                                "Content-Disposition: form-data; name=\"file\"; filename=\"data\"\r\n"
                                "Content-Type: application/octet-stream\r\n\r\n";
static const char part_tail[] = "\r\n--" BOUNDARY "--\r\n";

struct upload {
    int fd;
    uint64_t size, off;  /* file bytes sent */
    size_t head_off, tail_off;
};

static ssize_t upload_source(void *ud, char *buf, size_t len)
{
    struct upload *u = ud;
    size_t head = sizeof part_head - 1, tail = sizeof part_tail - 1;
    if (u->head_off < head) {
        size_t n = head - u->head_off < len ? head - u->head_off : len;
        memcpy(buf, part_head + u->head_off, n);
        u->head_off += n;
        return (ssize_t)n;
    }
    if (u->off < u->size) {
        size_t want = u->size - u->off < len ? (size_t)(u->size - u->off) : len;
        ssize_t n = pread(u->fd, buf, want, (off_t)u->off);
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* the spool shrank under us */
        u->off += (uint64_t)n;
        return n;
    }
    if (u->tail_off < tail) {
        size_t n = tail - u->tail_off < len ? tail - u->tail_off : len;
        memcpy(buf, part_tail + u->tail_off, n);
        u->tail_off += n;
        return (ssize_t)n;
    }
    return 0;
}

static int rpc_add(struct node *base, int fd, uint64_t size, const struct node_add_opts *o,
                   struct cid *out)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_arg args[6];
    size_t na = 0;
    char cv[16];
    args[na++] = (struct rpc_arg){"pin", o->pin ? "true" : "false"};
    if (o->cid_version >= 0) {
        snprintf(cv, sizeof cv, "%d", o->cid_version);
        args[na++] = (struct rpc_arg){"cid-version", cv};
    }
    if (o->raw_leaves >= 0)
        args[na++] = (struct rpc_arg){"raw-leaves", o->raw_leaves ? "true" : "false"};
    if (o->chunker)
        args[na++] = (struct rpc_arg){"chunker", o->chunker};
    struct upload u = {.fd = fd, .size = size};
    struct rpc_upload up = {
        .source = upload_source,
        .ud = &u,
        .content_type = "multipart/form-data; boundary=" BOUNDARY,
        .length = (int64_t)(sizeof part_head - 1 + size + sizeof part_tail - 1),
    };
    /* An upload of any size is fine as long as bytes keep moving: bound stalls, not time. */
    struct rpc_call_opts co = {.upload = &up, .stall_ms = n->timeout_ms};
    struct rpc_buf buf = {.max = 1 << 20};
    char err[512];
    int rc = rpc_call_buf(n->rpc, "add", args, na, &co, &buf, err, sizeof err);
    if (rc < 0) {
        log_warn("add (%llu bytes): %s", (unsigned long long)size, err);
        return rc;
    }
    rc = rpcjson_add_result(buf.data, buf.len, out);
    if (rc < 0)
        log_warn("add: the node's reply has no valid CID");
    free(buf.data);
    return rc;
}

static int rpc_put_symlink(struct node *base, const char *target, struct cid *out)
{
    struct node_rpc *n = to_rpc(base);
    size_t tl = strlen(target);
    if (tl == 0 || tl > 4095)
        return -ENAMETOOLONG;
    /* PBNode{Data: UnixFS{Type: Symlink, Data: target}}, encoded by hand. */
    uint8_t inner[4200], block[4300];
    size_t i = 0, b = 0;
    inner[i++] = 0x08;
    inner[i++] = UNIXFS_SYMLINK;
    inner[i++] = 0x12;
    i += varint_encode(tl, inner + i);
    memcpy(inner + i, target, tl);
    i += tl;
    block[b++] = 0x0a;
    b += varint_encode(i, block + b);
    memcpy(block + b, inner, i);
    b += i;
    char path[] = "/tmp/ipfsfs-symlink-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    unlink(path);
    int rc = 0;
    if (write(fd, block, b) != (ssize_t)b) {
        rc = -EIO;
        goto out;
    }
    struct upload u = {.fd = fd, .size = b};
    struct rpc_upload up = {
        .source = upload_source,
        .ud = &u,
        .content_type = "multipart/form-data; boundary=" BOUNDARY,
        .length = (int64_t)(sizeof part_head - 1 + b + sizeof part_tail - 1),
    };
    /* Kubo takes cid-codec (format is its deprecated spelling); the test node takes either. */
    struct rpc_arg args[] = {{"cid-codec", "dag-pb"}, {"format", "dag-pb"}};
    struct rpc_call_opts co = {.upload = &up};
    struct rpc_buf buf = {.max = 64 << 10};
    char err[512];
    rc = rpc_call_buf(n->rpc, "block/put", args, n->kubo ? 1 : 2, &co, &buf, err, sizeof err);
    if (rc < 0) {
        log_warn("block/put (symlink): %s", err);
        goto out;
    }
    json_t *j = json_loadb(buf.data, buf.len, JSON_DISABLE_EOF_CHECK, NULL);
    const json_t *k = json_object_get(j, "Key");
    rc = json_is_string(k) && cid_parse(json_string_value(k), json_string_length(k), out) == 0
             ? 0
             : -EIO;
    json_decref(j);
    free(buf.data);
out:
    close(fd);
    return rc;
}

struct stream_ctx {
    int (*sink)(void *ud, const char *data, size_t len);
    void *ud;
    uint64_t want, got;
};

static int stream_sink(void *ud, const char *data, size_t len)
{
    struct stream_ctx *sc = ud;
    if (sc->got + len > sc->want)
        return -EIO; /* more than asked for: the node is confused */
    sc->got += len;
    return sc->sink(sc->ud, data, len);
}

static int rpc_read_stream(struct node *base, const struct cid *c, uint64_t off, uint64_t len,
                           int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    struct node_rpc *n = to_rpc(base);
    if (len == 0)
        return 0;
    char cs[CID_STR_MAX], path[CID_STR_MAX + 8], soff[24], slen[24];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "/ipfs/%s", cs);
    snprintf(soff, sizeof soff, "%" PRIu64, off);
    snprintf(slen, sizeof slen, "%" PRIu64, len);
    struct rpc_arg args[] = {{"arg", path}, {"offset", soff}, {"length", slen}};
    struct stream_ctx sc = {.sink = sink, .ud = ud, .want = len};
    /* A long range may take longer than one timeout in total: bound stalls instead. */
    struct rpc_call_opts co = {.stall_ms = n->timeout_ms};
    char err[512];
    int r = rpc_call(n->rpc, "cat", args, 3, &co, stream_sink, &sc, err, sizeof err);
    if (r < 0) {
        log_failure("cat", c, r, err);
        return r;
    }
    if (sc.got != len) {
        log_warn("cat %s at %" PRIu64 ": %" PRIu64 " bytes instead of %" PRIu64
                 " (truncated answer)", cs, off, sc.got, len);
        return -EIO;
    }
    return 0;
}

static int rpc_stats(struct node *base, char *buf, size_t len)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_stats s;
    rpc_get_stats(n->rpc, &s);
    pthread_mutex_lock(&n->keep_lock);
    uint64_t reused = n->kept_reused;
    pthread_mutex_unlock(&n->keep_lock);
    return snprintf(buf, len,
                    "rpc_requests %" PRIu64 "\nrpc_errors %" PRIu64 "\nrpc_bytes_in %" PRIu64
                    "\nrpc_bytes_out %" PRIu64 "\nrpc_in_flight %" PRId64
                    "\nrpc_dirblocks_reused %" PRIu64 "\n",
                    s.requests, s.errors, s.bytes_in, s.bytes_out, s.in_flight, reused);
}

static void rpc_destroy(struct node *base)
{
    struct node_rpc *n = to_rpc(base);
    rpc_free(n->rpc);
    for (size_t i = 0; i < KEEP_BLOCKS; i++)
        free(n->kept[i].data);
    pthread_mutex_destroy(&n->keep_lock);
    free(n);
}

static const struct node_ops rpc_ops = {
    .stat = rpc_stat,
    .list = rpc_list,
    .read = rpc_read,
    .read_stream = rpc_read_stream,
    .mfs_stat = rpc_mfs_stat,
    .mfs_list = rpc_mfs_list,
    .mfs_mkdir = rpc_mfs_mkdir,
    .mfs_rm = rpc_mfs_rm,
    .mfs_link = rpc_mfs_link,
    .mfs_mv = rpc_mfs_mv,
    .mfs_chmod = rpc_mfs_chmod,
    .mfs_touch = rpc_mfs_touch,
    .add = rpc_add,
    .put_symlink = rpc_put_symlink,
    .stats = rpc_stats,
    .destroy = rpc_destroy,
};

int node_rpc_new(const struct rpc_config *cfg, struct node **out, char *err, size_t errlen)
{
    struct node_rpc *n = calloc(1, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->base.ops = &rpc_ops;
    n->base.description = n->description;
    pthread_mutex_init(&n->keep_lock, NULL);
    int rc = rpc_new(cfg, &n->rpc);
    if (rc < 0) {
        free(n);
        snprintf(err, errlen, "cannot set up the HTTP client: %s", strerror(-rc));
        return rc;
    }
    struct rpc_buf buf = {.max = 64 << 10};
    char why[512];
    rc = rpc_call_buf(n->rpc, "version", NULL, 0, NULL, &buf, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "no IPFS node answers at %s: %s", cfg->endpoint->base_url, why);
        rpc_destroy(&n->base);
        return rc;
    }
    struct node_version v;
    rc = rpcjson_version(buf.data, buf.len, &v);
    free(buf.data);
    if (rc < 0) {
        snprintf(err, errlen, "%s answered /api/v0/version with something that is not an IPFS "
                 "node's reply", cfg->endpoint->base_url);
        rpc_destroy(&n->base);
        return -EIO;
    }
    n->quirks.symlink_as_file = !v.is_kubo;
    n->kubo = v.is_kubo;
    n->timeout_ms = cfg->timeout_ms;
    snprintf(n->description, sizeof n->description, "%s %s at %s%s%s",
             v.is_kubo ? "Kubo" : "IPFS node (js-ipfs compatible)", v.version,
             cfg->endpoint->base_url, cfg->endpoint->unix_path ? " via " : "",
             cfg->endpoint->unix_path ? cfg->endpoint->unix_path : "");
    *out = &n->base;
    return 0;
}

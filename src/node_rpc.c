/* node_rpc.c - struct node over Kubo's RPC API (Kubo >= 0.41): block/get + UnixFS decoding for
 * stat, streamed ls for listings, ranged cat for reads, the files API for the names (MFS). */
#include "config.h"

#include "node_rpc.h"

#include "clock.h"
#include "dagpb.h"
#include "hamt.h"
#include "ipns.h"
#include "log.h"
#include "rpcjson.h"
#include "unixfs_enc.h"

#include <errno.h>
#include <stdatomic.h>
#include <jansson.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Largest block we accept: Kubo's chunker maximum is just under 2 MiB, plus headers. */
#define MAX_BLOCK (4u << 20)
/* One listing (ls or files/ls): at most this many entries and reply bytes, streamed into the
 * caller as they come; past either the listing fails with EFBIG. */
#define MAX_LIST_ENTRIES (1u << 20)
#define MAX_LIST_BYTES (256ull << 20)
/* Bodies we read whole: replies of one object, and the per-path lines of a files/rm failure. */
#define MAX_SMALL_BODY (64u << 10)
/* How long a repo/stat answer serves statfs. */
#define SPACE_TTL_MS 5000u
/* Our temporary names in MFS: fs.c hides this prefix from listings and lookups. */
#define TMP_PREFIX ".ipfsfs-tmp-"

struct node_rpc {
    struct node base; /* first: struct node * casts to struct node_rpc * */
    struct rpc *rpc;
    unsigned timeout_ms;
    char description[256];
    atomic_uint_fast64_t tmp_seq; /* numbers our temporary MFS names */
    /* space_lock protects space_total, space_avail and space_at (the last repo/stat, taken at
     * monotonic ms space_at; 0: none yet). Never held across a request to the node. */
    pthread_mutex_t space_lock;
    uint64_t space_total, space_avail, space_at;
};

static struct node_rpc *to_rpc(struct node *n)
{
    return (struct node_rpc *)n;
}

/* An MFS path for a log line (it holds user names: escape them). */
#define SAFE(p, buf) log_safe((p), strlen(p), (buf), sizeof(buf))

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
    out->mtime_nsec = u.mtime_nsec;
    switch (u.type) {
    case UNIXFS_DIRECTORY:
    case UNIXFS_HAMT_SHARD:
        out->kind = NODE_DIR;
        out->size = 0;
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
    log_warn("CID %s: codec 0x%" PRIx64 " is not UnixFS (only dag-pb and raw are)", cs, c->codec);
    return -EOPNOTSUPP; /* the content is fine, and no file: not the node's fault (EIO) */
}

/* A listing, streamed into the caller, with every child's kind and size (Kubo fetches the
 * children), so that `ls -l` costs one request, remote content included. When a child is
 * missing, the rest comes from the directory's own blocks (resolve-type=false), dag-pb kinds
 * left for stat to find lazily. That second pass skips the names given before (a HAMT comes in
 * another order each time), and fails if it did not see them all. */
struct name_set {
    uint64_t *slot; /* open addressing; 0 = empty */
    size_t cap, n;
};

struct list_ctx {
    struct node_rpc *n;
    struct ls_reader lr;
    node_entry_fn fn;
    void *ud;
    int fn_err;     /* the caller's callback stopped the listing */
    unsigned skipped;
    uint64_t seen;  /* valid entries in this pass */
    bool second;    /* the second pass: skip what is in given */
    bool mangled;   /* a name the JSON listing gave was not its bytes (see list_entry) */
    bool raw;       /* the pass from the blocks: names are their bytes */
    unsigned blocks; /* blocks that pass fetched */
    struct name_set given;
    uint64_t given_n, matched; /* entries the first pass gave; the second pass saw again */
    uint64_t bytes; /* reply bytes in this pass */
};

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h ? h : 1;
}

/* Add h (returns -ENOMEM) or, with add false, tell whether it is there (1/0). */
static int name_set_op(struct name_set *s, uint64_t h, bool add)
{
    if (add && (s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i])
                continue;
            size_t j = s->slot[i] & (cap - 1);
            while (slot[j])
                j = (j + 1) & (cap - 1);
            slot[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    if (!s->cap)
        return 0;
    size_t j = h & (s->cap - 1);
    while (s->slot[j] && s->slot[j] != h)
        j = (j + 1) & (s->cap - 1);
    if (s->slot[j] == h)
        return 1;
    if (!add)
        return 0;
    s->slot[j] = h;
    s->n++;
    return 0;
}

static int list_entry(void *ud, const struct node_entry *e)
{
    struct list_ctx *lc = ud;
    if (++lc->seen > MAX_LIST_ENTRIES)
        return -EFBIG;
    /* Kubo's JSON writes a name whose bytes are not UTF-8 with U+FFFD in their place ("caf\xe9"
     * is listed as "caf\xef\xbf\xbd", and "caf\xe8" too: one hides the other, and neither
     * opens). Such entries are held back; the directory's own blocks give their names. */
    if (!lc->raw && memmem(e->name, e->name_len, "\xef\xbf\xbd", 3)) {
        lc->mangled = true;
        return 0;
    }
    uint64_t h = name_hash(e->name, e->name_len);
    int rc;
    if (lc->second) {
        if (name_set_op(&lc->given, h, false) == 1) {
            lc->matched++;
            return 0;
        }
    } else if ((rc = name_set_op(&lc->given, h, true)) < 0) {
        return rc;
    }
    rc = lc->fn(lc->ud, e);
    if (rc < 0)
        lc->fn_err = rc;
    else if (!lc->second)
        lc->given_n++;
    return rc;
}

static int list_sink(void *ud, const char *data, size_t len)
{
    struct list_ctx *lc = ud;
    lc->bytes += len;
    if (lc->bytes > MAX_LIST_BYTES)
        return -EFBIG;
    return ls_reader_feed(&lc->lr, data, len);
}

enum list_mode {
    LIST_FULL, /* kinds and sizes from the children, local blocks only (offline=true) */
    LIST_BARE, /* the directory's own blocks only (resolve-type=false&size=false) */
};

/* Not stream=true: Kubo then writes and flushes one chunk per entry, which cost both sides a
 * wakeup per entry (10,000 entries: 0.3-0.5 s of CPU here, and the listing took 0.3-0.6 s
 * longer than the same ls sent whole). Whole, the reply still comes within --timeout (the same
 * bound as streamed), sorted by name, and the reader hands on each entry as its bytes come. */
static int list_pass(struct list_ctx *lc, const char *path, enum list_mode mode, char *err,
                     size_t errlen)
{
    struct rpc_arg args[3] = {{"arg", path}};
    size_t na = 1;
    if (mode == LIST_FULL)
        args[na++] = (struct rpc_arg){"offline", "true"}; /* a missing child fails at once */
    if (mode == LIST_BARE) {
        args[na++] = (struct rpc_arg){"resolve-type", "false"};
        args[na++] = (struct rpc_arg){"size", "false"};
    }
    /* No timeout= for the node: Kubo 0.43.1 ends an ls cut by it as a success, HTTP 200 with
     * the entries it had so far (4,333 of 10,000 with timeout=500ms, whole or streamed alike),
     * and that partial listing would be cached as the directory. Our own deadline (curl's,
     * --timeout) fails the call instead. */
    const struct rpc_call_opts opts = {.no_node_timeout = true};
    lc->seen = 0;
    lc->bytes = 0;
    ls_reader_init(&lc->lr, list_entry, lc);
    int rc = rpc_call(lc->n->rpc, "ls", args, na, &opts, list_sink, lc, err, errlen);
    if (rc == 0)
        rc = ls_reader_finish(&lc->lr);
    lc->skipped = lc->lr.skipped;
    ls_reader_free(&lc->lr);
    if (rc == 0 && lc->second && lc->matched < lc->given_n)
        rc = -ESTALE;
    if (rc == -EIO && !err[0])
        snprintf(err, errlen, "a malformed listing (or one entry larger than 64 KiB)");
    else if (rc == -EFBIG)
        snprintf(err, errlen, "more than %u entries or %llu MiB: refused", MAX_LIST_ENTRIES,
                 MAX_LIST_BYTES >> 20);
    else if (rc == -ESTALE)
        snprintf(err, errlen, "the second pass of the listing lacks names the first gave");
    return rc;
}

static int rpc_get_block(struct node *base, const struct cid *c, uint8_t **data, size_t *len);

/* The blocks a listing from blocks may fetch (a HAMT's shards), at most. */
#define MAX_LIST_BLOCKS 65536u

/* Block c from the node, decoded: *pb and *u point into *block (the caller frees all three:
 * dagpb_node_free, free; also on failure). 0, -EBADMSG when it is not dag-pb with UnixFS
 * data, or the fetch's -errno. */
static int get_unixfs(struct node *base, const struct cid *c, uint8_t **block,
                      struct dagpb_node *pb, struct unixfs_data *u)
{
    size_t len = 0;
    *block = NULL;
    int rc = rpc_get_block(base, c, block, &len);
    if (rc == 0 && (dagpb_decode(*block, len, pb) < 0 || !pb->has_data ||
                    unixfs_decode(pb->data, pb->data_len, u) < 0))
        rc = -EBADMSG;
    return rc;
}

/* Directory c listed from its blocks (block/get, decoded here: names are their bytes), with
 * every name the JSON pass gave skipped (lc->second). Kinds are left to stat. */
static int list_blocks(struct list_ctx *lc, const struct cid *c, unsigned depth)
{
    uint8_t *b;
    struct dagpb_node pb = {0};
    struct unixfs_data u = {0};
    if (++lc->blocks > MAX_LIST_BLOCKS || depth > HAMT_MAX_DEPTH)
        return -EFBIG;
    int rc = get_unixfs(&lc->n->base, c, &b, &pb, &u);
    if (rc == -EBADMSG || (rc == 0 && u.type != UNIXFS_DIRECTORY && u.type != UNIXFS_HAMT_SHARD))
        rc = -EIO;
    bool hamt = u.type == UNIXFS_HAMT_SHARD;
    for (size_t i = 0; rc == 0 && i < pb.nlinks; i++) {
        const struct dagpb_link *l = &pb.links[i];
        const char *name = l->name;
        size_t nl = l->name_len;
        struct cid cc;
        if (cid_from_bytes(l->hash, l->hash_len, &cc) < 0) {
            lc->skipped++;
            continue;
        }
        if (hamt) {
            unsigned bucket;
            int k = hamt_link_name(l->name, l->name_len, &bucket, &name, &nl);
            if (k < 0) {
                lc->skipped++;
                continue;
            }
            if (k == 0) {
                rc = list_blocks(lc, &cc, depth + 1);
                continue;
            }
        }
        char nbuf[256];
        if (!node_name_ok(name, nl) || nl >= sizeof nbuf) {
            lc->skipped++;
            continue;
        }
        memcpy(nbuf, name, nl);
        nbuf[nl] = '\0';
        struct node_entry e = {.name = nbuf, .name_len = nl, .cid = cc, .kind = NODE_UNKNOWN};
        rc = list_entry(lc, &e);
    }
    dagpb_node_free(&pb);
    free(b);
    return rc;
}

/* node op lookup: a name in a HAMT directory from the shards on its path (block/get, decoded
 * here), not from a listing: Kubo's ls of a directory of millions of names (a Wikipedia
 * mirror) would cost more than MAX_LIST_ENTRIES allows, and 20,000 names took 0.2-0.7 s for
 * one name. A plain directory, and anything not as boxo writes a HAMT (another fanout or hash,
 * a bucket linked twice, a link that does not parse), is -EAGAIN: the listing decides. */
static int rpc_lookup(struct node *base, const struct cid *dir, const char *name, size_t len,
                      struct cid *out)
{
    struct cid cur = *dir;
    for (unsigned depth = 0;; depth++) {
        uint8_t *b;
        struct dagpb_node pb = {0};
        struct unixfs_data u = {0};
        if (depth > HAMT_MAX_DEPTH || hamt_index(name, len, depth) < 0)
            return -EAGAIN; /* past the hash: no block to fetch for that */
        int rc = get_unixfs(base, &cur, &b, &pb, &u);
        if (rc == 0)
            rc = u.type == UNIXFS_HAMT_SHARD                        ? 0
                 : depth == 0 && u.type != UNIXFS_DIRECTORY ? -ENOTDIR
                                                            : -EAGAIN;
        else if (rc == -EBADMSG)
            rc = -EAGAIN;
        if (rc == 0 && (u.fanout != HAMT_FANOUT || u.hash_type != 0x22 /* murmur3-x64-64 */))
            rc = -EAGAIN;
        const struct dagpb_link *found = NULL;
        int kind = rc == 0 ? hamt_shard_find(&pb, name, len, depth, &found) : rc;
        if (kind < 0)
            rc = kind;
        if (rc == 0 && cid_from_bytes(found->hash, found->hash_len, &cur) < 0)
            rc = -EAGAIN;
        dagpb_node_free(&pb);
        free(b);
        if (rc < 0)
            return rc;
        if (kind == 1) {
            *out = cur;
            return 0;
        }
    }
}

static int rpc_list(struct node *base, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node_rpc *n = to_rpc(base);
    char cs[CID_STR_MAX], path[CID_STR_MAX + 8];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "/ipfs/%s", cs);
    struct list_ctx lc = {.n = n, .fn = fn, .ud = ud};
    char err[512];
    uint64_t t0 = clock_mono_ms();
    int rc = list_pass(&lc, path, LIST_FULL, err, sizeof err);
    /* The first pass asks for local blocks only, so a missing child fails it at once. If it
     * took half of --timeout or more, the node itself is slow (or gone): a second pass would
     * double the wait that --timeout bounds. */
    bool slow = clock_mono_ms() - t0 >= n->timeout_ms / 2;
    /* A child is missing: "block was not found locally (offline)" at once on an offline node,
     * a timeout on an online one; or a child is not UnixFS (a 500 the node words as it likes:
     * EIO). List the rest from the directory's own blocks, leaving dag-pb kinds for stat, so
     * that one bad child costs only its own entry. */
    if ((rc == -ENOENT || rc == -ETIMEDOUT || rc == -EIO) && !lc.fn_err && !slow) {
        log_debug("ls %s: %s; listing it from its own block", cs, err);
        lc.second = true;
        rc = list_pass(&lc, path, LIST_BARE, err, sizeof err);
    }
    if (rc == 0 && lc.mangled && !lc.fn_err) {
        log_debug("ls %s: names that are not UTF-8: listing them from the blocks", cs);
        lc.second = lc.raw = true;
        lc.seen = 0;
        rc = list_blocks(&lc, c, 0);
        if (rc < 0 && !lc.fn_err)
            snprintf(err, sizeof err, "names that are not UTF-8, and the directory's blocks "
                     "could not be read: %s", strerror(-rc));
    }
    free(lc.given.slot);
    if (rc < 0 && !lc.fn_err)
        log_failure("ls", c, rc, err);
    if (lc.skipped)
        log_warn("ls %s: hid %u entries with invalid names or CIDs", cs, lc.skipped);
    return rc == -ESTALE ? -EIO : rc;
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
        return 0; /* never ask the node for 0 bytes */
    char cs[CID_STR_MAX], path[CID_STR_MAX + 8], soff[24], slen[24];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "/ipfs/%s", cs);
    snprintf(soff, sizeof soff, "%" PRIu64, off);
    snprintf(slen, sizeof slen, "%zu", len);
    struct rpc_arg args[] = {{"arg", path}, {"offset", soff}, {"length", slen}};
    struct read_ctx rc = {.buf = buf, .len = len};
    char err[512];
    const struct rpc_call_opts co = {.bytes = true};
    int r = rpc_call(n->rpc, "cat", args, 3, &co, read_sink, &rc, err, sizeof err);
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

/* A call whose reply body we ignore (files/mkdir, cp, mv...). */
/* A call whose answer is only its status; err gets the node's message. */
static int simple_call_err(struct node_rpc *n, const char *cmd, const struct rpc_arg *args,
                           size_t nargs, const char *path, char *err, size_t errlen)
{
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
    char safe[256];
    err[0] = '\0';
    int rc = rpc_call_buf(n->rpc, cmd, args, nargs, NULL, &buf, err, errlen);
    const char *what = SAFE(path, safe);
    if (rc == -EEXIST || rc == -ENOENT)
        log_debug("%s %s: %s", cmd, what, err);
    else if (rc < 0)
        log_warn("%s %s: %s", cmd, what, err);
    free(buf.data);
    return rc;
}

static int simple_call(struct node_rpc *n, const char *cmd, const struct rpc_arg *args,
                       size_t nargs, const char *path)
{
    char err[512];
    return simple_call_err(n, cmd, args, nargs, path, err, sizeof err);
}

/* Kubo's files/stat reads a path that starts with /ipfs/<cid>, /ipld/<cid> or /ipns/<name> as
 * content, not as MFS names (0.43): such paths are found in their parent's listing. The other
 * files/ commands take them as MFS paths. */
static bool content_like(const char *path)
{
    static const char *const ns[] = {"/ipfs/", "/ipns/", "/ipld/"};
    for (size_t i = 0; i < 3; i++)
        if (strncmp(path, ns[i], 6) == 0 && path[6] != '\0' && path[6] != '/')
            return true;
    return false;
}

struct find_ctx {
    const char *name;
    size_t len;
    struct cid cid;
    bool found;
};

static int find_entry(void *ud, const struct node_entry *e)
{
    struct find_ctx *f = ud;
    if (e->name_len == f->len && memcmp(e->name, f->name, f->len) == 0) {
        f->cid = e->cid;
        f->found = true;
        return -ECANCELED; /* found: no need for the rest */
    }
    return 0;
}

static int rpc_mfs_list(struct node *base, const char *path, node_entry_fn fn, void *ud);

static int stat_in_parent(struct node_rpc *n, const char *path, struct node_stat *out,
                          struct cid *cid)
{
    char parent[4096];
    size_t plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/')
        plen--; /* "/ipns/x/" names x */
    const char *slash = memrchr(path, '/', plen);
    size_t dl = (size_t)(slash - path);
    if (dl >= sizeof parent)
        return -ENAMETOOLONG;
    memcpy(parent, path, dl ? dl : 1);
    parent[dl ? dl : 1] = '\0';
    struct find_ctx f = {.name = slash + 1, .len = plen - dl - 1};
    int rc = rpc_mfs_list(&n->base, parent, find_entry, &f);
    if (rc < 0 && !(rc == -ECANCELED && f.found))
        return rc;
    if (!f.found)
        return -ENOENT;
    *cid = f.cid;
    return rpc_stat(&n->base, cid, out);
}

/* files/stat as it is: kind, size, mode, mtime and CID (a symlink's target not included). */
static int files_stat(struct node_rpc *n, const char *path, struct node_stat *out,
                      struct cid *cid)
{
    memset(out, 0, sizeof *out);
    if (content_like(path))
        return stat_in_parent(n, path, out, cid);
    struct rpc_arg args[] = {{"arg", path}};
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
    char err[512], safe[256];
    int rc = rpc_call_buf(n->rpc, "files/stat", args, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        if (rc != -ENOENT)
            log_warn("files/stat %s: %s", SAFE(path, safe), err);
        return rc;
    }
    rc = rpcjson_files_stat(buf.data, buf.len, out, cid);
    free(buf.data);
    if (rc < 0)
        log_warn("files/stat %s: malformed reply", SAFE(path, safe));
    return rc;
}

static int rpc_mfs_stat(struct node *base, const char *path, struct node_stat *out,
                        struct cid *cid)
{
    struct node_rpc *n = to_rpc(base);
    int rc = files_stat(n, path, out, cid);
    if (rc < 0 || out->target)
        return rc;
    /* A symlink's target is in its block; MFS may also call a symlink a small "file". */
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
    struct files_ls_reader r;
    uint64_t bytes;
};

static int mfs_list_sink(void *ud, const char *data, size_t len)
{
    struct mfs_list_ctx *m = ud;
    m->bytes += len;
    if (m->bytes > MAX_LIST_BYTES)
        return -EFBIG;
    return files_ls_feed(&m->r, data, len);
}

static int rpc_mfs_list(struct node *base, const char *path, node_entry_fn fn, void *ud)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_arg args[] = {{"arg", path}, {"long", "true"}};
    struct mfs_list_ctx m = {0};
    files_ls_init(&m.r, MAX_LIST_ENTRIES, fn, ud);
    char err[512], safe[256];
    int rc = rpc_call(n->rpc, "files/ls", args, 2, NULL, mfs_list_sink, &m, err, sizeof err);
    if (rc == 0)
        rc = files_ls_finish(&m.r);
    if (m.r.skipped)
        log_warn("files/ls %s: hid %u entries with invalid names or CIDs", SAFE(path, safe),
                 m.r.skipped);
    /* files/ls?long fetches every child: one that is not local (a tree copied in by CID)
     * fails it. The directory's own block still lists it, kinds left to stat. */
    bool fell_back = false;
    if ((rc == -ENOENT || rc == -ETIMEDOUT) && m.r.entries == 0) {
        struct node_stat st;
        struct cid c;
        if (files_stat(n, path, &st, &c) == 0 && st.kind == NODE_DIR) {
            log_debug("files/ls %s: %s; listing its block instead", SAFE(path, safe), err);
            fell_back = true;
            rc = rpc_list(base, &c, fn, ud); /* which logs its own failures */
        }
        node_stat_clear(&st);
    }
    if (!fell_back && rc == -EFBIG)
        log_warn("files/ls %s: more than %u entries or %llu MiB: refused", SAFE(path, safe),
                 MAX_LIST_ENTRIES, MAX_LIST_BYTES >> 20);
    else if (!fell_back && rc < 0 && rc != -ECANCELED && rc != -ENOENT)
        log_warn("files/ls %s: %s", SAFE(path, safe), err[0] ? err : "malformed reply");
    files_ls_free(&m.r);
    return rc;
}

/* After an MFS change failed without a clear answer (the call timed out behind Kubo's GC pin
 * lock, which ignores the request's deadline, or Kubo complained after doing it), read the
 * result back: did it happen? files/stat does not wait for that lock. */
enum mfs_check { CHECK_DIR, CHECK_GONE, CHECK_CID, CHECK_MODE, CHECK_MTIME };

static bool mfs_happened(struct node_rpc *n, const char *path, enum mfs_check what,
                         const struct cid *c, int64_t value, uint32_t nsec)
{
    struct node_stat st;
    struct cid got;
    int rc = files_stat(n, path, &st, &got);
    node_stat_clear(&st);
    if (what == CHECK_GONE)
        return rc == -ENOENT;
    if (rc < 0)
        return false;
    switch (what) {
    case CHECK_DIR:
        return st.kind == NODE_DIR;
    case CHECK_CID:
        return cid_equal(&got, c);
    case CHECK_MODE:
        return st.mode == (uint32_t)value;
    case CHECK_MTIME:
        return st.has_mtime && st.mtime == value && st.mtime_nsec == nsec;
    default:
        return false;
    }
}

/* A timed-out change is still queued behind the lock (a GC holds it for seconds, tens of
 * seconds on a big repo under load) and happens once it is free: watch for it one more
 * timeout (at least a second) before calling it failed (it waited 30 s more whatever
 * --timeout said: 36 s with --timeout=5). The caller waits about twice --timeout in all; a
 * stat that hangs at the window's end may add one more. A change that lands after the
 * window was reported failed: the price of a bounded wait. */
static bool mfs_happened_late(struct node_rpc *n, const char *path, enum mfs_check what,
                              const struct cid *c, int64_t value, uint32_t nsec)
{
    uint64_t window = n->timeout_ms > 1000u ? n->timeout_ms : 1000u;
    uint64_t end = clock_mono_ms() + window;
    for (;;) {
        if (mfs_happened(n, path, what, c, value, nsec))
            return true;
        if (clock_mono_ms() >= end)
            return false;
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* An MFS change; on a timeout, whether it happened after all decides. */
static int mfs_change(struct node_rpc *n, const char *cmd, const struct rpc_arg *args,
                      size_t nargs, const char *path, enum mfs_check what, const struct cid *c,
                      int64_t value, uint32_t nsec)
{
    int rc = simple_call(n, cmd, args, nargs, path);
    if (rc == -ETIMEDOUT && mfs_happened_late(n, path, what, c, value, nsec)) {
        char safe[256];
        log_info("%s %s timed out but happened", cmd, SAFE(path, safe));
        rc = 0;
    }
    return rc;
}

static int rpc_mfs_mkdir(struct node *base, const char *path)
{
    struct rpc_arg args[] = {{"arg", path}};
    return mfs_change(to_rpc(base), "files/mkdir", args, 1, path, CHECK_DIR, NULL, 0, 0);
}

static int rpc_mfs_chcid(struct node *base, const char *path, int version)
{
    char v[4];
    snprintf(v, sizeof v, "%d", version);
    struct rpc_arg args[] = {{"arg", path}, {"cid-version", v}};
    return simple_call(to_rpc(base), "files/chcid", args, 2, path);
}

struct rm_ctx {
    char body[MAX_SMALL_BODY];
    size_t len;
};

static int rm_sink(void *ud, const char *data, size_t len)
{
    struct rm_ctx *r = ud;
    size_t take = len < sizeof r->body - r->len ? len : sizeof r->body - r->len;
    memcpy(r->body + r->len, data, take); /* past the cap: the first lines tell enough */
    r->len += take;
    return 0;
}

static int rpc_mfs_rm(struct node *base, const char *path, bool recursive)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_arg args[] = {{"arg", path}, {"recursive", "true"}};
    struct rm_ctx *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    r->len = 0;
    char err[512], msg[256], safe[256];
    int rc = rpc_call(n->rpc, "files/rm", args, recursive ? 2 : 1, NULL, rm_sink, r, err,
                      sizeof err);
    /* Kubo: HTTP 200, one line per path that failed ("/x: file does not exist"), then the
     * trailer "can't remove some files". The line tells the errno. */
    if (rc < 0 && r->len > 0) {
        int e = rpcjson_rm_error(r->body, r->len, msg, sizeof msg);
        if (e != -EIO || rc == -EIO) {
            rc = e;
            snprintf(err, sizeof err, "%s", msg);
        }
    }
    free(r);
    if (rc == -ETIMEDOUT && mfs_happened_late(n, path, CHECK_GONE, NULL, 0, 0)) {
        log_info("files/rm %s timed out but happened", SAFE(path, safe));
        rc = 0;
    }
    if (rc == -ENOENT || rc == -EISDIR || rc == -ENOTEMPTY)
        log_debug("files/rm %s: %s", SAFE(path, safe), err);
    else if (rc < 0)
        log_warn("files/rm %s: %s", SAFE(path, safe), err);
    return rc;
}

/* mfs_batch: the node this thread batches its links on (NULL: none), and how many it made
 * since the last files/flush. Kubo (0.39 and later) refuses a 257th unflushed change
 * (Internal.MFSNoFlushLimit, 256 by default): a flush every BATCH_FLUSH_EVERY keeps under it. */
#define BATCH_FLUSH_EVERY 200
static __thread struct node_rpc *tls_batch;
static __thread unsigned tls_unflushed;

static int mfs_flush_all(struct node_rpc *n)
{
    struct rpc_arg args[] = {{"arg", "/"}};
    tls_unflushed = 0;
    return simple_call(n, "files/flush", args, 1, "/");
}

static int rpc_mfs_batch(struct node *base, bool on)
{
    struct node_rpc *n = to_rpc(base);
    if (on) {
        tls_batch = n;
        tls_unflushed = 0;
        return 0;
    }
    bool pending = tls_batch == n && tls_unflushed > 0;
    tls_batch = NULL;
    return pending ? mfs_flush_all(n) : 0;
}

static int rpc_mfs_link(struct node *base, const struct cid *c, const char *path)
{
    struct node_rpc *n = to_rpc(base);
    char cs[CID_STR_MAX], src[CID_STR_MAX + 8];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(src, sizeof src, "/ipfs/%s", cs);
    struct rpc_arg args[] = {{"arg", src}, {"arg", path}, {"flush", "false"}};
    char err[512];
    bool batched = tls_batch == n;
    int rc = simple_call_err(n, "files/cp", args, batched ? 3 : 2, path, err, sizeof err);
    /* A timeout may have linked it; so does a symlink, though Kubo 0.43 then answers "cannot
     * flush the created file ...: symlinks not yet supported". A node that says it lacks a
     * block ("block was not found locally (offline)", classed as a timeout) answered for
     * good: one look, not a wait of twice the timeout for a link that cannot come. */
    /* Kubo 0.43's files/cp links, then flushes the new name by its path: a move in the same
     * directory meanwhile (another file renamed over a name there) fails that flush with
     * "cannot flush the created file P: file does not exist", P being fine. Its link may be
     * there or not: look, and link again if not (creat(2) failed with ENOENT under
     * --write-through while another program renamed in the directory: 2 runs in 4). */
    for (int i = 0; i < 5 && rc == -ENOENT && strstr(err, "cannot flush the created file"); i++) {
        if (mfs_happened(n, path, CHECK_CID, c, 0, 0)) {
            rc = 0;
            break;
        }
        usleep(10000u << i); /* the move ends meanwhile: 10 ms, then twice as long */
        rc = simple_call_err(n, "files/cp", args, batched ? 3 : 2, path, err, sizeof err);
    }
    bool late = rc == -ETIMEDOUT && !strstr(err, "not found locally");
    if (rc < 0 && rc != -EEXIST && rc != -ENOENT && rc != -ENOTDIR &&
        (late ? mfs_happened_late(n, path, CHECK_CID, c, 0, 0)
              : mfs_happened(n, path, CHECK_CID, c, 0, 0))) {
        char safe[256];
        log_debug("files/cp %s failed but happened", SAFE(path, safe));
        rc = 0;
    }
    if (rc == 0 && batched && ++tls_unflushed >= BATCH_FLUSH_EVERY)
        rc = mfs_flush_all(n);
    return rc;
}

/* The last component of p (without trailing slashes) and its parent's last component. */
static void last_two(const char *p, const char **dir, size_t *dlen, const char **base,
                     size_t *blen)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    const char *s = memrchr(p, '/', n);
    *base = s ? s + 1 : p;
    *blen = n - (size_t)(*base - p);
    size_t pn = s ? (size_t)(s - p) : 0;
    while (pn > 0 && p[pn - 1] == '/')
        pn--;
    const char *s2 = pn ? memrchr(p, '/', pn) : NULL;
    *dir = s2 ? s2 + 1 : p;
    *dlen = pn - (size_t)(*dir - p);
}

/* A fresh name next to path (in path's directory), for moves in two steps. */
static int tmp_next_to(struct node_rpc *n, const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 0;
    int w = snprintf(out, outlen, "%.*s/" TMP_PREFIX "mv-%ld-%" PRIuFAST64, (int)dl, path,
                     (long)getpid(), atomic_fetch_add(&n->tmp_seq, 1));
    return w < 0 || (size_t)w >= outlen ? -ENAMETOOLONG : 0;
}

/* files/mv src dst for a dst that does not exist or is a file (Kubo replaces a file). */
static int mv_once(struct node_rpc *n, const char *src, const char *dst)
{
    struct rpc_arg args[] = {{"arg", src}, {"arg", dst}};
    int rc = simple_call(n, "files/mv", args, 2, src);
    if (rc == -ETIMEDOUT && mfs_happened_late(n, src, CHECK_GONE, NULL, 0, 0) &&
        !mfs_happened(n, dst, CHECK_GONE, NULL, 0, 0)) {
        char safe[256];
        log_info("files/mv %s timed out but happened", SAFE(src, safe));
        rc = 0;
    }
    return rc;
}

/* A move that really moves. boxo's mfs.Mv skips unlinking the source when the two parent
 * directories have the same base name and so do the two names (/x/d/f -> /y/d/f): it would
 * link dst and leave src. Such a move goes through a temporary name in dst's directory. */
static int move(struct node_rpc *n, const char *src, const char *dst)
{
    const char *sd, *sb, *dd, *db;
    size_t sdl, sbl, ddl, dbl;
    last_two(src, &sd, &sdl, &sb, &sbl);
    last_two(dst, &dd, &ddl, &db, &dbl);
    if (sdl != ddl || sbl != dbl || memcmp(sd, dd, sdl) != 0 || memcmp(sb, db, sbl) != 0)
        return mv_once(n, src, dst);
    char tmp[4096], safe[256];
    int rc = tmp_next_to(n, dst, tmp, sizeof tmp);
    if (rc == 0)
        rc = mv_once(n, src, tmp);
    if (rc < 0)
        return rc;
    rc = mv_once(n, tmp, dst);
    if (rc < 0 && mv_once(n, tmp, src) < 0)
        log_err("could not move %s back after a failed rename: it is left under a temporary "
                "name", SAFE(src, safe));
    return rc;
}

static int count_entry(void *ud, const struct node_entry *e)
{
    (void)e;
    (*(uint64_t *)ud)++;
    return -ECANCELED; /* one is enough */
}

/* Remove the directory dst if it is empty, else ENOTEMPTY. It is first moved to a temporary
 * name, so that nothing can be added to it between the check and the removal: a tree is
 * never removed unless it was empty. */
static int remove_empty_dir(struct node_rpc *n, const char *dst)
{
    char tmp[4096], safe[256];
    int rc = tmp_next_to(n, dst, tmp, sizeof tmp);
    if (rc == 0)
        rc = mv_once(n, dst, tmp);
    if (rc < 0)
        return rc;
    uint64_t count = 0;
    rc = rpc_mfs_list(&n->base, tmp, count_entry, &count);
    if (rc == -ECANCELED || (rc == 0 && count > 0))
        rc = -ENOTEMPTY;
    if (rc == 0)
        rc = rpc_mfs_rm(&n->base, tmp, true);
    if (rc < 0 && mv_once(n, tmp, dst) < 0)
        log_err("could not move %s back: it is left under a temporary name", SAFE(dst, safe));
    return rc;
}

/* rename(2) on MFS: Kubo's files/mv replaces a file, but moves *into* an existing directory
 * and replaces a file by a directory. */
static int rpc_mfs_mv(struct node *base, const char *src, const char *dst)
{
    struct node_rpc *n = to_rpc(base);
    if (strcmp(src, dst) == 0)
        return 0;
    struct node_stat ss, ds;
    struct cid sc, dc;
    int rc = files_stat(n, src, &ss, &sc);
    node_stat_clear(&ss);
    if (rc < 0)
        return rc;
    rc = files_stat(n, dst, &ds, &dc);
    node_stat_clear(&ds);
    if (rc == 0) {
        if (ds.kind == NODE_DIR && ss.kind != NODE_DIR)
            return -EISDIR;
        if (ds.kind != NODE_DIR && ss.kind == NODE_DIR)
            return -ENOTDIR;
        if (ds.kind == NODE_DIR && (rc = remove_empty_dir(n, dst)) < 0)
            return rc;
    } else if (rc != -ENOENT) {
        return rc;
    }
    return move(n, src, dst);
}

static int put_dagpb(struct node_rpc *n, const uint8_t *block, size_t b, struct cid *out);

/* Kubo's files/chmod stores any mode it is given, the default one too; only a mode of 0 it
 * stores as none (confirmed on Kubo 0.43.1, for files and directories). A directory's chmod
 * back to the default mode (0755) is therefore files/chmod 0: its CID is again the one
 * `ipfs add -r` gives (tar x and cp -a make directories 0700, then chmod them 0755). A file's
 * (0644) instead re-encodes the name's root block without its mode and puts that in place
 * (files/cp?force=true, one call): files/chmod 0 would keep the layout files/write made, not
 * `ipfs add`'s (rsync writes 0600, then chmods 0644). *done says whether this handled the
 * chmod (else the caller runs files/chmod with the mode). */
static int clear_mode(struct node_rpc *n, const char *path, uint32_t mode, bool *done)
{
    struct node_stat st;
    struct cid c, nc;
    *done = false;
    int rc = rpc_mfs_stat(&n->base, path, &st, &c);
    if (rc < 0)
        return rc;
    enum node_kind kind = st.kind;
    node_stat_clear(&st);
    if (kind == NODE_DIR && (mode & 07777) == 0755u) {
        struct rpc_arg args[] = {{"arg", "0000"}, {"arg", path}};
        rc = mfs_change(n, "files/chmod", args, 2, path, CHECK_MODE, NULL, 0, 0);
        *done = rc == 0;
        return rc;
    }
    /* Files: files/cp?force=true cannot replace a directory ("not a file"). */
    if ((mode & 07777) != 0644u || c.codec != CID_CODEC_DAG_PB || kind != NODE_FILE)
        return 0;
    char cs[CID_STR_MAX], src[CID_STR_MAX + 8], err[512];
    if (cid_format(&c, cs, sizeof cs) < 0)
        return -EINVAL;
    struct rpc_arg gargs[] = {{"arg", cs}};
    struct rpc_buf buf = {.max = MAX_BLOCK};
    rc = rpc_call_buf(n->rpc, "block/get", gargs, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        log_failure("block/get", &c, rc, err);
        return rc;
    }
    struct dagpb_node pb;
    struct unixfs_data u;
    struct unixfs_fields f;
    uint64_t *bs = NULL;
    struct pb_link_out *links = NULL;
    struct bytebuf d = {0}, b = {0};
    if (dagpb_decode((const uint8_t *)buf.data, buf.len, &pb) < 0) {
        free(buf.data);
        return 0; /* not ours to judge: files/chmod says what it says */
    }
    if (!pb.has_data || unixfs_decode(pb.data, pb.data_len, &u) < 0 ||
        (u.type != UNIXFS_FILE && u.type != UNIXFS_DIRECTORY))
        goto out; /* a HAMT keeps its explicit mode: files/chmod */
    if (!u.has_mode) {
        *done = true; /* already the default, stored as none */
        goto out;
    }
    rc = unixfs_fields_from(&u, pb.data, pb.data_len, &f, &bs);
    if (rc < 0)
        goto out;
    f.has_mode = false;
    if (pb.nlinks && !(links = calloc(pb.nlinks, sizeof *links))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < pb.nlinks; i++) {
        const struct dagpb_link *l = &pb.links[i];
        links[i] = (struct pb_link_out){.hash = l->hash, .hash_len = l->hash_len,
                                        .name = l->name ? l->name : "",
                                        .name_len = l->name_len, .tsize = l->tsize};
    }
    rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, pb.nlinks, d.p, d.len, true, &b);
    if (rc == 0)
        rc = put_dagpb(n, b.p, b.len, &nc);
    if (rc < 0)
        goto out;
    if (c.version == 0)
        nc.version = 0; /* the same block: keep the name's CID version */
    if (cid_format(&nc, cs, sizeof cs) < 0) {
        rc = -EIO;
        goto out;
    }
    snprintf(src, sizeof src, "/ipfs/%s", cs);
    struct rpc_arg cargs[] = {{"arg", src}, {"arg", path}, {"force", "true"}};
    rc = simple_call(n, "files/cp", cargs, 3, path);
    if (rc == 0)
        *done = true;
out:
    bytebuf_free(&d);
    bytebuf_free(&b);
    free(links);
    free(bs);
    dagpb_node_free(&pb);
    free(buf.data);
    return rc;
}

static int rpc_mfs_chmod(struct node *base, const char *path, uint32_t mode)
{
    bool done;
    int rc = clear_mode(to_rpc(base), path, mode, &done);
    if (rc < 0 || done)
        return rc;
    char m[16];
    snprintf(m, sizeof m, "%04o", mode & 07777);
    /* ipfs files chmod <mode> <path> */
    struct rpc_arg args[] = {{"arg", m}, {"arg", path}};
    return mfs_change(to_rpc(base), "files/chmod", args, 2, path, CHECK_MODE, NULL,
                      mode & 07777, 0);
}

static int rpc_mfs_touch(struct node *base, const char *path, const struct timespec *mtime)
{
    char t[24], ns[16];
    if (!node_time_ok(mtime))
        return -EINVAL;
    uint32_t nsec = (uint32_t)mtime->tv_nsec;
    snprintf(t, sizeof t, "%lld", (long long)mtime->tv_sec);
    snprintf(ns, sizeof ns, "%u", nsec);
    /* Kubo stores the fraction as UnixFS 1.5's FractionalNanoseconds (none when 0). */
    struct rpc_arg args[] = {{"arg", path}, {"mtime", t}, {"mtime-nsecs", ns}};
    return mfs_change(to_rpc(base), "files/touch", args, nsec ? 3 : 2, path, CHECK_MTIME, NULL,
                      (int64_t)mtime->tv_sec, nsec);
}

/* Multipart body for add, block/put and dag/import: one part named "file". Its boundary is
 * drawn anew for each request (128 random bits): a fixed one would end the part early at the
 * first file that holds it (Kubo then refuses the upload, and every push after it). */
struct upload {
    int fd;
    uint64_t size, off;  /* file bytes sent; size NODE_CAR_STREAM: fd read to its end */
    bool eof;            /* (that end was reached) */
    size_t head_off, tail_off;
    char head[192], tail[64], ctype[96];
    size_t head_len, tail_len;
};

static void upload_init(struct upload *u, int fd, uint64_t size)
{
    uint8_t r[16];
    char b[2 * sizeof r + 1];
    memset(u, 0, sizeof *u);
    u->fd = fd;
    u->size = size;
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* No entropy yet (early boot): still unlike anything a file holds by chance. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uintptr_t)u;
        for (size_t i = 0; i < sizeof r; i++, x = x * 6364136223846793005u + 1442695040888963407u)
            r[i] = (uint8_t)(x >> 56);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(b + 2 * i, 3, "%02x", r[i]);
    u->head_len = (size_t)snprintf(u->head, sizeof u->head,
                                   "--ipfsfs-%s\r\nContent-Disposition: form-data; name=\"file\"; "
                                   "filename=\"data\"\r\nContent-Type: application/octet-stream"
                                   "\r\n\r\n", b);
    u->tail_len = (size_t)snprintf(u->tail, sizeof u->tail, "\r\n--ipfsfs-%s--\r\n", b);
    snprintf(u->ctype, sizeof u->ctype, "multipart/form-data; boundary=ipfsfs-%s", b);
}

/* The whole body's length for a file of size bytes. */
static int64_t upload_length(const struct upload *u, uint64_t size)
{
    return (int64_t)(u->head_len + size + u->tail_len);
}

static ssize_t upload_source(void *ud, char *buf, size_t len)
{
    struct upload *u = ud;
    size_t head = u->head_len, tail = u->tail_len;
    if (u->head_off < head) {
        size_t n = head - u->head_off < len ? head - u->head_off : len;
        memcpy(buf, u->head + u->head_off, n);
        u->head_off += n;
        return (ssize_t)n;
    }
    if (u->size == NODE_CAR_STREAM && !u->eof) {
        ssize_t n;
        while ((n = read(u->fd, buf, len)) < 0 && errno == EINTR)
            ;
        if (n < 0)
            return -errno;
        if (n > 0) {
            u->off += (uint64_t)n;
            return n;
        }
        u->eof = true; /* its end: the part's tail follows */
    } else if (u->off < u->size && u->size != NODE_CAR_STREAM) {
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
        memcpy(buf, u->tail + u->tail_off, n);
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
    struct upload u;
    upload_init(&u, fd, size);
    struct rpc_upload up = {
        .source = upload_source,
        .ud = &u,
        .content_type = u.ctype,
        .length = upload_length(&u, size),
    };
    /* An upload of any size is fine as long as bytes keep moving: bound stalls, not time. */
    struct rpc_call_opts co = {.upload = &up, .stall_ms = n->timeout_ms};
    /* The reply is one line per file (here one) and per progress step: small. A pin or provide
     * failure after the root line comes as a trailer, and rpc_call fails the call for it. */
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
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

static int put_dagpb(struct node_rpc *n, const uint8_t *block, size_t b, struct cid *out);

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
    return put_dagpb(n, block, b, out);
}

/* Store one dag-pb block; returns its CID (Kubo answers CIDv1). */
static int put_dagpb(struct node_rpc *n, const uint8_t *block, size_t b, struct cid *out)
{
    char path[] = "/tmp/ipfsfs-block-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    unlink(path);
    int rc = 0;
    if (write(fd, block, b) != (ssize_t)b) {
        rc = -EIO;
        goto out;
    }
    struct upload u;
    upload_init(&u, fd, b);
    struct rpc_upload up = {
        .source = upload_source,
        .ud = &u,
        .content_type = u.ctype,
        .length = upload_length(&u, b),
    };
    struct rpc_arg args[] = {{"cid-codec", "dag-pb"}};
    struct rpc_call_opts co = {.upload = &up};
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
    char err[512];
    rc = rpc_call_buf(n->rpc, "block/put", args, 1, &co, &buf, err, sizeof err);
    if (rc < 0) {
        log_warn("block/put: %s", err);
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
    struct rpc_call_opts co = {.stall_ms = n->timeout_ms, .bytes = true};
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

/* statfs: the repo's StorageMax and what is left of it, from one cheap repo/stat
 * (size-only), kept for SPACE_TTL_MS so that `df` in a loop does not walk the repo. */
static int rpc_space(struct node *base, uint64_t *total, uint64_t *avail)
{
    struct node_rpc *n = to_rpc(base);
    uint64_t now = clock_mono_ms();
    pthread_mutex_lock(&n->space_lock);
    bool fresh = n->space_at && now - n->space_at < SPACE_TTL_MS;
    *total = n->space_total;
    *avail = n->space_avail;
    pthread_mutex_unlock(&n->space_lock);
    if (fresh)
        return 0;
    struct rpc_arg args[] = {{"size-only", "true"}};
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
    char err[512];
    int rc = rpc_call_buf(n->rpc, "repo/stat", args, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        log_warn("repo/stat: %s", err);
        return rc;
    }
    uint64_t used, max;
    rc = rpcjson_repo_stat(buf.data, buf.len, &used, &max);
    free(buf.data);
    if (rc < 0) {
        log_warn("repo/stat: malformed reply");
        return rc;
    }
    *total = max;
    *avail = used < max ? max - used : 0;
    pthread_mutex_lock(&n->space_lock);
    n->space_total = *total;
    n->space_avail = *avail;
    n->space_at = now ? now : 1;
    pthread_mutex_unlock(&n->space_lock);
    return 0;
}

static int rpc_stats(struct node *base, char *buf, size_t len)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_stats s;
    rpc_get_stats(n->rpc, &s);
    return snprintf(buf, len,
                    "rpc_requests %" PRIu64 "\nrpc_errors %" PRIu64 "\nrpc_bytes_in %" PRIu64
                    "\nrpc_bytes_out %" PRIu64 "\nrpc_in_flight %" PRId64
                    "\nrpc_waiting %" PRIu64 "\nrpc_waits_refused %" PRIu64 "\n",
                    s.requests, s.errors, s.bytes_in, s.bytes_out, s.in_flight, s.waiting,
                    s.waits_refused);
}

static void rpc_destroy(struct node *base)
{
    struct node_rpc *n = to_rpc(base);
    rpc_free(n->rpc);
    pthread_mutex_destroy(&n->space_lock);
    free(n);
}

/* ---- for the sync engine (node_rpc.h) ---- */

static int rpc_get_block(struct node *base, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node_rpc *n = to_rpc(base);
    char cs[CID_STR_MAX], err[512];
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    struct rpc_arg args[] = {{"arg", cs}};
    struct rpc_buf buf = {.max = MAX_BLOCK};
    int rc = rpc_call_buf(n->rpc, "block/get", args, 1, NULL, &buf, err, sizeof err);
    if (rc < 0) {
        log_failure("block/get", c, rc, err);
        return rc;
    }
    *data = (uint8_t *)buf.data;
    *len = buf.len;
    return 0;
}

static uint64_t rpc_upload_moved(struct node *base)
{
    return rpc_upload_moved_ms(to_rpc(base)->rpc);
}

/* dag/import takes the CAR as one multipart file part, like add. */
static int rpc_put_car(struct node *base, int fd, uint64_t size, char *err, size_t errlen)
{
    struct node_rpc *n = to_rpc(base);
    struct upload u;
    upload_init(&u, fd, size);
    struct rpc_upload up = {
        .source = upload_source,
        .ud = &u,
        .content_type = u.ctype,
        .length = size == NODE_CAR_STREAM ? -1 /* chunked */ : upload_length(&u, size),
    };
    /* The blocks are kept by the names that link them (files/cp next), not by pins. */
    struct rpc_arg args[] = {{"pin-roots", "false"}, {"stats", "false"}};
    struct rpc_call_opts co = {.upload = &up, .stall_ms = n->timeout_ms};
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
    int rc = rpc_call_buf(n->rpc, "dag/import", args, 2, &co, &buf, err, errlen);
    free(buf.data);
    return rc;
}

/* refs -r, offline: Kubo lists every link under c, one JSON object a line, and where a block
 * is missing it ends with {"Ref":"","Err":"failed to fetch all nodes"} (0.43.1) instead of
 * fetching it. Lines go through the reply's NDJSON splitter; nothing else is kept. */
struct refs_scan {
    struct ndjson nd;
    bool missing;
};

static int refs_line(void *ud, const char *line, size_t len)
{
    struct refs_scan *rs = ud;
    json_t *o = json_loadb(line, len, 0, NULL);
    const char *e = o ? json_string_value(json_object_get(o, "Err")) : NULL;
    if (e && *e)
        rs->missing = true;
    json_decref(o);
    return 0;
}

static int refs_sink(void *ud, const char *data, size_t len)
{
    struct refs_scan *rs = ud;
    return ndjson_feed(&rs->nd, data, len, refs_line, rs);
}

static void rpc_node_end_by(struct node *base, uint64_t mono_ms)
{
    rpc_end_by(to_rpc(base)->rpc, mono_ms);
}

/* POST id: the peer ID (a new repo has a new one). */
static int rpc_identity(struct node *base, char *buf, size_t len)
{
    struct node_rpc *n = to_rpc(base);
    struct rpc_buf b = {.max = 1 << 20}; /* an online node lists every address it listens on */
    char err[512];
    int rc = rpc_call_buf(n->rpc, "id", NULL, 0, NULL, &b, err, sizeof err);
    if (rc < 0) {
        log_debug("id: %s", err);
        return rc == -EOPNOTSUPP ? -ENOSYS : rc;
    }
    rc = rpcjson_id(b.data, b.len, buf, len);
    free(b.data);
    return rc;
}

static int rpc_has_dag(struct node *base, const struct cid *c)
{
    struct node_rpc *n = to_rpc(base);
    char cs[CID_STR_MAX], err[512] = "";
    if (cid_format(c, cs, sizeof cs) < 0)
        return -EINVAL;
    struct rpc_arg args[] = {
        {"arg", cs}, {"recursive", "true"}, {"unique", "true"}, {"offline", "true"}};
    struct refs_scan rs = {0};
    ndjson_init(&rs.nd, 64 * 1024);
    /* Bounded by stalls, not by the whole walk's length (a file of many GiB lists long). */
    struct rpc_call_opts co = {.stall_ms = n->timeout_ms};
    int rc = rpc_call(n->rpc, "refs", args, 4, &co, refs_sink, &rs, err, sizeof err);
    if (rc == 0)
        rc = ndjson_finish(&rs.nd, refs_line, &rs);
    ndjson_free(&rs.nd);
    if (rc == 0)
        return !rs.missing;
    log_debug("refs -r %s (offline) on %s: %s", cs, base->description, err);
    /* The root itself missing: a 500, "block was not found locally (offline)" (which the
     * classifier words as a timeout: on an online node it would be one). */
    if (rc == -ENOENT || strstr(err, "not found"))
        return 0;
    return rc;
}

static const struct node_ops rpc_ops = {
    .stat = rpc_stat,
    .list = rpc_list,
    .lookup = rpc_lookup,
    .read = rpc_read,
    .read_stream = rpc_read_stream,
    .mfs_stat = rpc_mfs_stat,
    .mfs_list = rpc_mfs_list,
    .mfs_mkdir = rpc_mfs_mkdir,
    .mfs_chcid = rpc_mfs_chcid,
    .mfs_rm = rpc_mfs_rm,
    .mfs_link = rpc_mfs_link,
    .mfs_batch = rpc_mfs_batch,
    .mfs_mv = rpc_mfs_mv,
    .mfs_chmod = rpc_mfs_chmod,
    .mfs_touch = rpc_mfs_touch,
    .add = rpc_add,
    .put_symlink = rpc_put_symlink,
    .space = rpc_space,
    .put_car = rpc_put_car,
    .upload_moved_ms = rpc_upload_moved,
    .get_block = rpc_get_block,
    .has_dag = rpc_has_dag,
    .identity = rpc_identity,
    .end_by = rpc_node_end_by,
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
    pthread_mutex_init(&n->space_lock, NULL);
    int rc = rpc_new(cfg, &n->rpc);
    if (rc < 0) {
        pthread_mutex_destroy(&n->space_lock);
        free(n);
        if (rc == -EPERM) /* rpc_new said why: the secret would go in clear text */
            snprintf(err, errlen, "the API secret is not sent to %s over plain http",
                     cfg->endpoint->base_url);
        else
            snprintf(err, errlen, "cannot set up the HTTP client: %s", strerror(-rc));
        return rc;
    }
    struct rpc_buf buf = {.max = MAX_SMALL_BODY};
    char why[512];
    rc = rpc_call_buf(n->rpc, "version", NULL, 0, NULL, &buf, why, sizeof why);
    if (rc < 0) {
        if (rc == -EACCES)
            snprintf(err, errlen, "the node at %s refuses ipfsfs (%s): it wants its API secret",
                     cfg->endpoint->base_url, why);
        else
            snprintf(err, errlen, "no IPFS node answers at %s: %s", cfg->endpoint->base_url, why);
        rpc_destroy(&n->base);
        /* Nothing answered (as opposed to a refusal, or an answer we cannot use). */
        return rc == -EIO || rc == -ETIMEDOUT || rc == -ECONNREFUSED ? -ENOTCONN : rc;
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
    rc = rpcjson_version_check(&v, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "%s at %s", why, cfg->endpoint->base_url);
        rpc_destroy(&n->base);
        return rc;
    }
    n->timeout_ms = cfg->timeout_ms;
    snprintf(n->description, sizeof n->description, "Kubo %s at %s%s%s", v.version,
             cfg->endpoint->base_url, cfg->endpoint->unix_path ? " via " : "",
             cfg->endpoint->unix_path ? cfg->endpoint->unix_path : "");
    *out = &n->base;
    return 0;
}

/* ---- IPNS publishing (--publish) ---- */

int node_rpc_publish(struct rpc *r, const char *key, const struct cid *c, char *name,
                     size_t len, char *err, size_t errlen)
{
    char path[CID_STR_MAX + 8], s[CID_STR_MAX];
    if (cid_format(c, s, sizeof s) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "/ipfs/%s", s);
    /* resolve=false: the blocks are the node's own (just pushed); allow-offline: a node with no
     * peers publishes to its own cache, and answers. */
    struct rpc_arg args[] = {{"arg", path},
                             {"key", key},
                             {"allow-offline", "true"},
                             {"resolve", "false"},
                             {"ipns-base", "base36"}};
    struct rpc_buf buf = {.max = 64u << 10};
    int rc = rpc_call_buf(r, "name/publish", args, sizeof args / sizeof *args, NULL, &buf, err,
                          errlen);
    if (rc == 0) {
        json_t *j = json_loadb(buf.data, buf.len, 0, NULL);
        const char *n = json_string_value(json_object_get(j, "Name"));
        if (n)
            snprintf(name, len, "%s", n);
        else {
            snprintf(err, errlen, "name/publish: no Name in the answer");
            rc = -EPROTO;
        }
        json_decref(j);
    }
    free(buf.data);
    return rc;
}

int node_rpc_has_key(struct rpc *r, const char *key, char *err, size_t errlen)
{
    struct rpc_buf buf = {.max = 4u << 20};
    int rc = rpc_call_buf(r, "key/list", NULL, 0, NULL, &buf, err, errlen);
    if (rc < 0) {
        free(buf.data);
        return rc;
    }
    json_t *j = json_loadb(buf.data, buf.len, 0, NULL);
    free(buf.data);
    json_t *keys = json_object_get(j, "Keys"), *k;
    size_t i;
    int found = 0;
    /* By its name, or by its ID in any spelling (k51..., 12D3...), as name/publish takes it. */
    struct cid want, id;
    bool is_id = ipns_name_parse(key, strlen(key), &want) == 0;
    json_array_foreach(keys, i, k) {
        const char *n = json_string_value(json_object_get(k, "Name"));
        const char *d = json_string_value(json_object_get(k, "Id"));
        if ((n && strcmp(n, key) == 0) ||
            (is_id && d && ipns_name_parse(d, strlen(d), &id) == 0 && cid_equal(&id, &want)))
            found = 1;
    }
    if (!json_is_array(keys)) {
        snprintf(err, errlen, "key/list: no Keys in the answer");
        found = -EPROTO;
    }
    json_decref(j);
    return found;
}

int node_rpc_import_config(struct rpc *r, struct import_config *out, char *err, size_t errlen)
{
    struct rpc_arg args[] = {{"arg", "Import"}};
    struct rpc_buf buf = {.max = 64u << 10};
    int rc = rpc_call_buf(r, "config", args, 1, NULL, &buf, err, errlen);
    if (rc == 0)
        rc = rpcjson_import_config(buf.data, buf.len, out, err, errlen);
    free(buf.data);
    return rc;
}

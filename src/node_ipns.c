/* node_ipns.c - the IPNS namespace as a read-only tree of names (see node_ipns.h). */
#include "config.h"

#include "node_ipns.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "gateway.h"
#include "ipns.h"
#include "log.h"
#include "node_fallback.h"
#include "rpc.h"

#define CACHE_N 256           /* names kept resolved */
#define NAME_MAX_LEN 255u     /* a DNS name, or a key in any base */
#define MAX_HOPS 4            /* /ipns/ values followed through gateways */
#define DEFAULT_CAP_MS 60000u
/* Through the node, an answer is kept this long: the node keeps its own for the record's TTL
 * (and learns a publish of its own at once). */
#define NODE_KEEP_MS 1000u
/* The empty UnixFS directory: what the namespace's root stands for. */
#define EMPTY_DIR "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"

struct entry {
    bool used;
    char name[NAME_MAX_LEN + 1];
    struct cid key;       /* the name's key, if it is one (has_key): spellings of one key */
    bool has_key;         /* share the highest sequence seen */
    struct cid cid;       /* what the name resolves to */
    char sub[PATH_MAX];   /* and the path below it ("" or "a/b") */
    int64_t until_ns;     /* CLOCK_MONOTONIC: valid before this */
    uint64_t seq;         /* the highest record sequence seen (gateways) */
    int64_t eol_ns;       /* gateways: that record's validity (real time; 0: none kept) */
    uint64_t life_ns;     /* how long it was kept for when resolved (its TTL, at most cap) */
    uint64_t stamp;       /* last use, for eviction */
};

struct node_ipns {
    struct node base;
    struct node *content; /* constant after node_ipns_new */
    struct rpc *rpc;
    struct gw *gw;
    unsigned timeout_ms;
    uint64_t cap_ns;
    struct cid empty_dir;
    atomic_bool dnslink_said; /* the log said DNSLink needs a node (gateways only) */
    /* lock guards cache[] and clock. Held only to copy entries in or out, never across a
     * resolution. */
    pthread_mutex_t lock;
    struct entry cache[CACHE_N];
    uint64_t clock;
    atomic_uint_fast64_t resolves, hits, failures;
    char description[512];
};

static struct node_ipns *to_ipns(struct node *n)
{
    return (struct node_ipns *)n;
}

static int64_t real_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* "/ipfs/CID[/rest]" -> cid and rest ("" or "a/b", no leading slash). */
static int parse_ipfs_path(const char *v, struct cid *c, char *sub, size_t sublen)
{
    if (strncmp(v, "/ipfs/", 6) != 0)
        return -EINVAL;
    const char *p = v + 6, *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (cid_parse(p, n, c) < 0)
        return -EINVAL;
    const char *rest = slash ? slash + 1 : "";
    while (*rest == '/')
        rest++;
    size_t rl = strlen(rest);
    while (rl > 0 && rest[rl - 1] == '/')
        rl--;
    if (rl >= sublen)
        return -ENAMETOOLONG;
    memcpy(sub, rest, rl);
    sub[rl] = '\0';
    return 0;
}

/* ---- resolving one name ------------------------------------------------------------------ */

static int resolve_node(struct node_ipns *ni, const char *name, char *value, size_t vlen)
{
    struct rpc_arg args[] = {{"arg", name}};
    struct rpc_call_opts opts = {.timeout_ms = ni->timeout_ms};
    struct rpc_buf buf = {.max = 64u << 10};
    char err[512] = "";
    int rc = rpc_call_buf(ni->rpc, "name/resolve", args, 1, &opts, &buf, err, sizeof err);
    if (rc < 0) {
        free(buf.data);
        if (strstr(err, "could not resolve name") || strstr(err, "could not find a TXT") ||
            strstr(err, "no such host") ||
            strstr(err, "not a valid") || strstr(err, "invalid"))
            return -ENOENT;
        log_warn("IPNS name %s: %s", name, err[0] ? err : strerror(-rc));
        return rc;
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf.data, buf.len, 0, &jerr);
    free(buf.data);
    const char *path = j ? json_string_value(json_object_get(j, "Path")) : NULL;
    rc = path && strlen(path) < vlen ? 0 : -EIO;
    if (rc == 0)
        memcpy(value, path, strlen(path) + 1);
    else
        log_warn("IPNS name %s: the node answered no path", name);
    json_decref(j);
    return rc;
}

/* Through the gateways: the record, verified, then its value (an /ipns/ value is followed). Every
 * spelling of a key (k51..., bafz..., 12D3..., Qm...) is asked in base36, which gateways serve
 * without a redirect. */
static int resolve_gw(struct node_ipns *ni, const char *name, uint64_t min_seq, char *value,
                      size_t vlen, uint64_t *life_ns, uint64_t *seq, int64_t *eol_ns)
{
    char cur[IPNS_MAX_VALUE + 8];
    if (strlen(name) >= sizeof cur)
        return -ENOENT;
    memcpy(cur, name, strlen(name) + 1);
    *life_ns = ni->cap_ns;
    for (int hop = 0; hop < MAX_HOPS; hop++) {
        struct cid key;
        char spelled[CID_STR_MAX];
        if (ipns_name_parse(cur, strlen(cur), &key) < 0 ||
            ipns_name_format(&key, spelled, sizeof spelled) < 0) {
            /* DNSLink names need the node: said once (ls, shells and editors look up names
             * of every kind here) */
            if (strchr(cur, '.') && !atomic_exchange(&ni->dnslink_said, true))
                log_warn("IPNS name %s: DNSLink domains need a node (--api); through gateways "
                         "only keys resolve", cur);
            return -ENOENT;
        }
        struct ipns_record r;
        int64_t now = real_ns();
        int rc = gw_ipns_record(ni->gw, spelled, &key, now, hop == 0 ? min_seq : 0, &r);
        if (rc < 0)
            return rc; /* -ENOENT: no gateway has a record; -ETIMEDOUT: none answered */
        if (hop == 0)
            *seq = r.sequence;
        if (hop == 0 || r.eol_ns < *eol_ns)
            *eol_ns = r.eol_ns;
        uint64_t life = ipns_lifetime_ns(&r, now, ni->cap_ns);
        if (life < *life_ns)
            *life_ns = life;
        if (strncmp(r.value, "/ipns/", 6) != 0) {
            if (strlen(r.value) >= vlen)
                return -ENAMETOOLONG;
            memcpy(value, r.value, strlen(r.value) + 1);
            return 0;
        }
        size_t vl = strlen(r.value + 6);
        if (vl >= sizeof cur)
            return -ENAMETOOLONG;
        memcpy(cur, r.value + 6, vl + 1);
        char *slash = strchr(cur, '/');
        if (slash)
            *slash = '\0'; /* a path below an /ipns/ value: not followed (rare) */
    }
    return -ELOOP;
}

/* Through gateways, a name whose record is older than the one kept (a gateway that kept an
 * old one), or that no gateway gives now: the kept record stands while it is valid (IPNS: the
 * highest sequence wins until its EOL), asked again after its TTL. False if none is kept. */
static bool kept_record(struct node_ipns *ni, const char *name, struct cid *cid, char *sub,
                        size_t sublen)
{
    bool kept = false;
    char cs[CID_STR_MAX] = "";
    uint64_t seq = 0;
    pthread_mutex_lock(&ni->lock);
    for (size_t i = 0; i < CACHE_N && !kept; i++) {
        struct entry *e = &ni->cache[i];
        if (e->used && strcmp(e->name, name) == 0 && e->eol_ns > real_ns() &&
            strlen(e->sub) < sublen) {
            *cid = e->cid;
            snprintf(sub, sublen, "%s", e->sub);
            e->until_ns = (int64_t)clock_mono_ns() + (int64_t)e->life_ns;
            e->stamp = ++ni->clock;
            seq = e->seq;
            cid_format(&e->cid, cs, sizeof cs);
            kept = true;
        }
    }
    pthread_mutex_unlock(&ni->lock);
    if (kept)
        log_warn("IPNS name %s: no gateway gives a record as new as the one kept (sequence %" PRIu64
                 "), which stays valid: /ipfs/%s",
                 name, seq, cs);
    return kept;
}

/* The name's CID and sub-path: from the cache while valid, else resolved now. */
static int resolve(struct node_ipns *ni, const char *name, struct cid *cid, char *sub,
                   size_t sublen)
{
    if (strlen(name) > NAME_MAX_LEN || name[0] == '\0' || name[0] == '.' ||
        (!ni->rpc && !ni->gw))
        return -ENOENT;
    int64_t now = (int64_t)clock_mono_ns();
    uint64_t min_seq = 0;
    struct cid key;
    bool has_key = ipns_name_parse(name, strlen(name), &key) == 0;
    pthread_mutex_lock(&ni->lock);
    for (size_t i = 0; i < CACHE_N; i++) {
        struct entry *e = &ni->cache[i];
        /* The highest sequence seen for the key, whichever way it was spelled. */
        if (e->used && has_key && e->has_key && cid_equal(&e->key, &key) && e->seq > min_seq)
            min_seq = e->seq;
    }
    for (size_t i = 0; i < CACHE_N; i++) {
        struct entry *e = &ni->cache[i];
        if (e->used && strcmp(e->name, name) == 0) {
            if (e->until_ns > now) {
                *cid = e->cid;
                snprintf(sub, sublen, "%s", e->sub);
                e->stamp = ++ni->clock;
                pthread_mutex_unlock(&ni->lock);
                atomic_fetch_add(&ni->hits, 1);
                return 0;
            }
        }
    }
    pthread_mutex_unlock(&ni->lock);

    atomic_fetch_add(&ni->resolves, 1);
    char value[IPNS_MAX_VALUE + 8];
    uint64_t life = ni->rpc ? (uint64_t)NODE_KEEP_MS * 1000000u : ni->cap_ns, seq = min_seq;
    int64_t eol = 0;
    int rc = ni->rpc ? resolve_node(ni, name, value, sizeof value)
                     : resolve_gw(ni, name, min_seq, value, sizeof value, &life, &seq, &eol);
    struct cid c;
    char s[PATH_MAX];
    if (rc == 0 && parse_ipfs_path(value, &c, s, sizeof s) < 0) {
        log_warn("IPNS name %s points to %s: not an /ipfs/ path", name, value);
        rc = -ENOENT;
    }
    if (rc < 0 && !ni->rpc && (rc == -ENOENT || rc == -ETIMEDOUT || rc == -ESTALE) &&
        kept_record(ni, name, cid, sub, sublen))
        return 0;
    if (rc < 0) {
        atomic_fetch_add(&ni->failures, 1);
        return rc;
    }
    if (strlen(s) >= sublen)
        return -ENAMETOOLONG;
    char cs[CID_STR_MAX];
    cid_format(&c, cs, sizeof cs);
    log_info("IPNS name %s is /ipfs/%s%s%s (kept %" PRIu64 " ms)", name, cs, s[0] ? "/" : "", s,
             life / 1000000);

    pthread_mutex_lock(&ni->lock);
    struct entry *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < CACHE_N && !slot; i++) {
        struct entry *e = &ni->cache[i];
        if (e->used && strcmp(e->name, name) == 0)
            slot = e;
        else if (!e->used && !oldest)
            oldest = e;
    }
    if (!slot && !oldest) {
        oldest = &ni->cache[0];
        for (size_t i = 1; i < CACHE_N; i++)
            if (ni->cache[i].stamp < oldest->stamp)
                oldest = &ni->cache[i];
    }
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof *slot);
        slot->used = true;
        snprintf(slot->name, sizeof slot->name, "%s", name);
        slot->key = key;
        slot->has_key = has_key;
    }
    slot->cid = c;
    snprintf(slot->sub, sizeof slot->sub, "%s", s);
    slot->until_ns = (int64_t)clock_mono_ns() + (int64_t)life;
    if (seq > slot->seq)
        slot->seq = seq;
    if (!ni->rpc && seq >= slot->seq) {
        slot->eol_ns = eol;
        slot->life_ns = life;
    }
    slot->stamp = ++ni->clock;
    pthread_mutex_unlock(&ni->lock);
    *cid = c;
    memcpy(sub, s, strlen(s) + 1);
    return 0;
}

/* ---- paths: "/NAME/rest" ----------------------------------------------------------------- */

struct find {
    const char *name;
    size_t len;
    struct cid cid;
    bool found;
};

static int find_child(void *ud, const struct node_entry *e)
{
    struct find *f = ud;
    if (e->name_len == f->len && memcmp(e->name, f->name, f->len) == 0) {
        f->cid = e->cid;
        f->found = true;
    }
    return 0;
}

/* Walk the components of rel ("a/b", may be empty) from c. */
static int walk(struct node_ipns *ni, struct cid *c, const char *rel)
{
    const char *p = rel;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        struct find f = {.name = p, .len = n};
        int rc = ni->content->ops->list(ni->content, c, find_child, &f);
        if (rc < 0)
            return rc;
        if (!f.found)
            return -ENOENT;
        *c = f.cid;
        p += n;
    }
    return 0;
}

/* path ("/NAME[/rest]") to a CID. */
static int path_cid(struct node_ipns *ni, const char *path, struct cid *out)
{
    while (*path == '/')
        path++;
    size_t n = strcspn(path, "/");
    char name[NAME_MAX_LEN + 1];
    if (n == 0 || n > NAME_MAX_LEN)
        return -ENOENT;
    memcpy(name, path, n);
    name[n] = '\0';
    char sub[PATH_MAX];
    int rc = resolve(ni, name, out, sub, sizeof sub);
    if (rc < 0)
        return rc;
    if ((rc = walk(ni, out, sub)) < 0)
        return rc;
    return walk(ni, out, path + n);
}

static bool is_root(const char *path)
{
    return path[strspn(path, "/")] == '\0';
}

/* How long what was said of path stays true: what remains of its name's resolution (0 when it
 * is not kept; the root: no limit of ours). */
static double ipns_valid_for(struct node *n, const char *path)
{
    struct node_ipns *ni = to_ipns(n);
    if (is_root(path))
        return -1;
    while (*path == '/')
        path++;
    size_t len = strcspn(path, "/");
    int64_t left = 0;
    if (len > NAME_MAX_LEN)
        return 0;
    int64_t now = (int64_t)clock_mono_ns();
    pthread_mutex_lock(&ni->lock);
    for (size_t i = 0; i < CACHE_N; i++) {
        const struct entry *e = &ni->cache[i];
        if (e->used && strncmp(e->name, path, len) == 0 && e->name[len] == '\0') {
            left = e->until_ns - now;
            break;
        }
    }
    pthread_mutex_unlock(&ni->lock);
    return left > 0 ? (double)left / 1e9 : 0;
}

static int ipns_mfs_stat(struct node *n, const char *path, struct node_stat *out, struct cid *cid)
{
    struct node_ipns *ni = to_ipns(n);
    memset(out, 0, sizeof *out);
    if (is_root(path)) {
        out->kind = NODE_DIR;
        if (cid)
            *cid = ni->empty_dir;
        return 0;
    }
    struct cid c;
    int rc = path_cid(ni, path, &c);
    if (rc < 0)
        return rc;
    if (cid)
        *cid = c;
    return ni->content->ops->stat(ni->content, &c, out);
}

/* The root: the node's keys (key/list), else the names resolved so far. */
static int list_root(struct node_ipns *ni, node_entry_fn fn, void *ud)
{
    if (!ni->rpc) {
        char names[CACHE_N][NAME_MAX_LEN + 1];
        struct cid cids[CACHE_N];
        size_t k = 0;
        pthread_mutex_lock(&ni->lock);
        for (size_t i = 0; i < CACHE_N; i++)
            if (ni->cache[i].used) {
                memcpy(names[k], ni->cache[i].name, sizeof names[k]);
                cids[k++] = ni->cache[i].cid;
            }
        pthread_mutex_unlock(&ni->lock);
        for (size_t i = 0; i < k; i++) {
            struct node_entry e = {.name = names[i], .name_len = strlen(names[i]),
                                   .cid = cids[i], .kind = NODE_UNKNOWN};
            int rc = fn(ud, &e);
            if (rc)
                return rc;
        }
        return 0;
    }
    struct rpc_arg args[] = {{"ipns-base", "base36"}};
    struct rpc_call_opts opts = {.timeout_ms = ni->timeout_ms};
    struct rpc_buf buf = {.max = 4u << 20};
    char err[512] = "";
    int rc = rpc_call_buf(ni->rpc, "key/list", args, 1, &opts, &buf, err, sizeof err);
    if (rc < 0) {
        free(buf.data);
        log_warn("key/list: %s", err[0] ? err : strerror(-rc));
        return rc;
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf.data, buf.len, 0, &jerr);
    free(buf.data);
    json_t *keys = j ? json_object_get(j, "Keys") : NULL;
    size_t i;
    json_t *k;
    rc = json_is_array(keys) ? 0 : -EIO;
    json_array_foreach(keys, i, k) {
        const char *id = json_string_value(json_object_get(k, "Id"));
        struct cid c;
        if (!id || strlen(id) > NAME_MAX_LEN || cid_parse(id, strlen(id), &c) < 0)
            continue;
        struct node_entry e = {.name = id, .name_len = strlen(id), .cid = c,
                               .kind = NODE_UNKNOWN};
        if ((rc = fn(ud, &e)) != 0)
            break;
    }
    json_decref(j);
    return rc;
}

static int ipns_mfs_list(struct node *n, const char *path, node_entry_fn fn, void *ud)
{
    struct node_ipns *ni = to_ipns(n);
    if (is_root(path))
        return list_root(ni, fn, ud);
    struct cid c;
    int rc = path_cid(ni, path, &c);
    return rc < 0 ? rc : ni->content->ops->list(ni->content, &c, fn, ud);
}

/* ---- content calls: the content node's; changes: refused --------------------------------- */

static int ipns_stat(struct node *n, const struct cid *c, struct node_stat *out)
{
    struct node *b = to_ipns(n)->content;
    return b->ops->stat(b, c, out);
}

static int ipns_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node *b = to_ipns(n)->content;
    return b->ops->list(b, c, fn, ud);
}

static ssize_t ipns_read(struct node *n, const struct cid *c, uint64_t off, size_t len, char *buf)
{
    struct node *b = to_ipns(n)->content;
    return b->ops->read(b, c, off, len, buf);
}

static int ipns_read_stream(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                            int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    return node_read_stream_any(to_ipns(n)->content, c, off, len, sink, ud);
}

static int ipns_get_block(struct node *n, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node *b = to_ipns(n)->content;
    return b->ops->get_block ? b->ops->get_block(b, c, data, len) : -ENOSYS;
}

static int ipns_start(struct node *n)
{
    struct node *b = to_ipns(n)->content;
    return b->ops->start ? b->ops->start(b) : 0;
}

static int refuse_path(struct node *n, const char *path)
{
    (void)n;
    (void)path;
    return -EROFS;
}

static int refuse_rm(struct node *n, const char *path, bool recursive)
{
    (void)n;
    (void)path;
    (void)recursive;
    return -EROFS;
}

static int refuse_link(struct node *n, const struct cid *c, const char *path)
{
    (void)n;
    (void)c;
    (void)path;
    return -EROFS;
}

static int refuse_mv(struct node *n, const char *src, const char *dst)
{
    (void)n;
    (void)src;
    (void)dst;
    return -EROFS;
}

static int refuse_chmod(struct node *n, const char *path, uint32_t mode)
{
    (void)n;
    (void)path;
    (void)mode;
    return -EROFS;
}

static int refuse_touch(struct node *n, const char *path, const struct timespec *mtime)
{
    (void)n;
    (void)path;
    (void)mtime;
    return -EROFS;
}

static int refuse_add(struct node *n, int fd, uint64_t size, const struct node_add_opts *o,
                      struct cid *out)
{
    (void)n;
    (void)fd;
    (void)size;
    (void)o;
    (void)out;
    return -EROFS;
}

static int refuse_symlink(struct node *n, const char *target, struct cid *out)
{
    (void)n;
    (void)target;
    (void)out;
    return -EROFS;
}

static int ipns_stats(struct node *n, char *buf, size_t len)
{
    struct node_ipns *ni = to_ipns(n);
    int k = snprintf(buf, len,
                     "ipns_resolves %" PRIu64 "\nipns_cache_hits %" PRIu64
                     "\nipns_failures %" PRIu64 "\n",
                     (uint64_t)atomic_load(&ni->resolves), (uint64_t)atomic_load(&ni->hits),
                     (uint64_t)atomic_load(&ni->failures));
    if (k < 0 || (size_t)k >= len)
        return k;
    struct node *b = ni->content;
    if (b->ops->stats) {
        int m = b->ops->stats(b, buf + k, len - (size_t)k);
        if (m > 0)
            k += (size_t)m < len - (size_t)k ? m : (int)(len - (size_t)k - 1);
    }
    if (ni->gw && (size_t)k + 1 < len) {
        int m = gw_stats(ni->gw, buf + k, len - (size_t)k);
        if (m > 0)
            k += (size_t)m < len - (size_t)k ? m : (int)(len - (size_t)k - 1);
    }
    return k;
}

static void ipns_destroy(struct node *n)
{
    struct node_ipns *ni = to_ipns(n);
    node_destroy(ni->content);
    if (ni->rpc)
        rpc_free(ni->rpc);
    pthread_mutex_destroy(&ni->lock);
    free(ni);
}

static const struct node_ops ipns_ops = {
    .stat = ipns_stat,
    .list = ipns_list,
    .read = ipns_read,
    .read_stream = ipns_read_stream,
    .mfs_stat = ipns_mfs_stat,
    .mfs_list = ipns_mfs_list,
    .mfs_mkdir = refuse_path,
    .mfs_rm = refuse_rm,
    .mfs_link = refuse_link,
    .mfs_mv = refuse_mv,
    .mfs_chmod = refuse_chmod,
    .mfs_touch = refuse_touch,
    .add = refuse_add,
    .put_symlink = refuse_symlink,
    .get_block = ipns_get_block,
    .start = ipns_start,
    .stats = ipns_stats,
    .destroy = ipns_destroy,
    .valid_for = ipns_valid_for,
};

int node_ipns_new(const struct node_ipns_config *cfg, struct node **out)
{
    *out = NULL;
    struct node_ipns *ni = calloc(1, sizeof *ni);
    if (!ni) {
        node_destroy(cfg->content);
        if (cfg->rpc)
            rpc_free(cfg->rpc);
        return -ENOMEM;
    }
    ni->base.ops = &ipns_ops;
    ni->content = cfg->content;
    ni->rpc = cfg->rpc;
    ni->gw = cfg->gw;
    ni->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000u;
    ni->cap_ns = (uint64_t)(cfg->cap_ms ? cfg->cap_ms : DEFAULT_CAP_MS) * 1000000u;
    cid_parse(EMPTY_DIR, strlen(EMPTY_DIR), &ni->empty_dir);
    pthread_mutex_init(&ni->lock, NULL);
    atomic_init(&ni->resolves, 0);
    atomic_init(&ni->hits, 0);
    atomic_init(&ni->failures, 0);
    snprintf(ni->description, sizeof ni->description, "IPNS names (resolved %s) over %s",
             ni->rpc ? "by the node" : "through gateways, verified",
             cfg->content->description);
    ni->base.description = ni->description;
    *out = &ni->base;
    return 0;
}

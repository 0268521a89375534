/* node_fallback.c - see node_fallback.h. */
#include "config.h"

#include "node_fallback.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* Content the fallback served, by cid_hash: for FIRST_MS its reads ask the fallback first
 * (the primary only if the fallback fails). A file read in pieces would otherwise wait out
 * the primary's --timeout once per piece (a node that stalls on cat: 7 s for 700 KB at
 * --timeout=3). Direct-mapped: a collision forgets an older file. */
#define FIRST_SLOTS 64u
#define FIRST_MS 30000u

struct node_fallback {
    struct node base;
    struct node *primary, *fallback; /* constant after node_fallback_new */
    int (*extra_stats)(void *ud, char *buf, size_t len);
    void *ud;
    atomic_uint_fast64_t tries, saved; /* calls asked of the fallback; of those, answered */
    atomic_uint_fast64_t first;        /* reads asked of the fallback first (first[]) */
    /* lock guards first_at[] */
    pthread_mutex_t lock;
    struct {
        uint64_t cid_hash, until_ms;
    } first_at[FIRST_SLOTS];
    char description[512];
};

static struct node_fallback *to_fb(struct node *n)
{
    return (struct node_fallback *)n;
}

/* Whether an error of the primary means "ask the fallback". */
static bool falls_back(int rc)
{
    return rc == -ETIMEDOUT || rc == -EIO || rc == -EAGAIN;
}

/* rc2 is the fallback's answer to a call the primary failed with rc. */
static int settle(struct node_fallback *f, const struct cid *c, int rc, int rc2)
{
    atomic_fetch_add(&f->tries, 1);
    if (rc2 >= 0) {
        atomic_fetch_add(&f->saved, 1);
        char cs[CID_STR_MAX];
        cid_format(c, cs, sizeof cs);
        log_debug("%s: served by the fallback (the node: %s)", cs, strerror(-rc));
        return rc2;
    }
    return rc;
}

/* The fallback served c (or not, served false): ask it first for a while (or no longer). */
static void note_served(struct node_fallback *f, const struct cid *c, bool served)
{
    uint64_t h = cid_hash(c);
    pthread_mutex_lock(&f->lock);
    if (served) {
        f->first_at[h % FIRST_SLOTS].cid_hash = h;
        f->first_at[h % FIRST_SLOTS].until_ms = clock_mono_ms() + FIRST_MS;
    } else if (f->first_at[h % FIRST_SLOTS].cid_hash == h) {
        f->first_at[h % FIRST_SLOTS].until_ms = 0;
    }
    pthread_mutex_unlock(&f->lock);
}

/* Whether c's reads go to the fallback first (it served c lately, the primary did not). */
static bool ask_fallback_first(struct node_fallback *f, const struct cid *c)
{
    uint64_t h = cid_hash(c);
    pthread_mutex_lock(&f->lock);
    bool yes = f->first_at[h % FIRST_SLOTS].cid_hash == h &&
               f->first_at[h % FIRST_SLOTS].until_ms > clock_mono_ms();
    pthread_mutex_unlock(&f->lock);
    if (yes)
        atomic_fetch_add(&f->first, 1);
    return yes;
}

static int fb_stat(struct node *n, const struct cid *c, struct node_stat *out)
{
    struct node_fallback *f = to_fb(n);
    int rc = f->primary->ops->stat(f->primary, c, out);
    if (!falls_back(rc))
        return rc;
    node_stat_clear(out);
    memset(out, 0, sizeof *out);
    return settle(f, c, rc, f->fallback->ops->stat(f->fallback, c, out));
}

/* A listing that falls back must not repeat entries the primary already gave: count them. */
struct list_count {
    node_entry_fn fn;
    void *ud;
    size_t n;
};

static int count_entry(void *ud, const struct node_entry *e)
{
    struct list_count *lc = ud;
    lc->n++;
    return lc->fn(lc->ud, e);
}

static int fb_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node_fallback *f = to_fb(n);
    struct list_count lc = {.fn = fn, .ud = ud};
    int rc = f->primary->ops->list(f->primary, c, count_entry, &lc);
    if (!falls_back(rc) || lc.n > 0)
        return rc;
    return settle(f, c, rc, f->fallback->ops->list(f->fallback, c, fn, ud));
}

static ssize_t fb_read(struct node *n, const struct cid *c, uint64_t off, size_t len, char *buf)
{
    struct node_fallback *f = to_fb(n);
    if (ask_fallback_first(f, c)) {
        ssize_t r = f->fallback->ops->read(f->fallback, c, off, len, buf);
        if (r >= 0 || !falls_back((int)r))
            return r;
        note_served(f, c, false);
        return f->primary->ops->read(f->primary, c, off, len, buf);
    }
    ssize_t r = f->primary->ops->read(f->primary, c, off, len, buf);
    if (r >= 0 || !falls_back((int)r))
        return r;
    ssize_t r2 = f->fallback->ops->read(f->fallback, c, off, len, buf);
    if (r2 < 0)
        return settle(f, c, (int)r, (int)r2);
    settle(f, c, (int)r, 0);
    note_served(f, c, true);
    return r2;
}

struct stream_count {
    int (*sink)(void *ud, const char *data, size_t len);
    void *ud;
    uint64_t bytes;
};

static int count_sink(void *ud, const char *data, size_t len)
{
    struct stream_count *sc = ud;
    sc->bytes += len;
    return sc->sink(sc->ud, data, len);
}

int node_read_stream_any(struct node *b, const struct cid *c, uint64_t off, uint64_t len,
                       int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    if (b->ops->read_stream)
        return b->ops->read_stream(b, c, off, len, sink, ud);
    size_t piece = 256u << 10;
    char *buf = malloc(piece);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    while (len > 0 && rc == 0) {
        size_t k = len < piece ? (size_t)len : piece;
        ssize_t r = b->ops->read(b, c, off, k, buf);
        if (r < 0)
            rc = (int)r;
        else if ((size_t)r != k)
            rc = -EIO;
        else
            rc = sink(ud, buf, k);
        off += k;
        len -= k;
    }
    free(buf);
    return rc;
}

static int fb_read_stream(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                          int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    struct node_fallback *f = to_fb(n);
    struct stream_count sc = {.sink = sink, .ud = ud};
    struct node *first = f->primary, *second = f->fallback;
    bool swapped = ask_fallback_first(f, c);
    if (swapped) {
        first = f->fallback;
        second = f->primary;
    }
    int rc = node_read_stream_any(first, c, off, len, count_sink, &sc);
    if (!falls_back(rc) || sc.bytes > 0)
        return rc;
    if (swapped) {
        note_served(f, c, false);
        return node_read_stream_any(second, c, off, len, sink, ud);
    }
    rc = settle(f, c, rc, node_read_stream_any(second, c, off, len, sink, ud));
    if (rc >= 0)
        note_served(f, c, true);
    return rc;
}

static int fb_get_block(struct node *n, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node_fallback *f = to_fb(n);
    if (!f->primary->ops->get_block)
        return -ENOSYS;
    int rc = f->primary->ops->get_block(f->primary, c, data, len);
    if (!falls_back(rc) || !f->fallback->ops->get_block)
        return rc;
    return settle(f, c, rc, f->fallback->ops->get_block(f->fallback, c, data, len));
}

/* Everything else is the primary's. */
#define PRIMARY(call, ...)                                                                     \
    struct node *p = to_fb(n)->primary;                                                        \
    return p->ops->call ? p->ops->call(p, __VA_ARGS__) : -ENOSYS

static int fb_mfs_stat(struct node *n, const char *path, struct node_stat *out, struct cid *cid)
{
    PRIMARY(mfs_stat, path, out, cid);
}

static int fb_mfs_list(struct node *n, const char *path, node_entry_fn fn, void *ud)
{
    PRIMARY(mfs_list, path, fn, ud);
}

static int fb_mfs_mkdir(struct node *n, const char *path)
{
    PRIMARY(mfs_mkdir, path);
}

static int fb_mfs_chcid(struct node *n, const char *path, int version)
{
    PRIMARY(mfs_chcid, path, version);
}

static int fb_mfs_rm(struct node *n, const char *path, bool recursive)
{
    PRIMARY(mfs_rm, path, recursive);
}

static int fb_mfs_link(struct node *n, const struct cid *c, const char *path)
{
    PRIMARY(mfs_link, c, path);
}

static int fb_mfs_mv(struct node *n, const char *src, const char *dst)
{
    PRIMARY(mfs_mv, src, dst);
}

static int fb_mfs_chmod(struct node *n, const char *path, uint32_t mode)
{
    PRIMARY(mfs_chmod, path, mode);
}

static int fb_mfs_touch(struct node *n, const char *path, const struct timespec *mtime)
{
    PRIMARY(mfs_touch, path, mtime);
}

static int fb_add(struct node *n, int fd, uint64_t size, const struct node_add_opts *o,
                  struct cid *out)
{
    PRIMARY(add, fd, size, o, out);
}

static int fb_add_stream(struct node *n, const struct node_add_opts *o, struct add_stream **out)
{
    PRIMARY(add_stream, o, out);
}

static int fb_put_symlink(struct node *n, const char *target, struct cid *out)
{
    PRIMARY(put_symlink, target, out);
}

static int fb_space(struct node *n, uint64_t *total, uint64_t *avail)
{
    PRIMARY(space, total, avail);
}

static void fb_end_by(struct node *n, uint64_t mono_ms)
{
    struct node *p = to_fb(n)->primary;
    if (p->ops->end_by)
        p->ops->end_by(p, mono_ms);
}

static int fb_identity(struct node *n, char *buf, size_t len)
{
    PRIMARY(identity, buf, len);
}

/* The node's own blocks only: a gateway that has one says nothing of what the node has. */
static int fb_has_dag(struct node *n, const struct cid *c)
{
    PRIMARY(has_dag, c);
}

static int fb_put_car(struct node *n, int fd, uint64_t size, char *err, size_t errlen)
{
    PRIMARY(put_car, fd, size, err, errlen);
}

static uint64_t fb_upload_moved(struct node *n)
{
    struct node *p = to_fb(n)->primary;
    return p->ops->upload_moved_ms ? p->ops->upload_moved_ms(p) : 0;
}

static int fb_sync(struct node *n)
{
    struct node *p = to_fb(n)->primary;
    return p->ops->sync ? p->ops->sync(p) : 0;
}

static int fb_sync_state(struct node *n, const char *path, char *buf, size_t len)
{
    PRIMARY(sync_state, path, buf, len);
}

static int fb_start(struct node *n)
{
    struct node_fallback *f = to_fb(n);
    int rc = f->primary->ops->start ? f->primary->ops->start(f->primary) : 0;
    if (rc == 0 && f->fallback->ops->start)
        rc = f->fallback->ops->start(f->fallback);
    return rc;
}

/* Account for k bytes an snprintf-like call wrote at buf + *off (capped at the room left). */
static void advance(size_t *off, size_t len, int k)
{
    if (k > 0 && *off < len)
        *off += (size_t)k < len - *off ? (size_t)k : len - *off - 1;
}

static int fb_stats(struct node *n, char *buf, size_t len)
{
    struct node_fallback *f = to_fb(n);
    size_t off = 0;
    if (len == 0)
        return 0;
    buf[0] = '\0';
    if (f->primary->ops->stats)
        advance(&off, len, f->primary->ops->stats(f->primary, buf + off, len - off));
    char line[160];
    int k = snprintf(line, sizeof line,
                     "fallback_calls %llu\nfallback_served %llu\nfallback_first %llu\n",
                     (unsigned long long)atomic_load(&f->tries),
                     (unsigned long long)atomic_load(&f->saved),
                     (unsigned long long)atomic_load(&f->first));
    if (k > 0 && off + 1 < len) {
        size_t room = len - off - 1, w = (size_t)k < room ? (size_t)k : room;
        memcpy(buf + off, line, w);
        off += w;
        buf[off] = '\0';
    }
    if (f->extra_stats && off + 1 < len)
        advance(&off, len, f->extra_stats(f->ud, buf + off, len - off));
    return (int)off;
}

static void fb_destroy(struct node *n)
{
    struct node_fallback *f = to_fb(n);
    node_destroy(f->primary);
    node_destroy(f->fallback);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static const struct node_ops fallback_ops = {
    .stat = fb_stat,
    .list = fb_list,
    .read = fb_read,
    .read_stream = fb_read_stream,
    .mfs_stat = fb_mfs_stat,
    .mfs_list = fb_mfs_list,
    .mfs_mkdir = fb_mfs_mkdir,
    .mfs_chcid = fb_mfs_chcid,
    .mfs_rm = fb_mfs_rm,
    .mfs_link = fb_mfs_link,
    .mfs_mv = fb_mfs_mv,
    .mfs_chmod = fb_mfs_chmod,
    .mfs_touch = fb_mfs_touch,
    .add = fb_add,
    .add_stream = fb_add_stream,
    .put_symlink = fb_put_symlink,
    .space = fb_space,
    .put_car = fb_put_car,
    .upload_moved_ms = fb_upload_moved,
    .get_block = fb_get_block,
    .has_dag = fb_has_dag,
    .identity = fb_identity,
    .end_by = fb_end_by,
    .start = fb_start,
    .sync = fb_sync,
    .sync_state = fb_sync_state,
    .stats = fb_stats,
    .destroy = fb_destroy,
};

int node_fallback_new(struct node *primary, struct node *fallback,
                      int (*extra_stats)(void *ud, char *buf, size_t len), void *ud,
                      struct node **out)
{
    *out = NULL;
    struct node_fallback *f = calloc(1, sizeof *f);
    if (!f) {
        node_destroy(primary);
        node_destroy(fallback);
        return -ENOMEM;
    }
    f->base.ops = &fallback_ops;
    f->primary = primary;
    f->fallback = fallback;
    f->extra_stats = extra_stats;
    f->ud = ud;
    atomic_init(&f->tries, 0);
    atomic_init(&f->saved, 0);
    atomic_init(&f->first, 0);
    pthread_mutex_init(&f->lock, NULL);
    snprintf(f->description, sizeof f->description, "%s, then %s", primary->description,
             fallback->description);
    f->base.description = f->description;
    *out = &f->base;
    return 0;
}

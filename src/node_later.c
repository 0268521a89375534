/* node_later.c - see node_later.h.
 *
 * Threads: real is published once (an atomic pointer) and never changes after; connect_lock
 * serializes the attempts and guards next_try and logged.
 */
#include "config.h"

#include "node_later.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MS 1000u

struct node_later {
    struct node base; /* first: struct node * casts to struct node_later * */
    _Atomic(struct node *) real;
    node_connect_fn connect;
    void *ud;
    pthread_mutex_t connect_lock; /* guards next_try and logged */
    uint64_t next_try;
    _Atomic uint64_t end_at; /* end_by's time (0: none): no new connection after it */
    bool logged;
    char description[512];
};

/* The real node, connecting first if it is time to try; NULL while nothing answers. */
static struct node *real_of(struct node *n)
{
    struct node_later *l = (struct node_later *)n;
    struct node *r = atomic_load(&l->real);
    if (r)
        return r;
    pthread_mutex_lock(&l->connect_lock);
    r = atomic_load(&l->real);
    uint64_t end = atomic_load(&l->end_at);
    if (!r && clock_mono_ms() >= l->next_try && (!end || clock_mono_ms() < end)) {
        char err[512];
        int rc = l->connect(l->ud, &r, err, sizeof err);
        if (rc == 0) {
            log_info("%s answers now: %s", l->description, r->description);
            atomic_store(&l->real, r);
            end = atomic_load(&l->end_at);
            if (end && r->ops->end_by)
                r->ops->end_by(r, end);
        } else {
            r = NULL;
            l->next_try = clock_mono_ms() + RETRY_MS;
            if (!l->logged || rc != -ENOTCONN)
                log_warn("%s", err);
            l->logged = true;
        }
    }
    pthread_mutex_unlock(&l->connect_lock);
    return r;
}

#define FORWARD(call, ...)                                                                     \
    struct node *r = real_of(n);                                                               \
    if (!r)                                                                                    \
        return -EIO;                                                                           \
    return r->ops->call ? r->ops->call(r, __VA_ARGS__) : -ENOSYS

static int later_stat(struct node *n, const struct cid *c, struct node_stat *out)
{
    FORWARD(stat, c, out);
}

static int later_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    FORWARD(list, c, fn, ud);
}

static ssize_t later_read(struct node *n, const struct cid *c, uint64_t off, size_t len,
                          char *buf)
{
    FORWARD(read, c, off, len, buf);
}

static int later_read_stream(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                             int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    struct node *r = real_of(n);
    if (!r)
        return -EIO;
    if (r->ops->read_stream)
        return r->ops->read_stream(r, c, off, len, sink, ud);
    return -ENOSYS;
}

static int later_mfs_stat(struct node *n, const char *path, struct node_stat *out,
                          struct cid *cid)
{
    FORWARD(mfs_stat, path, out, cid);
}

static int later_mfs_list(struct node *n, const char *path, node_entry_fn fn, void *ud)
{
    FORWARD(mfs_list, path, fn, ud);
}

static int later_mfs_mkdir(struct node *n, const char *path)
{
    FORWARD(mfs_mkdir, path);
}

static int later_mfs_chcid(struct node *n, const char *path, int version)
{
    FORWARD(mfs_chcid, path, version);
}

static int later_mfs_rm(struct node *n, const char *path, bool recursive)
{
    FORWARD(mfs_rm, path, recursive);
}

static int later_mfs_link(struct node *n, const struct cid *c, const char *path)
{
    FORWARD(mfs_link, c, path);
}

static int later_mfs_mv(struct node *n, const char *src, const char *dst)
{
    FORWARD(mfs_mv, src, dst);
}

static int later_mfs_chmod(struct node *n, const char *path, uint32_t mode)
{
    FORWARD(mfs_chmod, path, mode);
}

static int later_mfs_touch(struct node *n, const char *path, const struct timespec *mtime)
{
    FORWARD(mfs_touch, path, mtime);
}

static int later_add(struct node *n, int fd, uint64_t size, const struct node_add_opts *o,
                     struct cid *out)
{
    FORWARD(add, fd, size, o, out);
}

static int later_add_stream(struct node *n, const struct node_add_opts *o, struct add_stream **out)
{
    /* Asked inside a write(2): never a connect here (the add at close makes it). */
    struct node *r = atomic_load(&((struct node_later *)n)->real);
    if (!r || !r->ops->add_stream)
        return -ENOSYS;
    return r->ops->add_stream(r, o, out);
}

static int later_put_symlink(struct node *n, const char *target, struct cid *out)
{
    FORWARD(put_symlink, target, out);
}

static int later_space(struct node *n, uint64_t *total, uint64_t *avail)
{
    FORWARD(space, total, avail);
}

static int later_put_car(struct node *n, int fd, uint64_t size, char *err, size_t errlen)
{
    struct node *r = real_of(n);
    if (!r) {
        snprintf(err, errlen, "%s does not answer", ((struct node_later *)n)->description);
        return -EIO;
    }
    return r->ops->put_car ? r->ops->put_car(r, fd, size, err, errlen) : -ENOSYS;
}

static uint64_t later_upload_moved(struct node *n)
{
    struct node *r = real_of(n);
    return r && r->ops->upload_moved_ms ? r->ops->upload_moved_ms(r) : 0;
}

static void later_end_by(struct node *n, uint64_t mono_ms)
{
    struct node_later *l = (struct node_later *)n;
    /* Not under connect_lock: a connection attempt holds it for up to --timeout. One that
     * succeeds after this store sees end_at and passes it on. */
    atomic_store(&l->end_at, mono_ms ? mono_ms : 1);
    struct node *r = atomic_load(&l->real);
    if (r && r->ops->end_by)
        r->ops->end_by(r, mono_ms);
}

static int later_identity(struct node *n, char *buf, size_t len)
{
    FORWARD(identity, buf, len);
}

static int later_has_dag(struct node *n, const struct cid *c)
{
    FORWARD(has_dag, c);
}

static int later_get_block(struct node *n, const struct cid *c, uint8_t **data, size_t *len)
{
    FORWARD(get_block, c, data, len);
}

static int later_stats(struct node *n, char *buf, size_t len)
{
    struct node *r = atomic_load(&((struct node_later *)n)->real);
    if (!r || !r->ops->stats)
        return snprintf(buf, len, "node_connected %d\n", r != NULL);
    return r->ops->stats(r, buf, len);
}

static void later_destroy(struct node *n)
{
    struct node_later *l = (struct node_later *)n;
    node_destroy(atomic_load(&l->real));
    pthread_mutex_destroy(&l->connect_lock);
    free(l);
}

static const struct node_ops later_ops = {
    .stat = later_stat,
    .list = later_list,
    .read = later_read,
    .read_stream = later_read_stream,
    .mfs_stat = later_mfs_stat,
    .mfs_list = later_mfs_list,
    .mfs_mkdir = later_mfs_mkdir,
    .mfs_chcid = later_mfs_chcid,
    .mfs_rm = later_mfs_rm,
    .mfs_link = later_mfs_link,
    .mfs_mv = later_mfs_mv,
    .mfs_chmod = later_mfs_chmod,
    .mfs_touch = later_mfs_touch,
    .add = later_add,
    .add_stream = later_add_stream,
    .put_symlink = later_put_symlink,
    .space = later_space,
    .put_car = later_put_car,
    .upload_moved_ms = later_upload_moved,
    .get_block = later_get_block,
    .has_dag = later_has_dag,
    .identity = later_identity,
    .end_by = later_end_by,
    .stats = later_stats,
    .destroy = later_destroy,
};

int node_later_new(node_connect_fn connect, void *ud, const char *description,
                   struct node **out)
{
    struct node_later *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->base.ops = &later_ops;
    l->base.description = l->description;
    l->connect = connect;
    l->ud = ud;
    l->logged = true; /* the caller said it at mount time */
    atomic_init(&l->real, NULL);
    pthread_mutex_init(&l->connect_lock, NULL);
    snprintf(l->description, sizeof l->description, "%s", description);
    *out = &l->base;
    return 0;
}

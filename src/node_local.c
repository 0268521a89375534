/* node_local.c - see node_local.h. */
#include "config.h"

#include "node_local.h"

#include "log.h"
#include "node_store.h"
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node_local {
    struct node base; /* first: struct node * casts to struct node_local * */
    struct node *store, *up;
    struct sync *sync;
    struct cluster *cluster; /* NULL: none; freed after the sync engine stopped */
    struct rpc *publish_rpc; /* --publish (NULL: none); freed after the sync engine stopped */
    unsigned unmount_wait_ms;
    char description[512];
};

static struct node_local *to_local(struct node *n)
{
    return (struct node_local *)n;
}

/* Content by CID: the store's when it holds the root block (written here, or read before),
 * else the node's, which streams whole files faster than block-by-block fetches. */
static struct node *for_cid(struct node_local *l, const struct cid *c)
{
    return node_store_has(l->store, c) ? l->store : l->up;
}

static int local_stat(struct node *n, const struct cid *c, struct node_stat *out)
{
    struct node *b = for_cid(to_local(n), c);
    return b->ops->stat(b, c, out);
}

static int local_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node *b = for_cid(to_local(n), c);
    return b->ops->list(b, c, fn, ud);
}

static int local_lookup(struct node *n, const struct cid *c, const char *name, size_t len,
                        struct cid *out)
{
    struct node *b = for_cid(to_local(n), c);
    return b->ops->lookup ? b->ops->lookup(b, c, name, len, out) : -EAGAIN;
}

static ssize_t local_read(struct node *n, const struct cid *c, uint64_t off, size_t len,
                          char *buf)
{
    struct node *b = for_cid(to_local(n), c);
    return b->ops->read(b, c, off, len, buf);
}

static int local_read_stream(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                             int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    struct node *b = for_cid(to_local(n), c);
    if (b->ops->read_stream)
        return b->ops->read_stream(b, c, off, len, sink, ud);
    /* The store reads from local disk: one read, handed over in one piece. */
    if (len > (64u << 20))
        return -EFBIG;
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    ssize_t r = b->ops->read(b, c, off, len, buf);
    int rc = r < 0 ? (int)r : sink(ud, buf, (size_t)r);
    free(buf);
    return rc;
}

/* A block (the reader's DAG map walks files with it): where for_cid reads the content. The
 * store's copy is checked by the store; the node's is not (the caller hashes it), and it is
 * not kept in the store (reads of remote CIDs are not copied into it). */
static int local_get_block(struct node *n, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node *b = for_cid(to_local(n), c);
    if (!b->ops->get_block)
        return -EOPNOTSUPP;
    return b->ops->get_block(b, c, data, len);
}

/* The names: all local. */
static int local_mfs_stat(struct node *n, const char *path, struct node_stat *out,
                          struct cid *cid)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_stat(s, path, out, cid);
}

static int local_mfs_stat_here(struct node *n, const char *path, struct node_stat *out,
                              struct cid *cid)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_stat_here(s, path, out, cid);
}

static int local_mfs_list(struct node *n, const char *path, node_entry_fn fn, void *ud)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_list(s, path, fn, ud);
}

static int local_mfs_mkdir(struct node *n, const char *path)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_mkdir(s, path);
}

static int local_mfs_rm(struct node *n, const char *path, bool recursive)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_rm(s, path, recursive);
}

static int local_mfs_link(struct node *n, const struct cid *c, const char *path)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_link(s, c, path);
}

static int local_mfs_mv(struct node *n, const char *src, const char *dst)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_mv(s, src, dst);
}

static int local_mfs_chmod(struct node *n, const char *path, uint32_t mode)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_chmod(s, path, mode);
}

static int local_mfs_touch(struct node *n, const char *path, const struct timespec *mtime)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_touch(s, path, mtime);
}

static int local_mfs_put(struct node *n, const struct cid *c, const char *path,
                         const uint32_t *mode, const struct timespec *mtime)
{
    struct node *s = to_local(n)->store;
    return s->ops->mfs_put(s, c, path, mode, mtime);
}

static int local_add(struct node *n, int fd, uint64_t size, const struct node_add_opts *o,
                     struct cid *out)
{
    struct node *s = to_local(n)->store;
    return s->ops->add(s, fd, size, o, out);
}

static int local_add_stream(struct node *n, const struct node_add_opts *o,
                            struct add_stream **out)
{
    struct node *s = to_local(n)->store;
    return s->ops->add_stream ? s->ops->add_stream(s, o, out) : -ENOSYS;
}

static int local_put_symlink(struct node *n, const char *target, struct cid *out)
{
    struct node *s = to_local(n)->store;
    return s->ops->put_symlink(s, target, out);
}

static int local_space(struct node *n, uint64_t *total, uint64_t *avail)
{
    struct node *s = to_local(n)->store;
    return s->ops->space ? s->ops->space(s, total, avail) : -ENOSYS;
}

static int local_start(struct node *n)
{
    struct node_local *l = to_local(n);
    if (l->store->ops->start) {
        int rc = l->store->ops->start(l->store);
        if (rc < 0)
            return rc;
    }
    return sync_start(l->sync);
}

static int local_sync(struct node *n)
{
    return sync_wait(to_local(n)->sync);
}

static int local_sync_state(struct node *n, const char *path, char *buf, size_t len)
{
    return sync_state(to_local(n)->sync, path, buf, len);
}

#define XATTR_PINS "user.ipfs.pins"

#define XATTR_REPLICATION "user.ipfs.replication"

static int local_name_getxattr(struct node *n, const char *path, const char *name, char *buf,
                               size_t len)
{
    struct node_local *l = to_local(n);
    if (!l->cluster)
        return -ENOSYS;
    if (strcmp(name, XATTR_PINS) == 0)
        return sync_pins(l->sync, path, buf, len);
    if (strcmp(name, XATTR_REPLICATION) == 0)
        return sync_replication(l->sync, path, buf, len);
    return -ENOSYS;
}

static int local_name_setxattr(struct node *n, const char *path, const char *name,
                               const char *value, size_t size, int flags)
{
    struct node_local *l = to_local(n);
    if (l->cluster && !value && strcmp(name, XATTR_PINS) == 0)
        return 0; /* computed, as user.ipfs.cid: nothing to remove (rsync -X, fs_removexattr) */
    if (!l->cluster || strcmp(name, XATTR_REPLICATION) != 0)
        return -ENOSYS;
    return sync_set_replication(l->sync, path, value, size, flags);
}

static int local_name_xattrs(struct node *n, const char *path, char *buf, size_t len)
{
    struct node_local *l = to_local(n);
    if (!l->cluster)
        return 0;
    /* Only what a user sets: user.ipfs.pins is computed, read by name (see fs_listxattr). */
    char v[32];
    if (sync_replication(l->sync, path, v, sizeof v) <= 0)
        return 0;
    if (len < sizeof XATTR_REPLICATION)
        return -ERANGE;
    memcpy(buf, XATTR_REPLICATION, sizeof XATTR_REPLICATION);
    return (int)sizeof XATTR_REPLICATION;
}

static int local_stats(struct node *n, char *buf, size_t len)
{
    struct node_local *l = to_local(n);
    size_t o = 0;
    int k = sync_stats(l->sync, buf, len);
    if (k > 0)
        o += (size_t)k;
    struct node *parts[] = {l->store, l->up};
    for (size_t i = 0; i < 2; i++) {
        if (!parts[i]->ops->stats)
            continue;
        k = parts[i]->ops->stats(parts[i], buf + (o < len ? o : len), o < len ? len - o : 0);
        if (k > 0)
            o += (size_t)k;
    }
    return (int)o;
}

static void local_destroy(struct node *n)
{
    struct node_local *l = to_local(n);
    node_store_closing(l->store);
    if (l->sync)
        sync_stop(l->sync, l->unmount_wait_ms);
    cluster_free(l->cluster);
    rpc_free(l->publish_rpc);
    node_destroy(l->store);
    node_destroy(l->up);
    free(l);
}

/* An open file's content stays in the store while it is open (the store's collector). */
static int local_hold(struct node *n, const struct cid *c)
{
    return node_hold(to_local(n)->store, c);
}

static void local_release(struct node *n, const struct cid *c)
{
    node_release(to_local(n)->store, c);
}

static const struct node_ops local_ops = {
    .stat = local_stat,
    .list = local_list,
    .lookup = local_lookup,
    .read = local_read,
    .read_stream = local_read_stream,
    .mfs_stat = local_mfs_stat,
    .mfs_list = local_mfs_list,
    .mfs_mkdir = local_mfs_mkdir,
    .mfs_rm = local_mfs_rm,
    .mfs_link = local_mfs_link,
    .mfs_mv = local_mfs_mv,
    .mfs_chmod = local_mfs_chmod,
    .mfs_touch = local_mfs_touch,
    .mfs_stat_here = local_mfs_stat_here,
    .mfs_put = local_mfs_put,
    .add = local_add,
    .add_stream = local_add_stream,
    .put_symlink = local_put_symlink,
    .space = local_space,
    .get_block = local_get_block,
    .start = local_start,
    .sync = local_sync,
    .sync_state = local_sync_state,
    .name_getxattr = local_name_getxattr,
    .name_setxattr = local_name_setxattr,
    .name_xattrs = local_name_xattrs,
    .hold = local_hold,
    .release = local_release,
    .stats = local_stats,
    .destroy = local_destroy,
};

/* The store asks the node for a block it lacks (names adopted from the node). */
static int fetch_from_node(void *ud, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node *up = ud;
    return up->ops->get_block(up, c, data, len);
}

int node_local_new(const char *store_dir, const struct node_store_config *scfg,
                   struct node *up, const struct node_local_config *cfg, struct node **out,
                   char *err, size_t errlen)
{
    struct node_local *l = calloc(1, sizeof *l);
    if (!l) {
        rpc_free(cfg->publish_rpc);
        node_destroy(up);
        return -ENOMEM;
    }
    l->up = up;
    l->publish_rpc = cfg->publish_rpc;
    l->unmount_wait_ms = cfg->unmount_wait_ms;
    struct node_store_config sc = *scfg;
    if (up->ops->get_block) {
        sc.fetch = fetch_from_node;
        sc.fetch_ud = up;
    }
    int rc = node_store_new(store_dir, &sc, &l->store, err, errlen);
    if (rc < 0)
        goto fail;
    if (cfg->cluster) {
        char state[PATH_MAX];
        struct cluster_config cc = *cfg->cluster;
        snprintf(state, sizeof state, "%s/cluster-pins", node_store_dir(l->store));
        cc.state_path = state;
        rc = cluster_new(&cc, &l->cluster, err, errlen);
        if (rc < 0)
            goto fail;
    }
    struct sync_config yc = {
        .mfs_root = cfg->mfs_root,
        .timeout_ms = cfg->timeout_ms,
        .poll_ms = cfg->poll_ms,
        .max_bytes = cfg->store_max_bytes,
        .ahead = cfg->sync_ahead,
        .cluster = l->cluster,
        .wait_replication = cfg->wait_replication,
        .publish_rpc = l->publish_rpc,
        .publish_key = cfg->publish_key,
    };
    rc = sync_new(l->store, l->up, &yc, &l->sync);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the sync engine: %s", strerror(-rc));
        goto fail;
    }
    l->base.ops = &local_ops;
    l->base.description = l->description;
    snprintf(l->description, sizeof l->description,
             "%s, local-first: names and new blocks in %s, synced to the node in the background",
             up->description, store_dir);
    *out = &l->base;
    return 0;
fail:
    cluster_free(l->cluster);
    rpc_free(l->publish_rpc);
    node_destroy(l->store);
    node_destroy(up);
    free(l);
    return rc;
}

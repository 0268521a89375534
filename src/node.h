/* node.h - the node interface: what the filesystem needs from an IPFS implementation.
 *
 * One small vtable; the RPC backend (node_rpc.c) is the one implementation today, an embedded
 * block store and a trustless gateway can follow behind the same calls. Every call may be made
 * from any thread, concurrently; every call is bounded in time by the backend's timeout.
 * Errors: 0 or -errno (-ENOENT missing, -ETIMEDOUT not found in time, -EIO node unreachable or
 * answered garbage; the reason is logged by the backend).
 */
#ifndef IPFSFS_NODE_H
#define IPFSFS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cid.h"

enum node_kind {
    NODE_UNKNOWN = 0, /* the listing could not tell: ask stat */
    NODE_FILE,
    NODE_DIR,
    NODE_SYMLINK,
};

/* Whether t's fraction is one UnixFS 1.5 can store (0..999999999 ns). */
static inline bool node_time_ok(const struct timespec *t)
{
    return t->tv_nsec >= 0 && t->tv_nsec <= 999999999;
}

/* What a CID is. */
struct node_stat {
    enum node_kind kind;
    uint64_t size;    /* file bytes; symlink target length; 0 for directories */
    uint32_t mode;    /* UnixFS 1.5 permission bits, 0 if none stored */
    int64_t mtime;    /* UnixFS 1.5 mtime (seconds), valid if has_mtime */
    uint32_t mtime_nsec; /* and its fraction (0..999999999) */
    bool has_mtime;
    char *target;     /* symlink target (malloc'd, NUL-free), else NULL */
};

/* One child of a directory, as the listing gives it. Pointers are valid during the callback. */
struct node_entry {
    const char *name; /* validated: not empty, not . or .., no '/' or NUL, <= 255 bytes */
    size_t name_len;
    struct cid cid;
    enum node_kind kind;
    uint64_t size; /* file bytes (0 for directories, unknown kinds) */
    uint32_t mode; /* 0 if none */
    int64_t mtime; /* stored UnixFS 1.5 mtime, if has_mtime (a listing may not tell) */
    uint32_t mtime_nsec;
    bool has_mtime;
};

/* Return 0 to continue, -errno to stop the listing (that value is returned by list). */
typedef int (*node_entry_fn)(void *ud, const struct node_entry *e);

struct node;

/* A file's bytes imported as they are written (node_ops.add_stream): the stream takes whole
 * chunks of chunk bytes, in order from offset 0, read from the file descriptor it is given;
 * end imports the rest and gives the CID that add would give the same bytes. The caller keeps
 * the bytes below the stream's offset unchanged while it lives. One caller at a time. */
struct add_stream;
struct add_stream_ops {
    /* Import every whole chunk of fd below upto not imported yet; *done: the bytes imported
     * so far (a multiple of chunk). 0 or -errno (then only release is allowed). */
    int (*more)(struct add_stream *s, int fd, uint64_t upto, uint64_t *done);
    /* Import fd's bytes from *done up to size (size >= *done) and give the file's CID, its
     * blocks stored. 0 or -errno; then only release is allowed. */
    int (*end)(struct add_stream *s, int fd, uint64_t size, struct cid *out);
    /* Free the stream, ended or not. Until then the blocks it stored are kept from the store's
     * garbage collection: after end, release once the CID is linked under its name. */
    void (*release)(struct add_stream *s);
};
struct add_stream {
    const struct add_stream_ops *ops;
    size_t chunk;
};

/* How add imports bytes (mount options --cid-version, --raw-leaves, --chunker, --pin). */
struct node_add_opts {
    int cid_version;   /* -1: the node's default */
    int raw_leaves;    /* -1: the node's default, else 0/1 */
    const char *chunker; /* NULL: the node's default */
    unsigned max_links;  /* links per file node (Import.UnixFSFileMaxLinks); 0: 174 */
    bool pin;
};

#define NODE_CAR_STREAM UINT64_MAX /* put_car: read fd to its end */

struct node_ops {
    int (*stat)(struct node *n, const struct cid *c, struct node_stat *out);
    int (*list)(struct node *n, const struct cid *c, node_entry_fn fn, void *ud);
    /* The CID of name (len bytes) in directory c, without listing c: a HAMT's shards on the
     * name's path only, no block of the other entries. Optional: NULL, or -EAGAIN (a hostile
     * directory whose listing decides what the name means), and the caller lists c. 0,
     * -ENOENT, -ENOTDIR or -errno. */
    int (*lookup)(struct node *n, const struct cid *c, const char *name, size_t len,
                  struct cid *out);
    /* Read exactly len bytes at off (the caller keeps off + len within the file size).
     * Returns bytes read (== len) or -errno. */
    ssize_t (*read)(struct node *n, const struct cid *c, uint64_t off, size_t len, char *buf);
    /* The mutable namespace (Kubo's MFS, files API). Paths are absolute MFS paths. */
    int (*mfs_stat)(struct node *n, const char *path, struct node_stat *out, struct cid *cid);
    /* mfs_stat from what is here (memory, local disk), never waiting on the network: an error
     * (any) when a block it needs is not here. Optional: NULL where names are remote. A
     * listing then brings every name's attributes with it (READDIRPLUS), instead of the kernel
     * asking name by name. */
    int (*mfs_stat_here)(struct node *n, const char *path, struct node_stat *out,
                         struct cid *cid);
    int (*mfs_list)(struct node *n, const char *path, node_entry_fn fn, void *ud);
    int (*mfs_mkdir)(struct node *n, const char *path);
    /* Give the directory at path CIDs of this version (0 or 1) from now on (Kubo: files/chcid;
     * its content stays). Optional: NULL where directories take the version of the import. */
    int (*mfs_chcid)(struct node *n, const char *path, int version);
    int (*mfs_rm)(struct node *n, const char *path, bool recursive);
    /* Link existing content c under path; path must not exist. */
    int (*mfs_link)(struct node *n, const struct cid *c, const char *path);
    /* Batch the mfs_link calls this thread makes until mfs_batch(n, false): the backend may
     * leave them not yet durable meanwhile (Kubo: flush=false, and a files/flush every 200),
     * and mfs_batch(n, false) makes them all durable (0, or -errno: then they may not be).
     * For a push of many names: Kubo re-encodes a directory of thousands on each flushed
     * change. Optional: NULL means each change is durable at once. */
    int (*mfs_batch)(struct node *n, bool on);
    /* Move src to dst, replacing dst if it exists (and, for directories, is empty). */
    int (*mfs_mv)(struct node *n, const char *src, const char *dst);
    int (*mfs_chmod)(struct node *n, const char *path, uint32_t mode);
    /* Store mtime (tv_nsec in 0..999999999, kept as UnixFS 1.5's fraction) on path. */
    int (*mfs_touch)(struct node *n, const char *path, const struct timespec *mtime);
    /* Link existing content c at path, replacing a name there that is not a directory
     * (-EISDIR if it is), with mode (NULL: none stored) and mtime (NULL: none) applied to it
     * first, as one change: path never goes missing, nor shows c without its mode. Optional:
     * NULL means link beside, set, and move over (writer_link). */
    int (*mfs_put)(struct node *n, const struct cid *c, const char *path, const uint32_t *mode,
                   const struct timespec *mtime);
    /* Import size bytes read from fd (from offset 0) as one file; returns its CID. */
    int (*add)(struct node *n, int fd, uint64_t size, const struct node_add_opts *o,
               struct cid *out);
    /* Start an add that takes the bytes as they are written (struct add_stream), with the
     * same import settings and result as add. Optional: NULL or -ENOSYS means use add. */
    int (*add_stream)(struct node *n, const struct node_add_opts *o, struct add_stream **out);
    /* Store a UnixFS symlink node; returns its CID. */
    int (*put_symlink)(struct node *n, const char *target, struct cid *out);
    /* Like read, but the bytes go to sink as they arrive (so a reader can use the first
     * chunks of a long range before the rest is there). Returns 0 or -errno (also when fewer
     * than len bytes came). Optional: NULL means use read. */
    int (*read_stream)(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                       int (*sink)(void *ud, const char *data, size_t len), void *ud);
    /* Space where new content goes (the node's repo, the store's disk), for statfs(2): total and
     * available bytes. Optional: NULL (or -ENOSYS) means unknown, and statfs reports zeros. */
    int (*space)(struct node *n, uint64_t *total, uint64_t *avail);
    /* Take the blocks of a CARv1 file (size bytes of fd, from offset 0; with size
     * NODE_CAR_STREAM, all that fd gives until its end, read in order: a pipe), pinning nothing:
     * the sync engine's bulk push. Optional (NULL: the backend cannot be a sync upstream).
     * Bounded by stalls, not by size. 0 or -errno with the reason in err. */
    int (*put_car)(struct node *n, int fd, uint64_t size, char *err, size_t errlen);
    /* When an upload to the node (put_car, add) last moved 256 KiB more toward it, as the
     * other end took them (CLOCK_MONOTONIC ms; 0: none yet). Optional: NULL, cannot tell. */
    uint64_t (*upload_moved_ms)(struct node *n);
    /* One block as the backend has it, not verified (the caller hashes it): *data is
     * malloc'd. Optional (NULL: blocks cannot be fetched from it). 0 or -errno. */
    int (*get_block)(struct node *n, const struct cid *c, uint8_t **data, size_t *len);
    /* Whether the backend has c and every block under it now, without fetching any: the sync
     * engine's check of blocks it sent ahead of their names (prepush.h), which the backend
     * may have dropped since (they were not pinned). 1: all there, 0: one is missing, -errno:
     * cannot tell. Optional: NULL means walk with get_block. */
    int (*has_dag)(struct node *n, const struct cid *c);
    /* The node's own identity into buf (Kubo: its peer ID), which changes when its repo is made
     * anew or another node answers at the same address: the sync engine must not take such a
     * node's names for changes made to the ones it synced with. 0 or -errno. Optional: NULL
     * (or -ENOSYS) means it has none. */
    int (*identity)(struct node *n, char *buf, size_t len);
    /* Every request to the node ends by CLOCK_MONOTONIC ms mono_ms, those in flight too (an
     * unmount's --unmount-wait). Optional: NULL means requests end by --timeout only. */
    void (*end_by)(struct node *n, uint64_t mono_ms);
    /* Start the backend's threads: called once, after the process has become a daemon (a
     * fork would lose threads started before). Optional: NULL means none. 0 or -errno. */
    int (*start)(struct node *n);
    /* Make every change made before the call durable where this node keeps it: for the store,
     * on local disk; for a local-first mount, locally and on the upstream node (bounded by the
     * timeout; the upstream's refusal is -EIO). Optional: NULL means changes are durable as
     * soon as the call that made them returns. */
    int (*sync)(struct node *n);
    /* What path's name holds, as text into buf ("synced", "pending", or "error: why"): the
     * user.ipfsfs.sync xattr. Optional: NULL (or -ENOSYS) means the attribute does not exist.
     * Returns bytes written like snprintf, or -errno. */
    int (*sync_state)(struct node *n, const char *path, char *buf, size_t len);
    /* Keep c's blocks (a file's DAG) where this node keeps blocks until release(c), whatever
     * happens to the names that use it: a file open for reading or writing keeps its content
     * when its name is removed or replaced (a store collects blocks no name uses). Holds
     * count. Optional: NULL means nothing is ever collected. 0 or -errno. */
    int (*hold)(struct node *n, const struct cid *c);
    void (*release)(struct node *n, const struct cid *c);
    /* Extended attributes the node keeps for names, beyond the CID and user.ipfsfs.sync (a
     * cluster's user.ipfs.pins, user.ipfs.replication). path is the name's path under the
     * mount ("/a/b", "/" for the root). Optional, each:
     * - name_getxattr: the value into buf, returns bytes written like snprintf, -ENODATA
     *   (none for this name) or -errno; -ENOSYS: not one of the node's attributes.
     * - name_setxattr: set (value NULL: remove) with setxattr(2)'s flags; 0 or -errno,
     *   -ENOSYS: not one of the node's attributes.
     * - name_xattrs: the NUL-terminated names path has, one after the other, into buf; returns
     *   bytes written (each name's NUL counted), 0 for none, or -errno. */
    int (*name_getxattr)(struct node *n, const char *path, const char *name, char *buf,
                         size_t len);
    int (*name_setxattr)(struct node *n, const char *path, const char *name, const char *value,
                         size_t size, int flags);
    int (*name_xattrs)(struct node *n, const char *path, char *buf, size_t len);
    /* Fill stats text (for user.ipfsfs.stats); returns bytes written like snprintf. */
    int (*stats)(struct node *n, char *buf, size_t len);
    void (*destroy)(struct node *n);
    /* How long, in seconds, what mfs_stat said of path stays true, for a namespace whose names
     * change on their own (IPNS: what remains of the name's resolution, which lives no longer
     * than its TTL, its EOL and a cap; 0 if it is not kept). The kernel's entry and attribute
     * timeouts of such names are set to it. Negative: no limit of the node's own (the mount's
     * root timeout applies). Optional: NULL means the same as negative. */
    double (*valid_for)(struct node *n, const char *path);
};

struct node {
    const struct node_ops *ops;
    const char *description; /* "Kubo 0.30.0 at http://127.0.0.1:5001" */
};

static inline void node_stat_clear(struct node_stat *s)
{
    if (s->target) {
        __builtin_free(s->target);
        s->target = NULL;
    }
}

static inline int node_hold(struct node *n, const struct cid *c)
{
    return n->ops->hold ? n->ops->hold(n, c) : 0;
}

static inline void node_release(struct node *n, const struct cid *c)
{
    if (n->ops->release)
        n->ops->release(n, c);
}

static inline int node_stat(struct node *n, const struct cid *c, struct node_stat *out)
{
    return n->ops->stat(n, c, out);
}
static inline int node_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    return n->ops->list(n, c, fn, ud);
}
static inline ssize_t node_read(struct node *n, const struct cid *c, uint64_t off, size_t len,
                                char *buf)
{
    return n->ops->read(n, c, off, len, buf);
}
static inline void node_destroy(struct node *n)
{
    if (n)
        n->ops->destroy(n);
}

/* Validate a directory entry name coming from the node. Returns true if it may be exposed. */
bool node_name_ok(const char *name, size_t len);

#endif

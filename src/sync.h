/* sync.h - the sync engine: pushes the local names tree (the embedded store) to a node's MFS
 * in the background, and pulls the changes made there.
 *
 * The durable queue is the pair of roots in the store: what the store has committed, and what
 * the node was last confirmed to have (DIR/synced: the local root then, and the CID of the
 * node's MFS directory then). Everything reachable from the first and not from the second is
 * pending: a push sends those blocks in one CAR (dag/import), then changes the names under
 * --mfs-root with a few files API calls per changed directory, then records the new pair. A
 * crash anywhere in between leaves the old pair, and the next push repeats the work (the node
 * ignores blocks it has; names are compared before they are changed).
 *
 * Changes made on the node (the MFS directory's CID is not the recorded one): with nothing
 * pending here they are adopted (the store's root becomes the node's); with changes on both
 * sides they are merged three ways against the last synced root, name by name, and where both
 * changed one name the local version stays and the node's goes beside it as
 * "NAME.conflict-YYYYMMDD-HHMMSS".
 */
#ifndef IPFSFS_SYNC_H
#define IPFSFS_SYNC_H

#include <stdatomic.h>
#include <stddef.h>

#include "node.h"
#include "rpc.h"

struct sync;

struct sync_config {
    const char *mfs_root; /* the node's MFS directory that mirrors the store's root */
    unsigned timeout_ms;  /* the node's timeout: bounds each wait of fsync */
    unsigned poll_ms;     /* how often the node is checked for changes (0: 2000) */
    uint64_t max_bytes;   /* the store's size past which file blocks the node has are
                           * evicted locally (0: never) */
    int ahead;            /* 1: a large file's blocks go to the node while it is written
                           * (prepush.h); 0: with the names only; -1: 1 with 4 or more CPUs
                           * online (on fewer, the node's import slows the writer more than
                           * the overlap gains) */
    struct cluster *cluster; /* pin every root of the names the node has through this
                              * cluster (cluster.h; NULL: none). Stays the caller's. */
    bool wait_replication;   /* sync_wait also waits (within timeout_ms) until the cluster
                              * has the root on its minimum number of peers */
    struct rpc *publish_rpc; /* --publish: publish each root of the names the node has under */
    const char *publish_key; /* this key of the node's, through this API (NULL: never). The
                              * rpc stays the caller's. */
};

/* Set up the engine over store (a node_store) and up (a node with put_car): both stay owned by the
 * caller and must outlive the engine. Returns 0 or -errno. */
int sync_new(struct node *store, struct node *up, const struct sync_config *cfg,
             struct sync **out);

/* Run a first round now (so that names made on the node show at once; a failure is logged and
 * retried), then start the engine's thread. Returns 0 or -errno (no thread). */
int sync_start(struct sync *s);

/* Make every change made before the call durable locally and on the node. 0, or -EIO when
 * the node refused or could not be reached within the timeout (the changes stay queued). */
int sync_wait(struct sync *s);

/* user.ipfsfs.sync of the name at path (store path, "/a/b"): "synced", "pending" or
 * "error: REASON" (pending, and the last push failed for REASON). snprintf-like. */
int sync_state(struct sync *s, const char *path, char *buf, size_t len);

/* user.ipfs.pins of the name at path: "pending: ..." while the node has not got it, else the
 * cluster's status of the names' root pinned last (cluster_status_text). -ENOSYS without a
 * cluster. snprintf-like. */
int sync_pins(struct sync *s, const char *path, char *buf, size_t len);

/* user.ipfs.replication of the name at path: "MIN:MAX" when it has factors of its own (then it
 * is pinned on its own with them), -ENODATA when not, -ENOSYS without a cluster.
 * snprintf-like. */
int sync_replication(struct sync *s, const char *path, char *buf, size_t len);

/* Set (value "MIN[:MAX]", setxattr(2)'s flags) or remove (value NULL) those factors; the
 * pins follow at the next round. 0, -EINVAL (a bad value, or the root: that is
 * --replication), -ENOENT (no such name), -EEXIST/-ENODATA (flags), -ENOSYS (no cluster). */
int sync_set_replication(struct sync *s, const char *path, const char *value, size_t size,
                         int flags);

/* Counters for user.ipfsfs.stats. snprintf-like. */
int sync_stats(struct sync *s, char *buf, size_t len);
/* A free name beside DIR/NAME in store's names for the version of it kept in a conflict:
 * "DIR/NAME.conflict-YYYYMMDD-HHMMSS" (UTC), with "-1", "-2"... when taken (of a long NAME
 * its first 200 bytes). 0, or -errno (-EEXIST: 100 of them taken). */
int sync_conflict_name(struct node *store, const char *dir, const char *name, char *out,
                       size_t len);

/* Stop: push what is pending, waiting at most wait_ms, then end the thread. Logs what is left
 * on the node's side (kept in the store for the next mount). Returns 0 when the node has
 * everything, -EAGAIN otherwise. Frees s. */
int sync_stop(struct sync *s, unsigned wait_ms);

/* A flag (a signal handler's, lock-free: the signal's number once one asks to stop waiting)
 * that cuts every sync_stop's wait short: what is not sent yet is kept for the next mount, as
 * when the wait runs out. Set before the first sync_stop; NULL: none. */
void sync_set_cut_flag(const atomic_int *flag);

#endif

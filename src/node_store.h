/* node_store.h - struct node over an embedded block store: no IPFS node needed.
 *
 * Content is imported and addressed exactly as Kubo does by default (importer.h), kept in DIR's
 * block store (blockstore.h) and verified on every read. A missing block is -ENOENT at once,
 * unless the config gives a fetch hook (the sync engine's upstream node): then it is asked
 * there, verified and kept.
 * The names (Kubo's MFS) are a tree of UnixFS directories. A change replaces the current root
 * in memory; a group commit makes it durable in DIR/root within commit_ms (or at once on
 * node_store_commit, which is the node's sync op). After a crash the store holds the root of
 * the last finished commit, complete: every block it points to was durable before it.
 */
#ifndef IPFSFS_NODE_STORE_H
#define IPFSFS_NODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "car.h"
#include "node.h"

/* Kubo (boxo) shards a directory whose estimated size (names + binary CIDs) exceeds this. */
#define NODE_STORE_HAMT_SHARD_BYTES (256u << 10)

/* Group commit interval when the config says 0. */
#define NODE_STORE_COMMIT_MS 1000u

/* Collection (see node_store.c): at most this often (after a commit), and never of a block
 * put (written, or found there already) within NODE_STORE_GC_YOUNG_MS, or during an add or a
 * name change still under way. */
#define NODE_STORE_GC_MS 5000u
#define NODE_STORE_GC_YOUNG_MS 10000u

struct node_store_config {
    struct node_add_opts add;  /* defaults for imports (-1/NULL: Kubo's) */
    uint64_t hamt_shard_bytes; /* 0: NODE_STORE_HAMT_SHARD_BYTES (tests lower it) */
    /* The node's Import.UnixFSHAMTDirectorySizeEstimation is "block": a directory's size is
     * its block's (hamt_entry_est), not its names' and CIDs' bytes. */
    bool hamt_block_est;
    unsigned commit_ms;        /* group commit interval (0: NODE_STORE_COMMIT_MS) */
    unsigned gc_interval_ms;   /* 0: NODE_STORE_GC_MS; UINT_MAX: no background collection */
    unsigned gc_young_ms;      /* 0: NODE_STORE_GC_YOUNG_MS (tests lower them) */
    /* A block missing from the store is asked here (NULL: -ENOENT). Called with no store lock
     * held, from any thread; returns 0 and a malloc'd copy of the block, or -errno. The store
     * verifies it against c (hash) before use (-EIO if it does not match) and keeps it in the
     * block store: durable with the next commit, or, in a gateway store (one with fetch_many),
     * as a cache copy (blockstore_put_cache: never fsynced, evictable past cache_max_bytes). */
    int (*fetch)(void *ud, const struct cid *c, uint8_t **data, size_t *len);
    void *fetch_ud;
    /* With fetch: the blocks of root's DAG that hold the file bytes [from, to] (inclusive), in
     * DFS order, each verified against its CID before cb sees it (cb returns -EBADMSG for a
     * block that was not asked for: the hook penalises its source), at most max bytes (see
     * gw_fetch_range, called with fetch_ud). NULL: gw_fetch_range when fetch is gw_fetch, else
     * none. With one, reads of missing content stream a range at a time (read_stream). */
    int (*fetch_range)(void *ud, const struct cid *root, uint64_t from, uint64_t to, size_t max,
                       car_block_cb cb, void *cbud);
    /* With fetch: many blocks at once, parallel requests at a time, each verified before cb
     * (index, malloc'd data: cb's) sees it; what it does not bring is asked of fetch (see
     * gw_fetch_many, called with fetch_ud). Returns how many cb took, or -errno. NULL:
     * gw_fetch_many when fetch is gw_fetch, else none. Reads of missing content then fetch the
     * leaves of a range this way (and a range fetch when this brings nothing). */
    int (*fetch_many)(void *ud, const struct cid *cids, size_t n, unsigned parallel,
                      int (*cb)(void *ud, size_t i, uint8_t *data, size_t len), void *cbud);
    /* Where fetch_many's buffers go back when done (NULL: gw_buf_release when fetch is
     * gw_fetch, else free). */
    void (*fetch_release)(void *ud, uint8_t *data);
    /* With fetch: a read's bound across the hooks (see gw_read_cap): on at the start of a
     * read of missing content and at each block it brings, off at its end, from the reading
     * thread. NULL: gw_read_cap when fetch is gw_fetch, else none. */
    void (*fetch_cap)(void *ud, bool on);
    /* With fetch: past this many bytes of block files (--store-size), fetched blocks are
     * evicted, least recently used first, down to 90 % of it; never a block the names reach
     * (nor one an add or a name change has just put). 0: never. */
    uint64_t cache_max_bytes;
    /* With fetch: the counters of what fetch asks (gw_stats_cb for gw_fetch), appended to the
     * store's statistics; returns bytes written like snprintf. NULL: none (a store behind
     * node_fallback, whose own stats hook shows them). */
    int (*fetch_stats)(void *ud, char *buf, size_t len);
};

/* Open or create the store in dir (created 0700 if missing). dir must not be a symlink
 * (-ELOOP) and must belong to the effective user (-EPERM); if others could enter it, it is
 * made 0700 again. Returns 0 or -errno with a message. The store's walkers are bounded: see
 * the bounds at the top of node_store.c. With a fetch hook, a committed root whose block is
 * not here is accepted unverified (it is fetched when first needed). */
int node_store_new(const char *dir, const struct node_store_config *cfg, struct node **out,
                   char *err, size_t errlen);

/* Before node_store_new, and before contacting a node: whether another ipfsfs process holds
 * the store in dir. Waits as node_store_new does (3 s, or while the holder says it is sending
 * its last changes after an unmount), then -EBUSY with a message. 0: free (or no store yet). */
int node_store_check_free(const char *dir, char *err, size_t errlen);

/* All of the calls below are thread-safe and take the struct node that node_store_new gave. */

/* The mount is over and the last changes go to the node (for up to --unmount-wait): a mount
 * of the same store meanwhile waits for this process instead of refusing (DIR/lock). */
void node_store_closing(struct node *n);

/* Make every change made before the call durable (blocks, then DIR/root). Returns 0, or the
 * error of this commit, or (once) that of a background commit that failed since the last call
 * (like fsync(2): a failure is reported to one caller, then forgotten). */
int node_store_commit(struct node *n);

/* True once a store's teardown (node_destroy) could not commit its last changes: the daemon
 * then exits 1. */
bool node_store_teardown_failed(void);

/* The current root (in memory) and the last committed one; any pointer may be NULL. seq counts
 * the commits that made a new root durable (so a waiter can tell a later commit happened).
 * The blocks of a root that was current but never committed (replaced before a commit) may be
 * gone once a later commit is done: they were only kept in memory. A committed root's blocks
 * stay while it is the committed one, or held (node_store_hold): the collector removes the
 * blocks no live root reaches. */
void node_store_roots(struct node *n, struct cid *current, struct cid *committed, uint64_t *seq);

/* Replace the current root by next if it still equals expected (else -EAGAIN): how the sync
 * engine adopts or merges changes made on the node. next's blocks may be missing locally (they
 * are fetched when needed). Committed like any change. */
int node_store_swap_root(struct node *n, const struct cid *expected, const struct cid *next);

/* One block, verified: from the store or, if missing, fetched (and kept). *data malloc'd.
 * -ENOENT if missing and there is no fetch hook. */
int node_store_block(struct node *n, const struct cid *c, uint8_t **data, size_t *len);

/* A file import's blocks, each once it is stored (on the import's writer thread; data is
 * valid during the call only): how the sync engine sends a large file's chunks while the file
 * is written (prepush.h). Files imported in one piece (up to four chunks) do not call it.
 * Set (or clear, fn NULL) only while no import runs: before the mount serves, after it ends. */
typedef void (*node_store_block_hook)(void *ud, const struct cid *c, const uint8_t *data,
                                      size_t len);
void node_store_set_block_hook(struct node *n, node_store_block_hook fn, void *ud);

/* From now on, this thread's reads of n's blocks (any node_store) answer from what is here:
 * a block the store lacks is -ENOENT, not fetched. Returns the previous setting, to restore. */
bool node_store_here_only(bool on);

/* Whether the block is in the store now (no fetch, not verified). */
bool node_store_has(struct node *n, const struct cid *c);

/* Resolve an absolute path ("/a/b") under root (any root, not only the current one). */
int node_store_resolve(struct node *n, const struct cid *root, const char *path, struct cid *out);

/* The store's directory (absolute; for the sync engine's own state file). */
const char *node_store_dir(struct node *n);

/* Disk the store's block files use (bytes allocated). */
int node_store_usage(struct node *n, uint64_t *bytes);
/* Delete one block file: only for a block the fetch hook's upstream has (the sync engine
 * evicts what the node holds); a later read fetches it again. 0 or -errno. */
int node_store_evict(struct node *n, const struct cid *c, uint64_t *freed);

/* Keep root's blocks from collection until node_store_release(root) (holds count: a root held
 * twice is released twice). For a root that is or was the current or committed one while held
 * (the sync engine holds what it pushes and its synced root). 0 or -ENOMEM. */
int node_store_hold(struct node *n, const struct cid *root);
void node_store_release(struct node *n, const struct cid *root);

/* Collect now (as the collector's thread does, after commits): remove the block files that no
 * live root reaches and that are not young. 0 or -errno (then nothing more is removed). */
struct node_store_gc_result {
    uint64_t removed, removed_bytes; /* block files removed, their disk use */
    uint64_t live, young;            /* block files kept: in use, unused but young */
    uint64_t ms;
};
int node_store_gc(struct node *n, struct node_store_gc_result *out);

#endif

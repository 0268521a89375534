/* node_store.h - struct node over an embedded, offline block store: no IPFS node needed.
 *
 * Content is imported and addressed exactly as Kubo does by default (importer.h), kept in DIR's
 * block store (blockstore.h) and verified on every read. A missing block is -ENOENT at once.
 * The names (Kubo's MFS) are a tree of UnixFS directories whose root CID is in DIR/root.
 */
#ifndef IPFSFS_NODE_STORE_H
#define IPFSFS_NODE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"

/* Kubo (boxo) shards a directory whose estimated size (names + binary CIDs) exceeds this. */
#define NODE_STORE_HAMT_SHARD_BYTES (256u << 10)

struct node_store_config {
    struct node_add_opts add;  /* defaults for imports (-1/NULL: Kubo's) */
    uint64_t hamt_shard_bytes; /* 0: NODE_STORE_HAMT_SHARD_BYTES (tests lower it) */
};

/* Open or create the store in dir (created 0700 if missing). dir must not be a symlink
 * (-ELOOP) and must belong to the effective user (-EPERM); if others could enter it, it is
 * made 0700 again. Returns 0 or -errno with a message. The store's walkers are bounded: see
 * the bounds at the top of node_store.c. */
int node_store_new(const char *dir, const struct node_store_config *cfg, struct node **out,
                   char *err, size_t errlen);

#endif

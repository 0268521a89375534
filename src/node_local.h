/* node_local.h - the local-first node: names and new blocks in the embedded store (written and
 * read with no network wait), pushed to an upstream node by the sync engine (sync.h).
 *
 * Names (the mfs_* calls), imports and symlinks go to the store. Content by CID comes from the
 * store when it holds the root block, else from the upstream node. A block of the names tree
 * the store lacks (names adopted from the node) is fetched from the node and kept.
 * sync makes every change durable locally and on the node (fsync(2)). With a cluster, the
 * names' roots are pinned through it and names have user.ipfs.pins (their replication).
 */
#ifndef IPFSFS_NODE_LOCAL_H
#define IPFSFS_NODE_LOCAL_H

#include <stdbool.h>

#include "cluster.h"
#include "node.h"
#include "node_store.h"
#include "rpc.h"

struct node_local_config {
    const char *mfs_root;     /* the upstream's MFS directory that mirrors the names */
    unsigned timeout_ms;      /* bound of an fsync's wait for the upstream */
    unsigned poll_ms;         /* how often outside changes are looked for (0: 2 s) */
    unsigned unmount_wait_ms; /* how long unmount waits for the upstream to have everything */
    uint64_t store_max_bytes; /* --store-size (0: no limit) */
    int sync_ahead;           /* sync_config's ahead (--sync-ahead) */
    /* IPFS Cluster (NULL: none): every root of the names the node has is pinned through it
     * (url, factors and pin name from here; the state file goes in the store's folder), and
     * names get the user.ipfs.pins attribute. */
    const struct cluster_config *cluster;
    bool wait_replication; /* fsync(2) also waits for the cluster's minimum replication */
    /* --publish: each root of the names the node has is published under this key of the
     * node's, through publish_rpc (the new node owns it from now on, also on failure). */
    const char *publish_key;
    struct rpc *publish_rpc;
};

/* Open the store in store_dir (node_store_new with scfg) over upstream up (any node with
 * put_car; Kubo's is node_rpc), which the new node owns from now on, also on failure. */
int node_local_new(const char *store_dir, const struct node_store_config *scfg,
                   struct node *up, const struct node_local_config *cfg, struct node **out,
                   char *err, size_t errlen);

#endif

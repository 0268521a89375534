/* node_fallback.h - a node, and a second one for the content it cannot give.
 *
 * With --api and --gateway: the primary is the node (RPC), the fallback a store that fetches
 * from the gateways. Every call goes to the primary. A content call (stat, list, read,
 * read_stream, get_block: content addressed by CID) that the primary fails with ETIMEDOUT (not
 * found in time, or an offline node that lacks it), EIO (the node is down or answered garbage)
 * or EAGAIN (too many waits on the node) is asked again of the fallback, with its own timeout;
 * when the fallback fails too, the primary's error stands. A streamed read falls back only if
 * the primary gave no byte. Content the fallback served is read from the fallback first for
 * 30 s (the primary only if the fallback fails): a file read piece by piece must not wait out
 * the primary's timeout once per piece. Calls on names (MFS), adds and pushes never fall back.
 */
#ifndef IPFSFS_NODE_FALLBACK_H
#define IPFSFS_NODE_FALLBACK_H

#include "node.h"

/* Takes both nodes (destroyed with it). extra_stats, if given, adds to the stats text (e.g.
 * the gateways' counters); it is called with ud. 0 or -ENOMEM (then both are destroyed). */
int node_fallback_new(struct node *primary, struct node *fallback,
                      int (*extra_stats)(void *ud, char *buf, size_t len), void *ud,
                      struct node **out);

/* A streamed read from b: its read_stream, else reads of 256 KiB handed to sink one by one. */
int node_read_stream_any(struct node *b, const struct cid *c, uint64_t off, uint64_t len,
                         int (*sink)(void *ud, const char *data, size_t len), void *ud);

#endif

/* node_rpc.h - the node backend that speaks Kubo's RPC API (Kubo >= 0.41). */
#ifndef IPFSFS_NODE_RPC_H
#define IPFSFS_NODE_RPC_H

#include "node.h"
#include "rpc.h"

/* Connect: builds the transport, asks the node for its version and picks the quirks to apply.
 * On failure returns -errno and writes a message for the user into err. */
int node_rpc_new(const struct rpc_config *cfg, struct node **out, char *err, size_t errlen);

/* One block as the node has it (block/get), not verified: *data is malloc'd. 0 or -errno. */
int node_rpc_block_get(struct node *n, const struct cid *c, uint8_t **data, size_t *len);

/* Give the node the blocks of a CARv1 file (size bytes of fd, from offset 0): dag/import,
 * nothing pinned. Bounded by stalls, not by size. 0 or -errno with the node's reason in err. */
int node_rpc_import_car(struct node *n, int fd, uint64_t size, char *err, size_t errlen);

#endif

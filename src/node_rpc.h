/* node_rpc.h - the node backend that speaks Kubo's RPC API (Kubo >= 0.41). */
#ifndef IPFSFS_NODE_RPC_H
#define IPFSFS_NODE_RPC_H

#include "node.h"
#include "rpc.h"

/* Connect: builds the transport, asks the node for its version and picks the quirks to apply.
 * On failure returns -errno and writes a message for the user into err; -ENOTCONN means
 * nothing answered at all (a node that may come later). */
int node_rpc_new(const struct rpc_config *cfg, struct node **out, char *err, size_t errlen);

#endif

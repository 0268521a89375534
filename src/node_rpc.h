/* node_rpc.h - the node backend that speaks Kubo's RPC API (Kubo >= 0.41). */
#ifndef IPFSFS_NODE_RPC_H
#define IPFSFS_NODE_RPC_H

#include "node.h"
#include "rpc.h"

/* Connect: builds the transport, asks the node for its version and picks the quirks to apply.
 * On failure returns -errno and writes a message for the user into err; -ENOTCONN means
 * nothing answered at all (a node that may come later). */
int node_rpc_new(const struct rpc_config *cfg, struct node **out, char *err, size_t errlen);

/* Publish /ipfs/<c> under the node's key `key` (name/publish, allowed offline). On success the
 * name (k51...) goes into name (len bytes). 0, or -errno with a reason in err. */
int node_rpc_publish(struct rpc *r, const char *key, const struct cid *c, char *name,
                     size_t len, char *err, size_t errlen);

/* Does the node have a key named key (key/list)? 1, 0, or -errno with a reason in err. */
int node_rpc_has_key(struct rpc *r, const char *key, char *err, size_t errlen);
/* The node's Import settings (rpcjson_import_config). 0 or -errno with a message in err. */
struct import_config;
int node_rpc_import_config(struct rpc *r, struct import_config *out, char *err, size_t errlen);

#endif

/* node_ipns.h - the IPNS namespace as a read-only tree of names (ipfsfs --ipns).
 *
 * The mount root's names are IPNS names: keys (k51..., bafz...), peer IDs (12D3..., Qm...)
 * and DNSLink domains. Each is resolved to /ipfs/CID[/path], and below it the tree is that CID's
 * content. The names are served through the node interface's MFS calls (mfs_stat, mfs_list:
 * "/NAME/rest"), so the filesystem treats them as names that may change; content calls are the
 * content node's. Every change is refused (EROFS).
 *
 * Resolution:
 *   - through the node (rpc set): name/resolve (recursive; DNSLink included). Kubo caches what
 *     it resolves for the record's TTL; an answer is kept here one second more.
 *   - through gateways (gw set, no rpc): the record (gw_ipns_record), verified, never with a
 *     lower sequence than one seen before; kept for its lifetime (ipns_lifetime_ns: TTL, EOL,
 *     cap_ms). Every spelling of a key is asked in base36 and checked against the record's key
 *     (inlined in the name for Ed25519, hashed for RSA). DNSLink names need the node.
 * valid_for tells what remains of a name's resolution (the kernel's entry and attribute
 * timeouts): through the node one second (name/resolve does not say the TTL), through gateways
 * the record's lifetime less the time since it was fetched.
 * A name that cannot be resolved is ENOENT ("could not resolve name"); within --timeout, or
 * ETIMEDOUT; a node that is down is EIO.
 * Listing the root shows the node's own keys (key/list), as Kubo's mount does; with no node,
 * the names resolved so far.
 */
#ifndef IPFSFS_NODE_IPNS_H
#define IPFSFS_NODE_IPNS_H

#include "node.h"

struct rpc;
struct gw;

struct node_ipns_config {
    struct node *content; /* CIDs: the node, or a store over gateways (owned from the call on) */
    struct rpc *rpc;      /* name/resolve and key/list, or NULL (owned from the call on) */
    struct gw *gw;        /* IPNS records through gateways, or NULL (not owned) */
    unsigned timeout_ms;
    unsigned cap_ms;      /* longest a resolution is kept (0: 60 s) */
};

/* 0 and *out, or -errno (then content and rpc are freed). */
int node_ipns_new(const struct node_ipns_config *cfg, struct node **out);

#endif

/* cluster.h - IPFS Cluster: the roots of the names pinned through a cluster peer's REST API, so
 * the cluster replicates them, and the pin status of what was pinned.
 *
 * ipfsfs keeps names in one Kubo's MFS (the proxy on port 9095 forwards the files API to the
 * peer's own Kubo; MFS is never replicated). What the cluster replicates is content, by CID.
 * After each push of the names, the sync engine pins here (POST /pins/CID with the replication
 * factors):
 * - the new root of the names (peers fetch only the blocks they lack). The root before is
 *   unpinned once the new one is pinned on at least the minimum number of peers (or, for a
 *   third root in a row, at once: the one in between still covers nearly everything);
 * - each name at the top of the names (a folder or file copied in), as a pin of its own, so
 *   `ipfs-cluster-ctl status CID` answers for what the user copied in; a top name whose content
 *   changed is pinned anew, and its old CID, like a removed name's,
 *   is unpinned. At most CLUSTER_MAX_TOP names get their own pins (past that, the root covers
 *   them).
 * A pin is unpinned only while it still carries this mount's pin name: content another mount
 * (another machine) pinned too stays pinned. What is pinned is remembered in a state file, so a
 * later mount retires this mount's old pins rather than leaving them pinned for ever.
 *
 * The proxy's own pin/add takes no replication factors, hence the REST API (default port 9094).
 */
#ifndef IPFSFS_CLUSTER_H
#define IPFSFS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "cid.h"

struct cluster;

struct cluster_config {
    const char *url;        /* the REST API, "http://127.0.0.1:9094" (user:password@ allowed) */
    int rmin, rmax;         /* replication factors; 0: the cluster's defaults; -1: every peer */
    unsigned timeout_ms;    /* bound of each request */
    const char *pin_name;   /* the name the pins get ("ipfsfs host:/mfs-root") */
    const char *state_path; /* file remembering the roots pinned (NULL: none) */
    /* The REST API's credentials, in the node API secret's forms ("basic:USER:PASS",
     * "bearer:TOKEN"; see rpc_auth_header), sent on every call; NULL: none. cluster_new
     * refuses them (-EPERM) over plain http to a host that is not loopback, unless
     * allow_plain_auth. */
    const char *auth;
    bool allow_plain_auth;
};

/* What the cluster says of one CID, over its peers. */
struct cluster_status {
    unsigned pinned, pinning, queued, failed; /* peers allocated to it, by state */
    unsigned peers;                           /* peers that answered */
    int rmin, rmax;                           /* the pin's factors (-1: every peer) */
    bool is_pin;                              /* the CID is a cluster pin at all */
    char error[200];                          /* one peer's error, if any failed */
};

int cluster_new(const struct cluster_config *cfg, struct cluster **out, char *err,
                size_t errlen);
void cluster_free(struct cluster *c);

/* Does the Kubo RPC API at base_url ("http://host:port") belong to a cluster peer's proxy? It
 * answers a request Kubo would refuse the same way (pin/update with no argument) with its own
 * Server header. 1 yes, 0 no, -errno when it could not be asked. */
int cluster_probe_proxy(const char *base_url, unsigned timeout_ms);

#define CLUSTER_MAX_TOP 1024

/* A name pinned on its own: a name at the top of the names ("tree"), or a folder deeper down
 * with replication factors of its own ("a/b"), and its content. */
struct cluster_name {
    const char *name;
    struct cid cid;
    int rmin, rmax; /* 0: the mount's factors */
};

/* Pin root as the names' root, and top[0..n) (sorted by name with strcmp) as names of their
 * own (nothing for what is pinned already). 0, or -errno with a reason in err (the cluster
 * refused: fewer peers than the minimum; not reachable); what failed is tried again at the
 * next call. */
int cluster_pin_names(struct cluster *c, const struct cid *root, const struct cluster_name *top,
                      size_t n, char *err, size_t errlen);

/* The pin that covers the name at path ("/a/b"): the deepest name pinned on its own that holds
 * it, else the root's. false when nothing is pinned yet. */
bool cluster_pin_for(struct cluster *c, const char *path, struct cid *out);

/* Housekeeping between pushes: unpin the root pinned before once the current one is pinned
 * widely enough. Cheap when nothing waits. */
void cluster_tick(struct cluster *c);

/* The status of cid (GET /pins/CID and its allocation). 0 or -errno with err. */
int cluster_status(struct cluster *c, const struct cid *cid, struct cluster_status *st,
                   char *err, size_t errlen);

/* Parse a status: alloc (GET /allocations/CID; NULL when it was 404: not a pin) and pins
 * (GET /pins/CID). 0 or -EPROTO. Pure. */
int cluster_status_parse(const char *alloc, size_t alloc_len, const char *pins, size_t pins_len,
                         struct cluster_status *st);

/* The root pinned last, if any. */
bool cluster_root(struct cluster *c, struct cid *out);
/* Whether the last pin asked for failed; if so, why (its error) in why. */
bool cluster_failing(struct cluster *c, char *why, size_t len);

/* Is st enough: pinned on at least the minimum number of peers (for "every peer", on every
 * allocated one)? */
bool cluster_satisfied(const struct cluster_status *st);

/* Wait until the root pinned last (or root, when given) is pinned on at least the minimum
 * number of peers, at most wait_ms. 0, -ETIMEDOUT, or -errno with err. */
int cluster_wait(struct cluster *c, const struct cid *root, unsigned wait_ms, char *err,
                 size_t errlen);

/* user.ipfs.pins text for st: "pinned 2/3 peers (min 2, max 3)" and the like. snprintf-like. */
int cluster_status_text(const struct cluster_status *st, char *buf, size_t len);

/* The cluster's REST API URL, without credentials (for messages). Immutable. */
const char *cluster_display(const struct cluster *c);

/* Counters for user.ipfsfs.stats. snprintf-like. */
int cluster_stats(struct cluster *c, char *buf, size_t len);

/* src as one line in dst (len bytes with its NUL): control characters (line breaks, tabs)
 * become spaces, and what does not fit is cut. */
void cluster_one_line(char *dst, size_t len, const char *src);

/* "MIN" or "MIN:MAX" (each a count >= 1, or -1 for every peer; MAX >= MIN) into rmin, rmax.
 * 0 or -EINVAL. */
int cluster_parse_replication(const char *s, int *rmin, int *rmax);

#endif

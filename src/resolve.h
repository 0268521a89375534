/* resolve.h - names to objects: root entries (CIDs) and names inside CID directories, through
 * the directory cache. The FUSE handlers call these and only reply. */
#ifndef IPFSFS_RESOLVE_H
#define IPFSFS_RESOLVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"
#include "dircache.h"
#include "inode.h"

/* Root CIDs whose lookup just failed with ETIMEDOUT after waiting at least half of --timeout
 * are remembered this long, in this many slots: the kernel runs the lookups of one name one
 * after the other, so six programs (or one, as file(1) looks a name up three times) asking for
 * content nobody has would otherwise wait one --timeout each in turn. A failure that came fast
 * (an offline node, a node taken as hung) is not: asking again costs as little, and the node
 * may be back. A later lookup asks the node again. */
#define RESOLVE_MISS_KEEP_MS 3000u
#define RESOLVE_MISS_SLOTS 16u

struct resolver {
    struct node *node;
    struct dircache *dc;
    struct inode_table *inodes;
    unsigned timeout_ms; /* --timeout */
    /* lock guards miss and miss_next. */
    pthread_mutex_t lock;
    struct {
        struct cid cid;
        int64_t until_ns; /* CLOCK_MONOTONIC; 0: free */
    } miss[RESOLVE_MISS_SLOTS];
    unsigned miss_next;
};

void resolver_init(struct resolver *r, struct node *node, struct dircache *dc,
                   struct inode_table *inodes, unsigned timeout_ms);
void resolver_destroy(struct resolver *r);

/* Look up name at the mount root. A name that is not a CID is -ENOENT at once. On success the
 * inode carries one more lookup. */
int resolve_root(struct resolver *r, const char *name, struct inode **out);

/* Look up name in directory dir. -ENOENT if absent (cacheable: dir is immutable). */
int resolve_child(struct resolver *r, const struct inode *dir, const char *name,
                  struct inode **out);

#endif

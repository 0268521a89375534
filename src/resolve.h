/* resolve.h - names to objects: root entries (CIDs) and names inside CID directories, through
 * the directory cache. The FUSE handlers call these and only reply. */
#ifndef IPFSFS_RESOLVE_H
#define IPFSFS_RESOLVE_H

#include <stddef.h>

#include "dircache.h"
#include "inode.h"

struct resolver {
    struct node *node;
    struct dircache *dc;
    struct inode_table *inodes;
};

/* Look up name at the mount root. A name that is not a CID is -ENOENT at once. On success the
 * inode carries one more lookup. */
int resolve_root(struct resolver *r, const char *name, struct inode **out);

/* Look up name in directory dir. -ENOENT if absent (cacheable: dir is immutable). */
int resolve_child(struct resolver *r, const struct inode *dir, const char *name,
                  struct inode **out);

#endif

/* inode.h - the inode table: FUSE node ids for the objects the kernel knows about.
 *
 * Objects under a CID are immutable, so an inode is keyed by a stable 64-bit key (xxHash3 of
 * the CID for root entries, of parent CID + name for children); a repeated lookup finds the same
 * inode, and st_ino is the key, stable across lookups and remounts. Lookup counts follow the
 * kernel's (lookup/forget); the inode is freed when its count drops to zero.
 */
#ifndef IPFSFS_INODE_H
#define IPFSFS_INODE_H

#include <stdbool.h>
#include <stdint.h>

#include "node.h"

struct inode {
    uint64_t key; /* stable, also st_ino */
    struct cid cid;
    enum node_kind kind; /* never NODE_UNKNOWN */
    uint64_t size;
    uint32_t mode; /* stored UnixFS mode bits, 0 = none */
    int64_t mtime;
    bool has_mtime;
    char *target; /* symlink target */
    /* Owned by the table (under its lock): */
    uint64_t nlookup;
    struct inode *hnext;
};

struct inode_table;

int inode_table_new(struct inode_table **out);
void inode_table_free(struct inode_table *t);

uint64_t inode_key_root(const struct cid *c);
uint64_t inode_key_child(const struct cid *parent, const char *name, size_t len);

/* Find the inode with this key and CID and add one lookup; NULL if none. */
struct inode *inode_find_ref(struct inode_table *t, uint64_t key, const struct cid *c);

/* Insert a new inode with the given fields (st is consumed: its target moves in) and one lookup,
 * or, if another thread inserted the same key first, add a lookup to that one. NULL on ENOMEM. */
struct inode *inode_insert_ref(struct inode_table *t, uint64_t key, const struct cid *c,
                               struct node_stat *st);

/* Drop n lookups; frees the inode at zero. */
void inode_forget(struct inode_table *t, struct inode *ino, uint64_t n);

uint64_t inode_count(struct inode_table *t);

#endif

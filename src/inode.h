/* inode.h - the inode table: FUSE node ids for the objects the kernel knows about.
 *
 * Objects under a CID are immutable, so an inode is keyed by a stable 64-bit key of its path
 * (xxHash3 of the name as spelled for root entries, of the parent's key + name for children)
 * and its CID; a repeated lookup finds the same inode, and st_ino is the key, stable across
 * lookups and remounts. The key is the path's, not the content's: two directories of the same
 * CID at two paths (a tree that holds a copy of a folder, two spellings of one CID) are two
 * inodes, since the kernel keeps one path per directory inode (getcwd, ".."). Lookup counts follow the
 * kernel's (lookup/forget); the inode is freed when its count drops to zero.
 */
#ifndef IPFSFS_INODE_H
#define IPFSFS_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

struct whandle;

struct inode {
    uint64_t key; /* stable, also st_ino; for names (MFS) the hash table key at creation */
    struct cid cid;
    enum node_kind kind; /* never NODE_UNKNOWN */
    uint64_t size;
    uint64_t cid_size; /* names: bytes under cid (size runs ahead of it while written) */
    uint32_t mode; /* stored UnixFS mode bits, 0 = none */
    int64_t mtime;
    uint32_t mtime_nsec;
    bool has_mtime;
    /* Names: when this mount last saw their content change (CLOCK_REALTIME ns; 0: not since
     * the mount began), shown as the time of names that store none (fs.c's fill_attr). */
    int64_t changed_ns;
    /* Directories: their next new CID is this mount's own doing (a name changed in them, whose
     * time inode_mfs_touch noted when it changed, or content below them changed, which is no
     * change of their names): it does not move the time they show (under the table's lock). */
    bool cid_ours;
    uint64_t linked_seq; /* names: the latest link by this mount noted (inode_mfs_set_linked) */
    char *target; /* symlink target; a name's may change (read it with inode_target_dup) */
    /* Names in the mutable root (MFS): their place, kept up to date by renames. */
    bool mfs;
    uint64_t lkey;         /* hash table key now: of (parent, name) */
    uint64_t was_key;      /* directories: the key before a rename, its children's times kept
                            * under keys made from it (0: none; inode.c's change times) */
    struct inode *parent;  /* holds one lookup on the parent; NULL for the root */
    char *name;
    int nwriters;          /* open write handles (fs.c, under its wlock) */
    /* CLOCK_MONOTONIC ns until which the kernel holds a valid entry for this name (the last
     * entry fs.c replied for it, plus its timeout); read and written with __atomic builtins. */
    uint64_t entry_until_ns;
    struct whandle *writers; /* their spools, newest first (fs.c, under its wlock) */
    /* Owned by the table (under its lock): */
    uint64_t nlookup;
    struct inode *hnext;
    /* Immutable inodes the kernel forgot stay findable for a while (LRU), so a later lookup
     * of the same CID does not need the node again. */
    struct inode *lru_prev, *lru_next;
    bool in_lru;
    /* Names whose key is no longer their lkey (renamed, or detached while open): kept in a
     * set so a new name is never given a key (st_ino) still in use. */
    struct inode *dprev, *dnext;
    bool displaced;
};

/* Attributes of a name: they change, so they are read and written under the table lock. */
struct mfs_attr {
    struct cid cid;
    enum node_kind kind;
    uint64_t size;     /* as shown: an open writer's size while one writes */
    uint64_t cid_size; /* of the content under cid: read cid only within this */
    uint32_t mode;
    int64_t mtime;
    uint32_t mtime_nsec;
    bool has_mtime;
    int64_t changed_ns; /* read by inode_mfs_get only: the setters keep the inode's own */
};

struct inode_table;

int inode_table_new(struct inode_table **out);
void inode_table_free(struct inode_table *t);

uint64_t inode_key_root(const char *name, size_t len);
uint64_t inode_key_child(uint64_t parent_key, const char *name, size_t len);

/* Find the inode with this key and CID and add one lookup; NULL if none. */
struct inode *inode_find_ref(struct inode_table *t, uint64_t key, const struct cid *c);

/* Insert a new inode with the given fields (st is consumed: its target moves in) and one lookup,
 * or, if another thread inserted the same key first, add a lookup to that one. NULL on ENOMEM. */
struct inode *inode_insert_ref(struct inode_table *t, uint64_t key, const struct cid *c,
                               struct node_stat *st);

/* Drop n lookups; frees the inode at zero. */
void inode_forget(struct inode_table *t, struct inode *ino, uint64_t n);

uint64_t inode_count(struct inode_table *t);
/* The longest hash chain (for tests: hostile keys must not pile up in one bucket). */
size_t inode_longest_chain(struct inode_table *t);

/* The st_ino a name under parent gets (also the readdir d_ino). */
uint64_t inode_key_mfs(const struct inode *parent, const char *name);

/* Names (MFS). The root inode is the table's; its id is FUSE_ROOT_ID. */
struct inode *inode_root(struct inode_table *t);
/* Find the name under parent (adds a lookup) or NULL. */
struct inode *inode_mfs_find_ref(struct inode_table *t, struct inode *parent, const char *name);
/* Insert (or find) the name under parent with these attributes; adds a lookup. */
struct inode *inode_mfs_insert_ref(struct inode_table *t, struct inode *parent, const char *name,
                                   const struct mfs_attr *a, const char *target);
void inode_mfs_get(struct inode_table *t, const struct inode *ino, struct mfs_attr *a);
/* Sets the attributes; a new CID or size counts as a change of content (changed_ns: now). */
void inode_mfs_set(struct inode_table *t, struct inode *ino, const struct mfs_attr *a);
/* inode_mfs_set after this mount linked new content (seq: writer_flush's), unless a later
 * link (a higher seq) was noted already: two flushes of one spool may report out of order. */
void inode_mfs_set_linked(struct inode_table *t, struct inode *ino, const struct mfs_attr *a,
                          uint64_t seq);
/* inode_mfs_set, only while the inode's CID, shown size, mode and time are still expect's
 * (nothing changed them since expect was read). Whether it was set. */
bool inode_mfs_set_if(struct inode_table *t, struct inode *ino, const struct mfs_attr *expect,
                      const struct mfs_attr *a);
/* A name made by this mount: its content changed now. The new CIDs that follow for the
 * directories above it are this mount's (cid_ours). */
void inode_mfs_touch(struct inode_table *t, struct inode *ino);
/* This mount changed the names of directory dir: they changed now. Its new CID, and those
 * of the directories above, are this mount's. */
void inode_mfs_names_changed(struct inode_table *t, struct inode *dir);
/* This mount is about to give ino new content or metadata (chmod, touch, truncate by path):
 * the new CIDs of ino, if a directory, and of the directories above are its own, no change
 * of their names. */
void inode_mfs_ours(struct inode_table *t, struct inode *ino);
/* An open writer wrote: the size shown is size now, the content changed now (and a stored
 * time moves with it); the CID and the rest stay (the directories above: cid_ours). */
void inode_mfs_written(struct inode_table *t, struct inode *ino, uint64_t size);
/* Now, as a stored time: to the nanosecond (UnixFS 1.5 keeps the fraction), so an edit right
 * after a build is newer than what it built. */
void inode_time_now(int64_t *sec, uint32_t *nsec);
/* No writer is left: the size shown is the size of the content under the CID. */
void inode_mfs_settle(struct inode_table *t, struct inode *ino);
/* When names' content last changed, kept across mounts in a file (the store's): load before
 * the first lookup, save when no request runs any more (the end of the mount). A name whose
 * CID is still the one it had shows that time again, not the new mount's start. Load: 0 (also
 * when there is no file yet), or -errno / -EINVAL (not such a file; nothing taken). Save:
 * 0 or -errno; the file is replaced whole (written beside it, then renamed). */
int inode_times_load(struct inode_table *t, const char *path);
int inode_times_save(struct inode_table *t, const char *path);
/* Set back the time the content was last seen to change (a chmod gave the name a new CID,
 * and the bytes are the same). */
void inode_mfs_keep_changed(struct inode_table *t, struct inode *ino, int64_t changed_ns);
/* Only the mode and the time of a's (the rest as it is). */
void inode_mfs_set_meta(struct inode_table *t, struct inode *ino, const struct mfs_attr *a);
/* The CID, mode and time of a's, only while the inode's CID, mode and time are still
 * expect's (nothing linked new content, and no mode or time was noted, meanwhile); the sizes
 * stay. Whether it was set. */
bool inode_mfs_set_cid_if(struct inode_table *t, struct inode *ino,
                          const struct mfs_attr *expect, const struct mfs_attr *a);
/* Replace a name's symlink target (another client re-pointed it). 0 or -ENOMEM. */
int inode_mfs_set_target(struct inode_table *t, struct inode *ino, const char *target);
/* A copy of the symlink target (malloc'd), or NULL (none, or ENOMEM). */
char *inode_target_dup(struct inode_table *t, const struct inode *ino);
/* The st_ino of ino's parent directory (readdir's ".."): 1 for the mount root, and for what
 * has no parent (the root itself). */
uint64_t inode_parent_ino(struct inode_table *t, const struct inode *ino);
/* The st_ino of the name under parent: the inode's if the table has one (its key stays what it
 * was at creation across renames), else what a lookup would give it. */
uint64_t inode_mfs_ino(struct inode_table *t, const struct inode *parent, const char *name);
/* Absolute MFS path of ino under root_path into buf. Returns 0, -ENAMETOOLONG, or -ENOENT
 * when ino (or a directory above it) is detached: its name was removed or replaced, and the
 * path it had names something else now. With detached_ok, the path it had all the same (the
 * IPNS namespace: a republished name's old inodes read what the name holds now). */
int inode_mfs_path(struct inode_table *t, const struct inode *ino, const char *root_path,
                   bool detached_ok, char *buf, size_t len);
/* Move ino to (parent, name) after a rename. */
int inode_mfs_move(struct inode_table *t, struct inode *ino, struct inode *parent,
                   const char *name);
/* Forget the name under parent (after unlink/rmdir or a rename over it): later lookups miss. */
void inode_mfs_detach(struct inode_table *t, struct inode *parent, const char *name);
/* The same, only if the name still leads to only (a lookup that found a stale inode must not
 * detach the fresh one a concurrent lookup of the same name put there meanwhile). */
void inode_mfs_detach_if(struct inode_table *t, struct inode *parent, const char *name,
                         const struct inode *only);

#endif

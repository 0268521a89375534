/* dircache.h - listings of immutable directories (by CID), in memory.
 *
 * A listing is fetched once (concurrent askers wait for the one fetch), then kept as a sorted
 * array of entries plus a hash index by name, under a byte budget with LRU eviction. Callers get
 * a counted reference that stays valid after eviction until they drop it.
 */
#ifndef IPFSFS_DIRCACHE_H
#define IPFSFS_DIRCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"

struct dircache;

struct dirent_rec {
    char *name; /* NUL-terminated, validated */
    struct cid cid;
    enum node_kind kind;
    uint64_t size;
    uint32_t mode;
    int64_t mtime; /* if has_mtime */
    uint32_t mtime_nsec;
    bool has_mtime;
};

/* What a listing tells of an entry, as a stat would give it (no symlink target). */
static inline struct node_stat dirent_stat(const struct dirent_rec *e)
{
    return (struct node_stat){.kind = e->kind,
                              .size = e->size,
                              .mode = e->mode,
                              .mtime = e->mtime,
                              .mtime_nsec = e->mtime_nsec,
                              .has_mtime = e->has_mtime};
}

/* Immutable once published. */
struct dirlist {
    struct dirent_rec *entries; /* sorted by name (strcmp) */
    size_t n;
    /* internal */
    uint32_t *index; /* open-addressing table of entry indices + 1 (0 = empty) */
    size_t index_cap;
    size_t bytes;
};

int dircache_new(struct node *node, size_t budget, struct dircache **out);
void dircache_free(struct dircache *dc);

/* Get the listing of directory c (fetching it if needed). Returns 0 with *out referenced, or
 * -errno. Release with dircache_put. */
int dircache_get(struct dircache *dc, const struct cid *c, const struct dirlist **out);
void dircache_put(struct dircache *dc, const struct dirlist *l);

/* dircache_get for a listing the cache holds or is loading (then waited for), without
 * starting one: -ENOENT when it has none. */
int dircache_peek(struct dircache *dc, const struct cid *c, const struct dirlist **out);

/* Find a name in a listing; NULL if absent. */
const struct dirent_rec *dirlist_find(const struct dirlist *l, const char *name, size_t len);

int dircache_stats(struct dircache *dc, char *buf, size_t len);

/* A growing array of entries, filled by a listing callback (see node_entry_fn); start it
 * zeroed. Hand v and n to dirlist_build, or release them with dirent_vec_clear. */
struct dirent_vec {
    struct dirent_rec *v;
    size_t n, cap;
};

/* Append a copy of e (the name is duplicated). 0, -ENOMEM, or -EFBIG past the number of entries
 * a listing can index. */
int dirent_vec_push(struct dirent_vec *vec, const struct node_entry *e);
/* Free the names and the array; vec is then empty again. */
void dirent_vec_clear(struct dirent_vec *vec);

/* Build a listing from entries (takes ownership of the array and names, also on failure). */
int dirlist_build(struct dirent_rec *entries, size_t n, struct dirlist **out);
void dirlist_free(struct dirlist *l);

#endif

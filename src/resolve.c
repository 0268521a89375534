/* resolve.c - see resolve.h. */
#include "config.h"

#include "resolve.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <string.h>

void resolver_init(struct resolver *r, struct node *node, struct dircache *dc,
                   struct inode_table *inodes, unsigned timeout_ms)
{
    memset(r, 0, sizeof *r);
    r->node = node;
    r->dc = dc;
    r->inodes = inodes;
    r->timeout_ms = timeout_ms;
    pthread_mutex_init(&r->lock, NULL);
}

void resolver_destroy(struct resolver *r)
{
    pthread_mutex_destroy(&r->lock);
}

/* Whether c's lookup failed with ETIMEDOUT moments ago (see RESOLVE_MISS_KEEP_MS). */
static bool missed_lately(struct resolver *r, const struct cid *c)
{
    int64_t now = (int64_t)clock_mono_ns();
    bool hit = false;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < RESOLVE_MISS_SLOTS && !hit; i++)
        hit = r->miss[i].until_ns > now && cid_equal(&r->miss[i].cid, c);
    pthread_mutex_unlock(&r->lock);
    return hit;
}

static void note_miss(struct resolver *r, const struct cid *c)
{
    int64_t until = (int64_t)clock_mono_ns() + (int64_t)RESOLVE_MISS_KEEP_MS * 1000000;
    pthread_mutex_lock(&r->lock);
    unsigned slot = r->miss_next;
    for (unsigned i = 0; i < RESOLVE_MISS_SLOTS; i++)
        if (cid_equal(&r->miss[i].cid, c)) {
            slot = i; /* renewed in place */
            break;
        }
    if (slot == r->miss_next)
        r->miss_next = (r->miss_next + 1) % RESOLVE_MISS_SLOTS;
    r->miss[slot].cid = *c;
    r->miss[slot].until_ns = until;
    pthread_mutex_unlock(&r->lock);
}

int resolve_root(struct resolver *r, const char *name, struct inode **out)
{
    struct cid c;
    size_t len = strlen(name);
    /* Neither a name nor a CID: answer without touching the network. */
    if (cid_parse(name, len, &c) < 0)
        return -ENOENT;
    uint64_t key = inode_key_root(&c);
    struct inode *ino = inode_find_ref(r->inodes, key, &c);
    if (ino) {
        *out = ino;
        return 0;
    }
    if (missed_lately(r, &c))
        return -ETIMEDOUT;
    struct node_stat st;
    uint64_t t0 = clock_mono_ns();
    int rc = node_stat(r->node, &c, &st);
    if (rc == -ETIMEDOUT && (clock_mono_ns() - t0) / 1000000 >= r->timeout_ms / 2)
        note_miss(r, &c);
    if (rc < 0)
        return rc;
    ino = inode_insert_ref(r->inodes, key, &c, &st);
    node_stat_clear(&st);
    if (!ino)
        return -ENOMEM;
    *out = ino;
    return 0;
}

int resolve_child(struct resolver *r, const struct inode *dir, const char *name,
                  struct inode **out)
{
    size_t len = strlen(name);
    if (dir->kind != NODE_DIR)
        return -ENOTDIR;
    if (!node_name_ok(name, len))
        return -ENOENT;
    uint64_t key = inode_key_child(&dir->cid, name, len);
    const struct dirlist *l;
    int rc = dircache_get(r->dc, &dir->cid, &l);
    if (rc < 0)
        return rc;
    const struct dirent_rec *e = dirlist_find(l, name, len);
    if (!e) {
        dircache_put(r->dc, l);
        return -ENOENT;
    }
    struct cid c = e->cid;
    struct node_stat st = {.kind = e->kind, .size = e->size, .mode = e->mode};
    dircache_put(r->dc, l);

    struct inode *ino = inode_find_ref(r->inodes, key, &c);
    if (ino) {
        *out = ino;
        return 0;
    }
    /* The listing tells kind and size; what it cannot tell (symlink targets, kinds the node
     * did not resolve) comes from the object itself. */
    if (st.kind == NODE_UNKNOWN || st.kind == NODE_SYMLINK) {
        rc = node_stat(r->node, &c, &st);
        if (rc < 0)
            return rc;
    }
    ino = inode_insert_ref(r->inodes, key, &c, &st);
    node_stat_clear(&st);
    if (!ino)
        return -ENOMEM;
    *out = ino;
    return 0;
}

/* resolve.c - see resolve.h. */
#include "config.h"

#include "resolve.h"

#include "log.h"

#include <errno.h>
#include <string.h>

int resolve_root(struct resolver *r, const char *name, struct inode **out)
{
    struct cid c;
    size_t len = strlen(name);
    /* Neither a name nor a CID: answer without touching the network. */
    if (cid_parse(name, len, &c) < 0)
        return -ENOENT;
    uint64_t key = inode_key_root(name, len);
    struct inode *ino = inode_find_ref(r->inodes, key, &c);
    if (ino) {
        *out = ino;
        return 0;
    }
    struct node_stat st;
    int rc = node_stat(r->node, &c, &st);
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
    uint64_t key = inode_key_child(dir->key, name, len);
    const struct dirlist *l;
    struct cid c;
    struct node_stat st = {.kind = NODE_UNKNOWN};
    /* A listing at hand tells; else a backend that finds one name without listing the
     * directory (the store: through gateways every entry's block is a round trip) is asked
     * for that name only, and the object itself for what it is. */
    int rc = r->node->ops->lookup ? dircache_peek(r->dc, &dir->cid, &l) : -ENOENT;
    if (rc == -ENOENT && r->node->ops->lookup) {
        rc = r->node->ops->lookup(r->node, &dir->cid, name, len, &c);
        if (rc == 0)
            goto found;
        if (rc != -EAGAIN)
            return rc;
    }
    if (rc < 0 && (rc = dircache_get(r->dc, &dir->cid, &l)) < 0)
        return rc;
    const struct dirent_rec *e = dirlist_find(l, name, len);
    if (!e) {
        dircache_put(r->dc, l);
        return -ENOENT;
    }
    c = e->cid;
    st = dirent_stat(e);
    dircache_put(r->dc, l);
found:;

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

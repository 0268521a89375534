/* inode.c - see inode.h. */
#include "config.h"

#include "inode.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct inode_table {
    /* lock protects buckets, every inode's nlookup and hnext, and count. The other inode
     * fields never change after insertion, so holders of a lookup read them without it. */
    pthread_mutex_t lock;
    struct inode **buckets;
    size_t nbuckets; /* power of two */
    uint64_t count;
};

/* Keys 0 and 1 are never handed out: 1 is FUSE's root id and 0 means "none". */
static uint64_t fix_key(uint64_t k)
{
    return k < 2 ? k + 2 : k;
}

uint64_t inode_key_root(const struct cid *c)
{
    return fix_key(cid_hash(c));
}

uint64_t inode_key_child(const struct cid *parent, const char *name, size_t len)
{
    /* Names are at most 255 bytes (node_name_ok): hash parent hash + name in one go. */
    unsigned char buf[8 + 256];
    uint64_t ph = cid_hash(parent);
    if (len > 256)
        len = 256;
    memcpy(buf, &ph, 8);
    memcpy(buf + 8, name, len);
    return fix_key(XXH3_64bits_withSeed(buf, 8 + len, 0x69706673)); /* "ipfs" */
}

int inode_table_new(struct inode_table **out)
{
    struct inode_table *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->nbuckets = 1 << 16;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void inode_table_free(struct inode_table *t)
{
    if (!t)
        return;
    for (size_t b = 0; b < t->nbuckets; b++) {
        struct inode *i = t->buckets[b];
        while (i) {
            struct inode *next = i->hnext;
            free(i->target);
            free(i);
            i = next;
        }
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct inode *find_locked(struct inode_table *t, uint64_t key, const struct cid *c)
{
    for (struct inode *i = t->buckets[key & (t->nbuckets - 1)]; i; i = i->hnext)
        if (i->key == key && cid_equal(&i->cid, c))
            return i;
    return NULL;
}

struct inode *inode_find_ref(struct inode_table *t, uint64_t key, const struct cid *c)
{
    pthread_mutex_lock(&t->lock);
    struct inode *i = find_locked(t, key, c);
    if (i)
        i->nlookup++;
    pthread_mutex_unlock(&t->lock);
    return i;
}

struct inode *inode_insert_ref(struct inode_table *t, uint64_t key, const struct cid *c,
                               struct node_stat *st)
{
    struct inode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->key = key;
    n->cid = *c;
    n->kind = st->kind;
    n->size = st->size;
    n->mode = st->mode;
    n->mtime = st->mtime;
    n->has_mtime = st->has_mtime;
    n->target = st->target;
    st->target = NULL;
    pthread_mutex_lock(&t->lock);
    struct inode *old = find_locked(t, key, c);
    if (old) {
        old->nlookup++;
        pthread_mutex_unlock(&t->lock);
        free(n->target);
        free(n);
        return old;
    }
    n->nlookup = 1;
    size_t b = key & (t->nbuckets - 1);
    n->hnext = t->buckets[b];
    t->buckets[b] = n;
    t->count++;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void inode_forget(struct inode_table *t, struct inode *ino, uint64_t n)
{
    pthread_mutex_lock(&t->lock);
    if (ino->nlookup > n) {
        ino->nlookup -= n;
        pthread_mutex_unlock(&t->lock);
        return;
    }
    struct inode **pp = &t->buckets[ino->key & (t->nbuckets - 1)];
    while (*pp && *pp != ino)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = ino->hnext;
    t->count--;
    pthread_mutex_unlock(&t->lock);
    free(ino->target);
    free(ino);
}

uint64_t inode_count(struct inode_table *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* inode.c - see inode.h. */
#include "config.h"

#include "inode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define LRU_MAX 16384
#define DISPLACED_BUCKETS 4096

struct inode_table {
    /* lock protects buckets, nbuckets, every inode's nlookup and hnext, and count; and the
     * fields of names that change (cid, size, cid_size, mode, mtime, target, and lkey, parent,
     * name on a rename). Other fields never change after insertion, so holders of a lookup
     * read them without it. */
    pthread_mutex_t lock;
    struct inode **buckets;
    size_t nbuckets; /* power of two; doubles when count passes 2 x nbuckets (up to a cap) */
    uint64_t seed;   /* random: which bucket a key lands in (set once, before any sharing) */
    uint64_t count;
    /* Forgotten immutable inodes, most recent first, at most LRU_MAX of them. */
    struct inode *lru_head, *lru_tail;
    size_t nlru;
    struct inode *displaced[DISPLACED_BUCKETS]; /* by seeded hash of key */
    /* When forgotten names last changed (their changed_ns), so that a name the kernel forgot
     * (memory pressure, drop_caches) and looks up again shows the same time, not the mount's
     * start (make then missed an edit, rsync skipped it). By the name's lkey, and only while it
     * has the same content (a hash of its CID). Open addressing (SEEN_PROBE slots from a
     * seeded hash of the lkey), at most half full while it may grow (seen_cap up to
     * SEEN_MAX); past that a record with no free slot near its own replaces the one there.
     * A directory renamed leaves an alias record (changed_ns SEEN_ALIAS, under alias_key of
     * its new lkey, cidh: the key its children's times were kept under), see inode_mfs_move. */
    struct seen_time {
        uint64_t lkey; /* 0: free */
        uint64_t cidh;
        int64_t changed_ns;
    } *seen;
    size_t seen_cap, seen_n;
    struct inode root; /* the mount root: an MFS directory, never freed */
};

#define SEEN_MIN (1u << 12)
#define SEEN_MAX (1u << 19) /* 12 MiB: the times of 262,144 names */
#define SEEN_PROBE 32u
#define SEEN_ALIAS (-1)

#define NBUCKETS_MIN (1u << 16)
#define NBUCKETS_MAX (1u << 22)

/* Keys are stable hashes (they are st_ino, the same on every mount), so a hostile directory can
 * pick names whose keys share their low bits. The bucket is a seeded hash of the key instead:
 * without the seed, nobody can aim names at one chain. */
static size_t bucket_of(const struct inode_table *t, uint64_t key)
{
    return (size_t)XXH3_64bits_withSeed(&key, sizeof key, t->seed) & (t->nbuckets - 1);
}

static struct inode **dbucket(struct inode_table *t, uint64_t key)
{
    uint64_t h = XXH3_64bits_withSeed(&key, sizeof key, t->seed ^ 0x5a5a5a5a5a5a5a5aull);
    return &t->displaced[h & (DISPLACED_BUCKETS - 1)];
}

/* Keep ino in the displaced set exactly when it is a name whose key is not its lkey. */
static void displaced_update_locked(struct inode_table *t, struct inode *ino)
{
    bool want = ino->mfs && ino->key != ino->lkey;
    if (want == ino->displaced)
        return;
    struct inode **head = dbucket(t, ino->key);
    if (want) {
        ino->dprev = NULL;
        ino->dnext = *head;
        if (*head)
            (*head)->dprev = ino;
        *head = ino;
    } else {
        if (ino->dprev)
            ino->dprev->dnext = ino->dnext;
        else
            *head = ino->dnext;
        if (ino->dnext)
            ino->dnext->dprev = ino->dprev;
        ino->dprev = ino->dnext = NULL;
    }
    ino->displaced = want;
}

static bool key_taken_locked(struct inode_table *t, uint64_t key);
static uint64_t fix_key(uint64_t k);

/* The key (st_ino) a new name with this lkey gets: its lkey, unless an inode still uses that
 * (a name renamed away or unlinked while open keeps its st_ino); then a derived one. */
static uint64_t fresh_key_locked(struct inode_table *t, uint64_t lkey)
{
    uint64_t k = lkey;
    for (uint64_t salt = 1; key_taken_locked(t, k); salt++)
        k = fix_key(XXH3_64bits_withSeed(&lkey, sizeof lkey, salt));
    return k;
}

/* The key an inode is hashed under: its lkey for names (0 = detached, in no bucket). */
static uint64_t hash_key(const struct inode *i)
{
    return i->mfs ? i->lkey : i->key;
}

static bool key_taken_locked(struct inode_table *t, uint64_t key)
{
    for (const struct inode *i = *dbucket(t, key); i; i = i->dnext)
        if (i->key == key)
            return true;
    for (const struct inode *i = t->buckets[bucket_of(t, key)]; i; i = i->hnext)
        if (i->key == key)
            return true;
    return false;
}

/* Keep chains short as the table grows: double the buckets past 2 inodes per bucket. Lock
 * held. On ENOMEM the table keeps its size (longer chains, still correct). */
static void grow_locked(struct inode_table *t)
{
    if (t->count <= 2 * (uint64_t)t->nbuckets || t->nbuckets >= NBUCKETS_MAX)
        return;
    size_t old_n = t->nbuckets;
    struct inode **old = t->buckets;
    struct inode **nb = calloc(old_n * 2, sizeof *nb);
    if (!nb)
        return;
    t->buckets = nb;
    t->nbuckets = old_n * 2;
    for (size_t b = 0; b < old_n; b++) {
        struct inode *i = old[b];
        while (i) {
            struct inode *next = i->hnext;
            size_t nbk = bucket_of(t, hash_key(i));
            i->hnext = nb[nbk];
            nb[nbk] = i;
            i = next;
        }
    }
    free(old);
}

static uint64_t random_seed(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s)
        return s;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return XXH3_64bits(&ts, sizeof ts) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&s;
}

static void lru_remove(struct inode_table *t, struct inode *i)
{
    if (!i->in_lru)
        return;
    if (i->lru_prev)
        i->lru_prev->lru_next = i->lru_next;
    else
        t->lru_head = i->lru_next;
    if (i->lru_next)
        i->lru_next->lru_prev = i->lru_prev;
    else
        t->lru_tail = i->lru_prev;
    i->lru_prev = i->lru_next = NULL;
    i->in_lru = false;
    t->nlru--;
}

/* Keys 0 and 1 are never handed out: 1 is FUSE's root id and 0 means "none". */
static uint64_t fix_key(uint64_t k)
{
    return k < 2 ? k + 2 : k;
}

uint64_t inode_key_root(const char *name, size_t len)
{
    return fix_key(XXH3_64bits_withSeed(name, len, 0x726f6f74)); /* "root" */
}

uint64_t inode_key_child(uint64_t parent_key, const char *name, size_t len)
{
    /* Names are at most 255 bytes (node_name_ok): hash parent key + name in one go. */
    unsigned char buf[8 + 256];
    if (len > 256)
        len = 256;
    memcpy(buf, &parent_key, 8);
    memcpy(buf + 8, name, len);
    return fix_key(XXH3_64bits_withSeed(buf, 8 + len, 0x69706673)); /* "ipfs" */
}

int inode_table_new(struct inode_table **out)
{
    struct inode_table *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->nbuckets = NBUCKETS_MIN;
    t->seed = random_seed();
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    t->seen_cap = SEEN_MIN;
    t->seen = calloc(t->seen_cap, sizeof *t->seen);
    if (!t->buckets || !t->seen) {
        free(t->buckets);
        free(t->seen);
        free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->root.key = 1;
    t->root.kind = NODE_DIR;
    t->root.mfs = true;
    t->root.nlookup = 1;
    *out = t;
    return 0;
}

void inode_table_free(struct inode_table *t)
{
    if (!t)
        return;
    for (size_t b = 0; b < DISPLACED_BUCKETS; b++) {
        struct inode *i = t->displaced[b];
        while (i) { /* detached names are in no bucket: free them here (first: the
                     * others in this set go with the buckets) */
            struct inode *next = i->dnext;
            if (i->lkey == 0) {
                free(i->target);
                free(i->name);
                free(i);
            }
            i = next;
        }
    }
    for (size_t b = 0; b < t->nbuckets; b++) {
        struct inode *i = t->buckets[b];
        while (i) {
            struct inode *next = i->hnext;
            free(i->target);
            free(i->name);
            free(i);
            i = next;
        }
    }
    free(t->buckets);
    free(t->seen);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static size_t seen_home(const struct inode_table *t, uint64_t lkey)
{
    return (size_t)XXH3_64bits_withSeed(&lkey, sizeof lkey, t->seed) & (t->seen_cap - 1);
}

/* The record of lkey, or NULL. */
static const struct seen_time *seen_find_locked(const struct inode_table *t, uint64_t lkey)
{
    size_t h = seen_home(t, lkey);
    for (size_t i = 0; i < SEEN_PROBE; i++) {
        const struct seen_time *s = &t->seen[(h + i) & (t->seen_cap - 1)];
        if (s->lkey == lkey)
            return s;
        if (s->lkey == 0)
            return NULL;
    }
    return NULL;
}

static void seen_put_locked(struct inode_table *t, const struct seen_time *rec);

/* Twice the slots, the records placed again (left as it is when memory is short). */
static void seen_grow_locked(struct inode_table *t)
{
    size_t oldcap = t->seen_cap;
    struct seen_time *old = t->seen, *n = calloc(2 * oldcap, sizeof *n);
    if (!n)
        return;
    t->seen = n;
    t->seen_cap = 2 * oldcap;
    t->seen_n = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].lkey)
            seen_put_locked(t, &old[i]);
    free(old);
}

static void seen_put_locked(struct inode_table *t, const struct seen_time *rec)
{
    if ((t->seen_n + 1) * 2 > t->seen_cap && t->seen_cap < SEEN_MAX)
        seen_grow_locked(t);
    for (;;) {
        size_t h = seen_home(t, rec->lkey);
        for (size_t i = 0; i < SEEN_PROBE; i++) {
            struct seen_time *s = &t->seen[(h + i) & (t->seen_cap - 1)];
            if (s->lkey == rec->lkey || s->lkey == 0) {
                t->seen_n += s->lkey == 0;
                *s = *rec;
                return;
            }
        }
        /* SEEN_PROBE slots taken around its place: linear probing at half full makes such a
         * run now and then (1 in about 100,000 records), and the record there was lost.
         * Below SEEN_MAX the table grows instead. */
        size_t cap = t->seen_cap;
        if (cap < SEEN_MAX)
            seen_grow_locked(t);
        if (t->seen_cap == cap) {
            t->seen[h] = *rec; /* at SEEN_MAX (or no memory): the one there goes */
            return;
        }
    }
}

/* Where a renamed directory's alias record is kept: apart from the names' lkeys. */
static uint64_t alias_key(uint64_t lkey)
{
    return fix_key(XXH3_64bits_withSeed(&lkey, sizeof lkey, 0x616c696173)); /* "alias" */
}

/* Remember when a name's content last changed (it is forgotten, or the mount ends). */
static void seen_note_locked(struct inode_table *t, const struct inode *ino)
{
    if (ino->changed_ns && ino->lkey) {
        struct seen_time rec = {
            .lkey = ino->lkey, .cidh = cid_hash(&ino->cid), .changed_ns = ino->changed_ns};
        seen_put_locked(t, &rec);
    }
}

/* The change times file: this line, then the table's used slots as they are in memory
 * (struct seen_time: lkey, hash of the CID, changed_ns; native byte order: the file never
 * leaves the machine's store). lkey and the CID's hash are stable across mounts; the slot a
 * record lands in is not (it depends on the seed), so loading places each one again. */
#define TIMES_MAGIC "ipfsfs change times 1\n"

int inode_times_load(struct inode_table *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char magic[sizeof TIMES_MAGIC - 1];
    int rc = 0;
    if (fread(magic, 1, sizeof magic, f) != sizeof magic ||
        memcmp(magic, TIMES_MAGIC, sizeof magic) != 0) {
        rc = -EINVAL; /* not ours, or cut short in its first bytes: start afresh */
    } else {
        struct seen_time rec;
        pthread_mutex_lock(&t->lock);
        for (size_t n = 0; n < SEEN_MAX && fread(&rec, sizeof rec, 1, f) == 1; n++)
            if (rec.lkey && (rec.changed_ns > 0 || rec.changed_ns == SEEN_ALIAS))
                seen_put_locked(t, &rec);
        pthread_mutex_unlock(&t->lock);
    }
    fclose(f);
    return rc;
}

int inode_times_save(struct inode_table *t, const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* as the store's */
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (!f) {
        int rc = -errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return rc;
    }
    int rc = fputs(TIMES_MAGIC, f) < 0 ? -EIO : 0;
    pthread_mutex_lock(&t->lock);
    /* The names the kernel still holds first join those it forgot. */
    for (size_t b = 0; b < t->nbuckets; b++)
        for (const struct inode *i = t->buckets[b]; i; i = i->hnext)
            if (i->mfs)
                seen_note_locked(t, i);
    for (size_t s = 0; s < t->seen_cap && rc == 0; s++)
        if (t->seen[s].lkey && fwrite(&t->seen[s], sizeof t->seen[s], 1, f) != 1)
            rc = -EIO;
    pthread_mutex_unlock(&t->lock);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static struct inode *find_locked(struct inode_table *t, uint64_t key, const struct cid *c)
{
    for (struct inode *i = t->buckets[bucket_of(t, key)]; i; i = i->hnext)
        if (!i->mfs && i->key == key && cid_equal(&i->cid, c))
            return i;
    return NULL;
}

/* The lkey of name under a directory whose key is parent_key. */
static uint64_t key_under(uint64_t parent_key, const char *name)
{
    unsigned char buf[8 + 256];
    size_t len = strlen(name);
    if (len > 256)
        len = 256;
    memcpy(buf, &parent_key, 8);
    memcpy(buf + 8, name, len);
    return fix_key(XXH3_64bits_withSeed(buf, 8 + len, 0x6d6673)); /* "mfs" */
}

uint64_t inode_key_mfs(const struct inode *parent, const char *name)
{
    return key_under(parent->key, name);
}

static struct inode *mfs_find_locked(struct inode_table *t, const struct inode *parent,
                                     const char *name, uint64_t lkey)
{
    for (struct inode *i = t->buckets[bucket_of(t, lkey)]; i; i = i->hnext)
        if (i->mfs && i->lkey == lkey && i->parent == parent && strcmp(i->name, name) == 0)
            return i;
    return NULL;
}

static void unhash_locked(struct inode_table *t, struct inode *ino)
{
    struct inode **pp = &t->buckets[bucket_of(t, ino->lkey)];
    while (*pp && *pp != ino)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = ino->hnext;
    ino->hnext = NULL;
}

static void hash_locked(struct inode_table *t, struct inode *ino)
{
    size_t b = bucket_of(t, ino->lkey);
    ino->hnext = t->buckets[b];
    t->buckets[b] = ino;
}

struct inode *inode_root(struct inode_table *t)
{
    return &t->root;
}

struct inode *inode_mfs_find_ref(struct inode_table *t, struct inode *parent, const char *name)
{
    uint64_t lkey = inode_key_mfs(parent, name);
    pthread_mutex_lock(&t->lock);
    struct inode *i = mfs_find_locked(t, parent, name, lkey);
    if (i)
        i->nlookup++;
    pthread_mutex_unlock(&t->lock);
    return i;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A name's content changed (its CID or size): names that store no time show this one, so
 * make, find -newer and rsync see the change (the CID stays the CID of the bytes). */
static void note_change_locked(struct inode *ino, const struct cid *c, uint64_t size)
{
    if (cid_equal(&ino->cid, c) && ino->size == size)
        return;
    if (ino->kind == NODE_DIR && ino->cid_ours) {
        /* A directory shows when its names changed (noted then by inode_mfs_touch), not
         * when a stat first saw its new CID: that moved it to the stat's time, after files
         * made later (find -newer, make). Nor when content below it changed. */
        ino->cid_ours = false;
        return;
    }
    ino->changed_ns = now_ns();
}

/* ino and the directories above it get new CIDs from a change this mount made (see
 * cid_ours). */
static void cid_ours_up_locked(struct inode *ino)
{
    for (; ino; ino = ino->parent)
        if (ino->kind == NODE_DIR)
            ino->cid_ours = true;
}

/* Whether the inode still has expect's CID, mode and time. */
static bool same_cid_meta_locked(const struct inode *ino, const struct mfs_attr *expect)
{
    return cid_equal(&ino->cid, &expect->cid) && ino->mode == expect->mode &&
           ino->has_mtime == expect->has_mtime &&
           (!ino->has_mtime ||
            (ino->mtime == expect->mtime && ino->mtime_nsec == expect->mtime_nsec));
}

/* Take a's CID, sizes, mode and time (not its kind): a change of content noted, but not for
 * a directory that stores a time: that one shows a later change of its own names only
 * (inode_mfs_touch from fs.c), not any change below it (rsync -a sets a subdirectory's time
 * after its parent's, which then showed that moment). */
static void set_attr_locked(struct inode *ino, const struct mfs_attr *a)
{
    if (!(ino->kind == NODE_DIR && a->kind == NODE_DIR && a->has_mtime))
        note_change_locked(ino, &a->cid, a->size);
    ino->cid = a->cid;
    ino->size = a->size;
    ino->cid_size = a->cid_size;
    ino->mode = a->mode;
    ino->mtime = a->mtime;
    ino->mtime_nsec = a->mtime_nsec;
    ino->has_mtime = a->has_mtime;
}

struct inode *inode_mfs_insert_ref(struct inode_table *t, struct inode *parent, const char *name,
                                   const struct mfs_attr *a, const char *target)
{
    struct inode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->name = strdup(name);
    n->target = target ? strdup(target) : NULL;
    if (!n->name || (target && !n->target)) {
        free(n->name);
        free(n->target);
        free(n);
        return NULL;
    }
    n->mfs = true;
    n->lkey = inode_key_mfs(parent, name);
    pthread_mutex_lock(&t->lock);
    struct inode *old = mfs_find_locked(t, parent, name, n->lkey);
    if (old) {
        old->nlookup++;
        set_attr_locked(old, a);
        old->kind = a->kind;
        pthread_mutex_unlock(&t->lock);
        free(n->name);
        free(n->target);
        free(n);
        return old;
    }
    n->cid = a->cid;
    n->kind = a->kind;
    n->size = a->size;
    n->cid_size = a->cid_size;
    n->mode = a->mode;
    n->mtime = a->mtime;
    n->mtime_nsec = a->mtime_nsec;
    n->has_mtime = a->has_mtime;
    n->parent = parent;
    /* Forgotten since its last change: the same time. Looked for under its lkey, then under
     * the key it had before its directory (or one above) was renamed. */
    uint64_t cidh = cid_hash(&n->cid);
    uint64_t old_lkey = parent->was_key ? key_under(parent->was_key, name) : 0;
    const struct seen_time *st = seen_find_locked(t, n->lkey);
    if (!(st && st->changed_ns > 0 && st->cidh == cidh) && old_lkey)
        st = seen_find_locked(t, old_lkey);
    if (st && st->changed_ns > 0 && st->cidh == cidh)
        n->changed_ns = st->changed_ns;
    if (a->kind == NODE_DIR) { /* where its children's times may be kept instead */
        const struct seen_time *al = seen_find_locked(t, alias_key(n->lkey));
        if (!(al && al->changed_ns == SEEN_ALIAS) && old_lkey) /* renamed under its old place */
            al = seen_find_locked(t, alias_key(old_lkey));
        n->was_key = al && al->changed_ns == SEEN_ALIAS ? al->cidh : old_lkey;
    }
    parent->nlookup++; /* a child keeps its parent */
    n->nlookup = 1;
    n->key = fresh_key_locked(t, n->lkey);
    hash_locked(t, n);
    displaced_update_locked(t, n);
    t->count++;
    grow_locked(t);
    pthread_mutex_unlock(&t->lock);
    return n;
}

void inode_mfs_touch(struct inode_table *t, struct inode *ino)
{
    pthread_mutex_lock(&t->lock);
    ino->changed_ns = now_ns();
    cid_ours_up_locked(ino->parent);
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_names_changed(struct inode_table *t, struct inode *dir)
{
    pthread_mutex_lock(&t->lock);
    dir->changed_ns = now_ns();
    cid_ours_up_locked(dir);
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_ours(struct inode_table *t, struct inode *ino)
{
    pthread_mutex_lock(&t->lock);
    cid_ours_up_locked(ino);
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_written(struct inode_table *t, struct inode *ino, uint64_t size)
{
    pthread_mutex_lock(&t->lock);
    ino->size = size;
    ino->changed_ns = now_ns();
    cid_ours_up_locked(ino->parent);
    if (ino->has_mtime) /* a stored time follows the content, as on any fs */
        inode_time_now(&ino->mtime, &ino->mtime_nsec);
    pthread_mutex_unlock(&t->lock);
}

void inode_time_now(int64_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = (int64_t)ts.tv_sec;
    *nsec = (uint32_t)ts.tv_nsec;
}

void inode_mfs_settle(struct inode_table *t, struct inode *ino)
{
    pthread_mutex_lock(&t->lock);
    ino->size = ino->cid_size;
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_keep_changed(struct inode_table *t, struct inode *ino, int64_t changed_ns)
{
    pthread_mutex_lock(&t->lock);
    ino->changed_ns = changed_ns;
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_get(struct inode_table *t, const struct inode *ino, struct mfs_attr *a)
{
    pthread_mutex_lock(&t->lock);
    a->cid = ino->cid;
    a->kind = ino->kind;
    a->size = ino->size;
    a->cid_size = ino->cid_size;
    a->mode = ino->mode;
    a->mtime = ino->mtime;
    a->mtime_nsec = ino->mtime_nsec;
    a->has_mtime = ino->has_mtime;
    a->changed_ns = ino->changed_ns;
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_set(struct inode_table *t, struct inode *ino, const struct mfs_attr *a)
{
    pthread_mutex_lock(&t->lock);
    /* A kind never changes under one inode (the kernel would be confused): a name that now
     * holds another kind gets a new inode on its next lookup. */
    set_attr_locked(ino, a);
    pthread_mutex_unlock(&t->lock);
}

bool inode_mfs_set_if(struct inode_table *t, struct inode *ino, const struct mfs_attr *expect,
                      const struct mfs_attr *a)
{
    pthread_mutex_lock(&t->lock);
    bool set = same_cid_meta_locked(ino, expect) && ino->size == expect->size;
    if (set)
        set_attr_locked(ino, a);
    pthread_mutex_unlock(&t->lock);
    return set;
}

void inode_mfs_set_linked(struct inode_table *t, struct inode *ino, const struct mfs_attr *a,
                          uint64_t seq)
{
    pthread_mutex_lock(&t->lock);
    if (seq > ino->linked_seq) {
        ino->linked_seq = seq;
        set_attr_locked(ino, a);
    }
    pthread_mutex_unlock(&t->lock);
}

void inode_mfs_set_meta(struct inode_table *t, struct inode *ino, const struct mfs_attr *a)
{
    pthread_mutex_lock(&t->lock);
    ino->mode = a->mode;
    ino->mtime = a->mtime;
    ino->mtime_nsec = a->mtime_nsec;
    ino->has_mtime = a->has_mtime;
    pthread_mutex_unlock(&t->lock);
}

bool inode_mfs_set_cid_if(struct inode_table *t, struct inode *ino,
                          const struct mfs_attr *expect, const struct mfs_attr *a)
{
    pthread_mutex_lock(&t->lock);
    bool set = same_cid_meta_locked(ino, expect);
    if (set) {
        note_change_locked(ino, &a->cid, ino->size);
        ino->cid = a->cid;
        ino->mode = a->mode;
        ino->mtime = a->mtime;
        ino->mtime_nsec = a->mtime_nsec;
        ino->has_mtime = a->has_mtime;
    }
    pthread_mutex_unlock(&t->lock);
    return set;
}

int inode_mfs_set_target(struct inode_table *t, struct inode *ino, const char *target)
{
    char *nt = strdup(target);
    if (!nt)
        return -ENOMEM;
    pthread_mutex_lock(&t->lock);
    char *old = ino->target;
    ino->target = nt;
    pthread_mutex_unlock(&t->lock);
    free(old);
    return 0;
}

char *inode_target_dup(struct inode_table *t, const struct inode *ino)
{
    pthread_mutex_lock(&t->lock);
    char *c = ino->target ? strdup(ino->target) : NULL;
    pthread_mutex_unlock(&t->lock);
    return c;
}

uint64_t inode_mfs_ino(struct inode_table *t, const struct inode *parent, const char *name)
{
    uint64_t lkey = inode_key_mfs(parent, name);
    pthread_mutex_lock(&t->lock);
    const struct inode *i = mfs_find_locked(t, parent, name, lkey);
    uint64_t key = i ? i->key : fresh_key_locked(t, lkey);
    pthread_mutex_unlock(&t->lock);
    return key;
}

uint64_t inode_parent_ino(struct inode_table *t, const struct inode *ino)
{
    pthread_mutex_lock(&t->lock);
    const struct inode *p = ino->parent;
    uint64_t key = p ? p->key : t->root.key; /* the root's key is 1 */
    pthread_mutex_unlock(&t->lock);
    return key;
}

int inode_mfs_path(struct inode_table *t, const struct inode *ino, const char *root_path,
                   bool detached_ok, char *buf, size_t len)
{
    const struct inode *chain[256];
    size_t depth = 0;
    pthread_mutex_lock(&t->lock);
    for (const struct inode *i = ino; i && i->parent; i = i->parent) {
        if (i->mfs && i->lkey == 0 && !detached_ok) {
            /* Detached: its name was removed or replaced. The path it had leads to another
             * name now (or none), never to this inode. */
            pthread_mutex_unlock(&t->lock);
            return -ENOENT;
        }
        if (depth == sizeof chain / sizeof chain[0]) {
            pthread_mutex_unlock(&t->lock);
            return -ENAMETOOLONG;
        }
        chain[depth++] = i;
    }
    size_t o = (size_t)snprintf(buf, len, "%s", root_path);
    if (o > 0 && buf[o - 1] == '/')
        o--;
    int rc = 0;
    for (size_t k = depth; k-- > 0 && rc == 0;) {
        int n = snprintf(buf + o, len > o ? len - o : 0, "/%s", chain[k]->name);
        if (n < 0 || o + (size_t)n >= len)
            rc = -ENAMETOOLONG;
        else
            o += (size_t)n;
    }
    pthread_mutex_unlock(&t->lock);
    if (rc == 0 && o == 0)
        snprintf(buf, len, "/");
    return rc;
}

int inode_mfs_move(struct inode_table *t, struct inode *ino, struct inode *parent,
                   const char *name)
{
    char *nm = strdup(name);
    if (!nm)
        return -ENOMEM;
    struct inode *old_parent;
    pthread_mutex_lock(&t->lock);
    unhash_locked(t, ino);
    free(ino->name);
    ino->name = nm;
    old_parent = ino->parent;
    ino->parent = parent;
    parent->nlookup++;
    ino->lkey = inode_key_mfs(parent, name);
    /* Its children's times are kept under keys made from its key: a lookup at the new place
     * (once the kernel forgot it, or after a remount) finds them through this alias (and a
     * directory renamed inside one renamed, through its alias under its old place). A
     * directory renamed twice while forgotten between keeps the newer set. */
    if (ino->kind == NODE_DIR && ino->key != ino->lkey) {
        struct seen_time al = {
            .lkey = alias_key(ino->lkey), .cidh = ino->key, .changed_ns = SEEN_ALIAS};
        seen_put_locked(t, &al);
    }
    hash_locked(t, ino);
    displaced_update_locked(t, ino);
    pthread_mutex_unlock(&t->lock);
    if (old_parent)
        inode_forget(t, old_parent, 1);
    return 0;
}

void inode_mfs_detach(struct inode_table *t, struct inode *parent, const char *name)
{
    inode_mfs_detach_if(t, parent, name, NULL);
}

void inode_mfs_detach_if(struct inode_table *t, struct inode *parent, const char *name,
                         const struct inode *only)
{
    uint64_t lkey = inode_key_mfs(parent, name);
    pthread_mutex_lock(&t->lock);
    struct inode *i = mfs_find_locked(t, parent, name, lkey);
    if (i && (!only || i == only)) {
        /* Keep it alive for the kernel's references, but out of reach of lookups. */
        unhash_locked(t, i);
        i->lkey = 0;
        i->hnext = NULL;
        displaced_update_locked(t, i);
    }
    pthread_mutex_unlock(&t->lock);
}

struct inode *inode_find_ref(struct inode_table *t, uint64_t key, const struct cid *c)
{
    pthread_mutex_lock(&t->lock);
    struct inode *i = find_locked(t, key, c);
    if (i) {
        lru_remove(t, i);
        i->nlookup++;
    }
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
    n->mtime_nsec = st->mtime_nsec;
    n->has_mtime = st->has_mtime;
    n->target = st->target;
    st->target = NULL;
    pthread_mutex_lock(&t->lock);
    struct inode *old = find_locked(t, key, c);
    if (old) {
        lru_remove(t, old);
        old->nlookup++;
        pthread_mutex_unlock(&t->lock);
        free(n->target);
        free(n);
        return old;
    }
    n->nlookup = 1;
    size_t b = bucket_of(t, key);
    n->hnext = t->buckets[b];
    t->buckets[b] = n;
    t->count++;
    grow_locked(t);
    pthread_mutex_unlock(&t->lock);
    return n;
}

void inode_forget(struct inode_table *t, struct inode *ino, uint64_t n)
{
    while (ino) {
        pthread_mutex_lock(&t->lock);
        if (ino == &t->root || ino->nlookup > n) {
            if (ino != &t->root)
                ino->nlookup -= n;
            pthread_mutex_unlock(&t->lock);
            return;
        }
        if (!ino->mfs && !ino->in_lru) {
            /* Keep it findable: content under a CID never changes. */
            ino->nlookup = 0;
            ino->in_lru = true;
            ino->lru_prev = NULL;
            ino->lru_next = t->lru_head;
            if (t->lru_head)
                t->lru_head->lru_prev = ino;
            t->lru_head = ino;
            if (!t->lru_tail)
                t->lru_tail = ino;
            t->nlru++;
            if (t->nlru <= LRU_MAX) {
                pthread_mutex_unlock(&t->lock);
                return;
            }
            ino = t->lru_tail; /* evict the oldest instead */
            lru_remove(t, ino);
        }
        if (ino->mfs) {
            seen_note_locked(t, ino);
            unhash_locked(t, ino);
            ino->lkey = ino->key; /* leaves the displaced set */
            displaced_update_locked(t, ino);
        } else {
            struct inode **pp = &t->buckets[bucket_of(t, ino->key)];
            while (*pp && *pp != ino)
                pp = &(*pp)->hnext;
            if (*pp)
                *pp = ino->hnext;
        }
        t->count--;
        pthread_mutex_unlock(&t->lock);
        struct inode *parent = ino->parent;
        free(ino->target);
        free(ino->name);
        free(ino);
        /* Drop the reference the child held on its parent. */
        ino = parent;
        n = 1;
    }
}

size_t inode_longest_chain(struct inode_table *t)
{
    size_t longest = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t b = 0; b < t->nbuckets; b++) {
        size_t n = 0;
        for (const struct inode *i = t->buckets[b]; i; i = i->hnext)
            n++;
        if (n > longest)
            longest = n;
    }
    pthread_mutex_unlock(&t->lock);
    return longest;
}

uint64_t inode_count(struct inode_table *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

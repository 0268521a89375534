/* dircache.c - see dircache.h. */
#include "config.h"

#include "dircache.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* A slot of the cache: one directory CID, loading or loaded. */
struct slot {
    struct cid cid;
    uint64_t hash;
    struct dirlist *list; /* NULL while loading */
    /* Holders: dircache_get callers (the loader and those waiting for its load count from the
     * moment they find the slot, so it outlives the wait) + 1 while cached. Freed at 0. */
    int refs;
    bool loading;
    int err; /* set when a load failed (waiters read it), slot then leaves the cache */
    struct slot *hnext;             /* hash chain */
    struct slot *lru_prev, *lru_next; /* loaded slots only; head = most recent */
};

struct dircache {
    struct node *node;
    size_t budget;
    /* lock protects everything below: the hash table, the LRU list, every slot's refs, loading,
     * err and list pointer, and the counters. Never held across node_list(). */
    pthread_mutex_t lock;
    pthread_cond_t loaded; /* broadcast when any load ends */
    struct slot **table;
    size_t nbuckets;
    struct slot *lru_head, *lru_tail;
    size_t bytes;
    uint64_t hits, misses, waits, evictions, errors;
};

/* Map a listing back to its slot for dircache_put: the list is owned by exactly one slot. We
 * keep a back pointer in a small header allocated before the dirlist. */
struct dirlist_box {
    struct slot *slot;
    struct dirlist list;
};

/* The name index is seeded at random once per process: names come from the node, and with a
 * known hash a hostile directory could pick names that all land in one probe run, making every
 * lookup in it (and building it) quadratic. */
static uint64_t g_name_seed;
static pthread_once_t g_name_seed_once = PTHREAD_ONCE_INIT;

static void name_seed_init(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = XXH3_64bits(&ts, sizeof ts) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts;
    }
    g_name_seed = s;
}

static uint64_t name_hash(const char *name, size_t len)
{
    pthread_once(&g_name_seed_once, name_seed_init);
    return XXH3_64bits_withSeed(name, len, g_name_seed);
}

void dirlist_free(struct dirlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->entries[i].name);
    free(l->entries);
    free(l->index);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct dirent_rec *)a)->name, ((const struct dirent_rec *)b)->name);
}

/* Sort, drop duplicate names (the first in sorted order wins; a hostile directory may repeat a
 * name), and index. Fills l (entries ownership moves to it). */
static int dirlist_init(struct dirlist *l, struct dirent_rec *entries, size_t n)
{
    memset(l, 0, sizeof *l);
    if (n > 1)
        qsort(entries, n, sizeof *entries, cmp_entry);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(entries[w - 1].name, entries[i].name) == 0) {
            char safe[160];
            log_warn("directory lists the name \"%s\" twice; keeping one",
                     log_safe(entries[i].name, strlen(entries[i].name), safe, sizeof safe));
            free(entries[i].name);
            continue;
        }
        entries[w++] = entries[i];
    }
    l->entries = entries;
    l->n = w;
    l->bytes = sizeof *l + w * sizeof *entries;
    if (w == 0)
        return 0;
    size_t cap = 8;
    while (cap < w * 2)
        cap *= 2;
    l->index = calloc(cap, sizeof *l->index);
    if (!l->index)
        return -ENOMEM;
    l->index_cap = cap;
    l->bytes += cap * sizeof *l->index;
    for (size_t i = 0; i < w; i++) {
        size_t len = strlen(entries[i].name);
        l->bytes += len + 1;
        size_t h = (size_t)name_hash(entries[i].name, len) & (cap - 1);
        while (l->index[h])
            h = (h + 1) & (cap - 1);
        l->index[h] = (uint32_t)(i + 1);
    }
    return 0;
}

int dirlist_build(struct dirent_rec *entries, size_t n, struct dirlist **out)
{
    struct dirlist *l = malloc(sizeof *l);
    if (!l)
        return -ENOMEM;
    int rc = dirlist_init(l, entries, n);
    if (rc < 0) {
        dirlist_free(l);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

const struct dirent_rec *dirlist_find(const struct dirlist *l, const char *name, size_t len)
{
    if (l->n == 0)
        return NULL;
    size_t mask = l->index_cap - 1;
    size_t h = (size_t)name_hash(name, len) & mask;
    while (l->index[h]) {
        const struct dirent_rec *e = &l->entries[l->index[h] - 1];
        if (strncmp(e->name, name, len) == 0 && e->name[len] == '\0')
            return e;
        h = (h + 1) & mask;
    }
    return NULL;
}

int dircache_new(struct node *node, size_t budget, struct dircache **out)
{
    struct dircache *dc = calloc(1, sizeof *dc);
    if (!dc)
        return -ENOMEM;
    dc->node = node;
    dc->budget = budget;
    dc->nbuckets = 4096;
    dc->table = calloc(dc->nbuckets, sizeof *dc->table);
    if (!dc->table) {
        free(dc);
        return -ENOMEM;
    }
    pthread_mutex_init(&dc->lock, NULL);
    pthread_cond_init(&dc->loaded, NULL);
    *out = dc;
    return 0;
}

static void box_free(struct dirlist *l)
{
    if (!l)
        return;
    struct dirlist_box *box = (struct dirlist_box *)((char *)l - offsetof(struct dirlist_box, list));
    dirlist_free(l);
    free(box);
}

void dircache_free(struct dircache *dc)
{
    if (!dc)
        return;
    for (size_t b = 0; b < dc->nbuckets; b++) {
        struct slot *s = dc->table[b];
        while (s) {
            struct slot *next = s->hnext;
            box_free(s->list);
            free(s);
            s = next;
        }
    }
    free(dc->table);
    pthread_mutex_destroy(&dc->lock);
    pthread_cond_destroy(&dc->loaded);
    free(dc);
}

static void lru_unlink(struct dircache *dc, struct slot *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else if (dc->lru_head == s)
        dc->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else if (dc->lru_tail == s)
        dc->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(struct dircache *dc, struct slot *s)
{
    s->lru_prev = NULL;
    s->lru_next = dc->lru_head;
    if (dc->lru_head)
        dc->lru_head->lru_prev = s;
    dc->lru_head = s;
    if (!dc->lru_tail)
        dc->lru_tail = s;
}

static void table_remove(struct dircache *dc, struct slot *s)
{
    struct slot **pp = &dc->table[s->hash & (dc->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
}

/* Drop least recently used listings nobody holds until within budget. Lock held. */
static void evict(struct dircache *dc)
{
    struct slot *s = dc->lru_tail;
    while (dc->bytes > dc->budget && s) {
        struct slot *prev = s->lru_prev;
        if (s->refs == 1) { /* only the cache's own reference */
            lru_unlink(dc, s);
            table_remove(dc, s);
            dc->bytes -= s->list->bytes;
            dc->evictions++;
            box_free(s->list);
            free(s);
        }
        s = prev;
    }
}

int dirent_vec_push(struct dirent_vec *vec, const struct node_entry *e)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 64;
        if (cap > UINT32_MAX / 2) /* the name index holds entry numbers in 32 bits */
            return -EFBIG;
        struct dirent_rec *v = realloc(vec->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        vec->v = v;
        vec->cap = cap;
    }
    struct dirent_rec *r = &vec->v[vec->n];
    r->name = strndup(e->name, e->name_len);
    if (!r->name)
        return -ENOMEM;
    r->cid = e->cid;
    r->kind = e->kind;
    r->size = e->size;
    r->mode = e->mode;
    r->mtime = e->mtime;
    r->mtime_nsec = e->mtime_nsec;
    r->has_mtime = e->has_mtime;
    vec->n++;
    return 0;
}

void dirent_vec_clear(struct dirent_vec *vec)
{
    for (size_t i = 0; i < vec->n; i++)
        free(vec->v[i].name);
    free(vec->v);
    memset(vec, 0, sizeof *vec);
}

static int collect_entry(void *ud, const struct node_entry *e)
{
    return dirent_vec_push(ud, e);
}

static int load(struct dircache *dc, const struct cid *c, struct dirlist_box **out)
{
    struct dirent_vec col = {0};
    int rc = node_list(dc->node, c, collect_entry, &col);
    if (rc < 0)
        goto fail;
    struct dirlist_box *box = malloc(sizeof *box);
    if (!box) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = dirlist_init(&box->list, col.v, col.n);
    if (rc < 0) {
        dirlist_free(&box->list);
        free(box);
        return rc;
    }
    *out = box;
    return 0;
fail:
    dirent_vec_clear(&col);
    return rc;
}

static int get_or_peek(struct dircache *dc, const struct cid *c, const struct dirlist **out,
                       bool fill);

int dircache_get(struct dircache *dc, const struct cid *c, const struct dirlist **out)
{
    return get_or_peek(dc, c, out, true);
}

int dircache_peek(struct dircache *dc, const struct cid *c, const struct dirlist **out)
{
    return get_or_peek(dc, c, out, false);
}

static int get_or_peek(struct dircache *dc, const struct cid *c, const struct dirlist **out,
                       bool fill)
{
    uint64_t h = cid_hash(c);
    pthread_mutex_lock(&dc->lock);
    struct slot *s = dc->table[h & (dc->nbuckets - 1)];
    while (s && !(s->hash == h && cid_equal(&s->cid, c)))
        s = s->hnext;
    if (!s && !fill) {
        pthread_mutex_unlock(&dc->lock);
        return -ENOENT;
    }
    if (s && s->loading) {
        /* Someone is fetching it: wait for that one fetch, holding a reference, so that the
         * slot outlives the wait even if the listing is evicted (or never fits) before this
         * thread wakes. */
        dc->waits++;
        s->refs++;
        while (s->loading)
            pthread_cond_wait(&dc->loaded, &dc->lock);
        if (s->err) {
            int err = s->err;
            if (--s->refs == 0)
                free(s); /* the loader has already unlinked it */
            pthread_mutex_unlock(&dc->lock);
            return err;
        }
        dc->hits++;
        *out = s->list;
        pthread_mutex_unlock(&dc->lock);
        return 0;
    }
    if (s) {
        dc->hits++;
        s->refs++;
        lru_unlink(dc, s);
        lru_push_front(dc, s);
        *out = s->list;
        pthread_mutex_unlock(&dc->lock);
        return 0;
    }
    dc->misses++;
    s = calloc(1, sizeof *s);
    if (!s) {
        pthread_mutex_unlock(&dc->lock);
        return -ENOMEM;
    }
    s->cid = *c;
    s->hash = h;
    s->loading = true;
    s->hnext = dc->table[h & (dc->nbuckets - 1)];
    dc->table[h & (dc->nbuckets - 1)] = s;
    pthread_mutex_unlock(&dc->lock);

    struct dirlist_box *box = NULL;
    int rc = load(dc, c, &box);

    pthread_mutex_lock(&dc->lock);
    s->loading = false;
    if (rc < 0) {
        dc->errors++;
        table_remove(dc, s);
        s->err = rc;
        pthread_cond_broadcast(&dc->loaded);
        if (s->refs == 0) /* else the last waiter frees it */
            free(s);
        pthread_mutex_unlock(&dc->lock);
        return rc;
    }
    box->slot = s;
    s->list = &box->list;
    s->refs += 2; /* the cache and the caller, beside the waiters */
    dc->bytes += s->list->bytes;
    lru_push_front(dc, s);
    evict(dc);
    pthread_cond_broadcast(&dc->loaded);
    *out = s->list;
    pthread_mutex_unlock(&dc->lock);
    return 0;
}

void dircache_put(struct dircache *dc, const struct dirlist *l)
{
    if (!l)
        return;
    struct dirlist_box *box =
        (struct dirlist_box *)((char *)l - offsetof(struct dirlist_box, list));
    pthread_mutex_lock(&dc->lock);
    struct slot *s = box->slot;
    s->refs--;
    if (s->refs == 0) {
        /* Evicted while we held it: we were the last user. */
        box_free(s->list);
        free(s);
    } else {
        evict(dc);
    }
    pthread_mutex_unlock(&dc->lock);
}

int dircache_stats(struct dircache *dc, char *buf, size_t len)
{
    pthread_mutex_lock(&dc->lock);
    int n = snprintf(buf, len,
                     "dircache_hits %" PRIu64 "\ndircache_misses %" PRIu64
                     "\ndircache_waits %" PRIu64 "\ndircache_evictions %" PRIu64
                     "\ndircache_errors %" PRIu64 "\ndircache_bytes %zu\ndircache_budget %zu\n",
                     dc->hits, dc->misses, dc->waits, dc->evictions, dc->errors, dc->bytes,
                     dc->budget);
    pthread_mutex_unlock(&dc->lock);
    return n;
}

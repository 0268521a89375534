/* chunkcache.c - see chunkcache.h. */
#include "config.h"

#include "chunkcache.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "log.h"

#define MIN_BUCKETS 64
/* Buffers from this size up are mapped (pre-faulted) rather than malloc'd. */
#define MAP_MIN (64u << 10)

enum chunk_state { ST_LOADING, ST_READY, ST_FAILED };

struct chunk {
    /* Set at creation, then immutable: readable by any reference holder without the lock. */
    struct cid cid;
    uint64_t cid_hash;
    uint64_t index;
    uint64_t hash; /* of (cid_hash, index): the table key */
    size_t len;
    bool advisory;

    /* Guarded by chunkcache.lock. data is written once, before state becomes READY; whoever saw
     * READY under the lock may then read the bytes without it while holding a reference. */
    enum chunk_state state;
    int err; /* -errno when FAILED */
    char *data;
    unsigned refs;
    unsigned waiters;    /* threads in chunkcache_wait on this chunk */
    bool in_table;       /* false once FAILED or evicted; freed when refs drop to 0 */
    struct chunk *hnext; /* hash chain; also the free list once out of the table */
    /* On the LRU list iff in_table, READY and refs == 0. */
    struct chunk *lru_prev, *lru_next;
};

struct chunkcache {
    size_t chunk_size; /* immutable */
    size_t budget;     /* immutable */

    /* lock guards everything below and the mutable fields of every chunk. It is never held
     * across a fetch: the cache does no I/O, and frees evicted data after unlocking. */
    pthread_mutex_t lock;
    pthread_cond_t done; /* broadcast when a chunk that has waiters leaves LOADING */
    struct chunk **buckets;
    size_t nbuckets; /* power of two */
    size_t count;    /* chunks in the table */
    /* Unreferenced READY chunks, most recently released at the head. */
    struct chunk *lru_head, *lru_tail;
    uint64_t bytes;         /* data bytes of the chunks in the table (READY + LOADING) */
    uint64_t bytes_loading; /* of which LOADING */
    /* The counters; the gauges are filled in by chunkcache_get_stats. */
    struct chunkcache_stats st;
};

static uint64_t key_hash(const struct chunk_key *k)
{
    return XXH3_64bits_withSeed(&k->index, sizeof k->index, k->cid_hash);
}

static size_t next_pow2(size_t n)
{
    size_t p = MIN_BUCKETS;

    while (p < n && p < ((size_t)1 << (sizeof(size_t) * 8 - 2)))
        p <<= 1;
    return p;
}

int chunkcache_new(size_t budget, size_t chunk_size, struct chunkcache **out)
{
    struct chunkcache *cc;
    int rc = -ENOMEM;

    *out = NULL;
    if (!budget)
        budget = CHUNKCACHE_DEFAULT_BUDGET;
    if (!chunk_size)
        chunk_size = CHUNKCACHE_DEFAULT_CHUNK;
    if (budget < chunk_size)
        return -EINVAL;
    cc = calloc(1, sizeof *cc);
    if (!cc)
        return -ENOMEM;
    cc->budget = budget;
    cc->chunk_size = chunk_size;
    /* About one bucket per chunk the budget holds; the table grows if the budget is overshot. */
    cc->nbuckets = next_pow2(budget / chunk_size);
    cc->buckets = calloc(cc->nbuckets, sizeof *cc->buckets);
    if (!cc->buckets)
        goto out;
    if (pthread_mutex_init(&cc->lock, NULL) != 0) {
        rc = -EAGAIN;
        goto out;
    }
    if (pthread_cond_init(&cc->done, NULL) != 0) {
        pthread_mutex_destroy(&cc->lock);
        rc = -EAGAIN;
        goto out;
    }
    *out = cc;
    return 0;
out:
    free(cc->buckets);
    free(cc);
    return rc;
}

char *chunkcache_data_alloc(size_t len)
{
    if (len < MAP_MIN)
        return malloc(len ? len : 1);
    void *p =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void chunkcache_data_free(char *data, size_t len)
{
    if (!data)
        return;
    if (len < MAP_MIN)
        free(data);
    else
        munmap(data, len);
}

static void chunk_free(struct chunk *ch)
{
    chunkcache_data_free(ch->data, ch->len);
    free(ch);
}

static void free_list(struct chunk *list)
{
    while (list) {
        struct chunk *next = list->hnext;
        chunk_free(list);
        list = next;
    }
}

void chunkcache_free(struct chunkcache *cc)
{
    if (!cc)
        return;
    for (size_t i = 0; i < cc->nbuckets; i++) {
        for (struct chunk *ch = cc->buckets[i], *next; ch; ch = next) {
            next = ch->hnext;
            if (ch->refs)
                log_err("chunk %" PRIu64 " still has %u references", ch->index, ch->refs);
            chunk_free(ch);
        }
    }
    pthread_cond_destroy(&cc->done);
    pthread_mutex_destroy(&cc->lock);
    free(cc->buckets);
    free(cc);
}

size_t chunkcache_chunk_size(const struct chunkcache *cc)
{
    return cc->chunk_size;
}

size_t chunkcache_budget(const struct chunkcache *cc)
{
    return cc->budget;
}

/* ---- table and LRU list (all with cc->lock held) -------------------------------------------- */

static struct chunk *find_locked(struct chunkcache *cc, const struct chunk_key *k, uint64_t h)
{
    for (struct chunk *ch = cc->buckets[h & (cc->nbuckets - 1)]; ch; ch = ch->hnext) {
        if (ch->hash == h && ch->index == k->index && ch->cid_hash == k->cid_hash &&
            cid_equal(&ch->cid, k->cid))
            return ch;
    }
    return NULL;
}

static void grow_locked(struct chunkcache *cc)
{
    size_t n = cc->nbuckets * 2;
    struct chunk **b = calloc(n, sizeof *b);

    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < cc->nbuckets; i++) {
        for (struct chunk *ch = cc->buckets[i], *next; ch; ch = next) {
            next = ch->hnext;
            ch->hnext = b[ch->hash & (n - 1)];
            b[ch->hash & (n - 1)] = ch;
        }
    }
    free(cc->buckets);
    cc->buckets = b;
    cc->nbuckets = n;
}

static void table_insert_locked(struct chunkcache *cc, struct chunk *ch)
{
    if (cc->count >= cc->nbuckets)
        grow_locked(cc);
    struct chunk **b = &cc->buckets[ch->hash & (cc->nbuckets - 1)];
    ch->hnext = *b;
    *b = ch;
    ch->in_table = true;
    cc->count++;
    cc->bytes += ch->len;
}

static void table_remove_locked(struct chunkcache *cc, struct chunk *ch)
{
    for (struct chunk **p = &cc->buckets[ch->hash & (cc->nbuckets - 1)]; *p; p = &(*p)->hnext) {
        if (*p == ch) {
            *p = ch->hnext;
            break;
        }
    }
    ch->hnext = NULL;
    ch->in_table = false;
    cc->count--;
    cc->bytes -= ch->len;
}

static void lru_push_locked(struct chunkcache *cc, struct chunk *ch)
{
    ch->lru_prev = NULL;
    ch->lru_next = cc->lru_head;
    if (cc->lru_head)
        cc->lru_head->lru_prev = ch;
    else
        cc->lru_tail = ch;
    cc->lru_head = ch;
}

static void lru_unlink_locked(struct chunkcache *cc, struct chunk *ch)
{
    if (ch->lru_prev)
        ch->lru_prev->lru_next = ch->lru_next;
    else
        cc->lru_head = ch->lru_next;
    if (ch->lru_next)
        ch->lru_next->lru_prev = ch->lru_prev;
    else
        cc->lru_tail = ch->lru_prev;
    ch->lru_prev = ch->lru_next = NULL;
}

/* Evict unreferenced READY chunks, least recently used first, until within the budget. The
 * victims are chained on *freed, to be freed after unlocking. */
static void evict_locked(struct chunkcache *cc, struct chunk **freed)
{
    while (cc->bytes > cc->budget && cc->lru_tail) {
        struct chunk *ch = cc->lru_tail;
        lru_unlink_locked(cc, ch);
        table_remove_locked(cc, ch);
        cc->st.evictions++;
        ch->hnext = *freed;
        *freed = ch;
    }
}

/* Create a LOADING chunk with one reference, insert it and make room for it. */
static struct chunk *create_locked(struct chunkcache *cc, const struct chunk_key *k, uint64_t h,
                                   size_t len, bool advisory, struct chunk **freed)
{
    struct chunk *ch = calloc(1, sizeof *ch);

    if (!ch)
        return NULL;
    ch->cid = *k->cid;
    ch->cid_hash = k->cid_hash;
    ch->index = k->index;
    ch->hash = h;
    ch->len = len;
    ch->advisory = advisory;
    ch->state = ST_LOADING;
    ch->refs = 1;
    table_insert_locked(cc, ch);
    cc->bytes_loading += len;
    evict_locked(cc, freed);
    return ch;
}

/* ---- public ---------------------------------------------------------------------------------- */

int chunkcache_get(struct chunkcache *cc, const struct chunk_key *k, size_t len, struct chunk **out)
{
    uint64_t h = key_hash(k);
    struct chunk *freed = NULL;
    struct chunk *ch;
    int rc;

    *out = NULL;
    if (len == 0 || len > cc->chunk_size)
        return -EINVAL;
    pthread_mutex_lock(&cc->lock);
    ch = find_locked(cc, k, h);
    if (ch && ch->state == ST_READY) {
        if (ch->refs++ == 0)
            lru_unlink_locked(cc, ch);
        cc->st.hits++;
        rc = CHUNK_READY;
    } else if (ch) {
        ch->refs++;
        cc->st.waits++;
        rc = CHUNK_LOADING;
    } else {
        ch = create_locked(cc, k, h, len, false, &freed);
        if (ch) {
            cc->st.misses++;
            rc = CHUNK_CLAIMED;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&cc->lock);
    free_list(freed);
    *out = ch;
    return rc;
}

int chunkcache_claim(struct chunkcache *cc, const struct chunk_key *k, size_t len,
                     struct chunk **out)
{
    uint64_t h = key_hash(k);
    struct chunk *freed = NULL;
    struct chunk *ch = NULL;
    int rc = 0;

    *out = NULL;
    if (len == 0 || len > cc->chunk_size)
        return -EINVAL;
    pthread_mutex_lock(&cc->lock);
    if (find_locked(cc, k, h)) {
        rc = -EEXIST;
        goto out;
    }
    if (cc->bytes_loading + len > cc->budget / 2) {
        rc = -ENOSPC;
        goto out;
    }
    ch = create_locked(cc, k, h, len, true, &freed);
    if (!ch) {
        rc = -ENOMEM;
        goto out;
    }
    cc->st.prefetches++;
out:
    pthread_mutex_unlock(&cc->lock);
    free_list(freed);
    *out = ch;
    return rc;
}

void chunkcache_complete(struct chunkcache *cc, struct chunk *ch, char *data, int err)
{
    pthread_mutex_lock(&cc->lock);
    if (ch->state != ST_LOADING) {
        /* A bug in the caller; keep the cache consistent. */
        pthread_mutex_unlock(&cc->lock);
        log_err("chunk %" PRIu64 " completed twice", ch->index);
        chunkcache_data_free(data, ch->len);
        return;
    }
    cc->bytes_loading -= ch->len;
    if (err == 0 && data) {
        ch->data = data;
        ch->state = ST_READY;
        cc->st.bytes_fetched += ch->len;
    } else {
        chunkcache_data_free(data, ch->len);
        ch->err = err < 0 ? err : -EIO;
        ch->state = ST_FAILED;
        cc->st.failed++;
        if (ch->in_table)
            table_remove_locked(cc, ch);
    }
    if (ch->waiters)
        pthread_cond_broadcast(&cc->done);
    pthread_mutex_unlock(&cc->lock);
}

int chunkcache_wait(struct chunkcache *cc, struct chunk *ch)
{
    int rc;

    pthread_mutex_lock(&cc->lock);
    while (ch->state == ST_LOADING) {
        ch->waiters++;
        pthread_cond_wait(&cc->done, &cc->lock);
        ch->waiters--;
    }
    rc = ch->state == ST_READY ? 0 : ch->err;
    pthread_mutex_unlock(&cc->lock);
    return rc;
}

void chunkcache_release(struct chunkcache *cc, struct chunk *ch)
{
    struct chunk *freed = NULL;

    if (!ch)
        return;
    pthread_mutex_lock(&cc->lock);
    if (--ch->refs == 0) {
        if (!ch->in_table) {
            ch->hnext = freed;
            freed = ch;
        } else if (ch->state == ST_READY) {
            lru_push_locked(cc, ch);
            evict_locked(cc, &freed);
        }
        /* LOADING with no reference cannot happen: the claimer holds one until it completes. */
    }
    pthread_mutex_unlock(&cc->lock);
    free_list(freed);
}

const char *chunkcache_data(const struct chunk *ch)
{
    return ch->data;
}

size_t chunkcache_len(const struct chunk *ch)
{
    return ch->len;
}

uint64_t chunkcache_index(const struct chunk *ch)
{
    return ch->index;
}

const struct cid *chunkcache_cid(const struct chunk *ch)
{
    return &ch->cid;
}

bool chunkcache_advisory(const struct chunk *ch)
{
    return ch->advisory;
}

void chunkcache_get_stats(struct chunkcache *cc, struct chunkcache_stats *st)
{
    pthread_mutex_lock(&cc->lock);
    *st = cc->st;
    st->bytes_cached = cc->bytes;
    st->bytes_loading = cc->bytes_loading;
    st->chunks = cc->count;
    pthread_mutex_unlock(&cc->lock);
}

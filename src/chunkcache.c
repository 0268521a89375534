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

#include "clock.h"
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
    /* A buffer for the data, from a chunk evicted to make room for this one: owned by the
     * claimer while LOADING (chunkcache_buffer takes it), else NULL; freed with the chunk. */
    char *spare;

    /* Guarded by chunkcache.lock. data is written once, before state becomes READY; whoever saw
     * READY under the lock may then read the bytes without it while holding a reference. */
    enum chunk_state state;
    int err; /* -errno when FAILED */
    char *data;
    unsigned refs;
    unsigned waiters;    /* threads in chunkcache_wait on this chunk */
    bool in_table;       /* false once FAILED or evicted; freed when refs drop to 0 */
    bool consumed;       /* read to its end by a sequential reader (chunkcache_consumed) */
    bool on_scan;        /* on the scan list rather than the LRU list */
    struct chunk *hnext; /* hash chain; also the free list once out of the table */
    /* On the LRU list (consumed: the scan list) iff in_table, READY and refs == 0. */
    struct chunk *lru_prev, *lru_next;
};

#define PROGRESS_SLOTS 64u

struct chunkcache {
    size_t chunk_size; /* immutable */
    size_t budget;     /* immutable */

    /* lock guards everything below and the mutable fields of every chunk. It is never held
     * across a fetch: the cache does no I/O, and frees evicted data after unlocking. */
    pthread_mutex_t lock;
    pthread_cond_t done; /* broadcast when a chunk that has waiters leaves LOADING (monotonic) */
    struct chunk **buckets;
    size_t nbuckets; /* power of two */
    size_t count;    /* chunks in the table */
    /* Unreferenced READY chunks, most recently released at the head: those read through by a
     * sequential reader on the scan list (scan_bytes of them), the others on the LRU list. */
    struct chunk *lru_head, *lru_tail;
    struct chunk *scan_head, *scan_tail;
    uint64_t scan_bytes;
    uint64_t scan_max; /* set once, before use (chunkcache_set_scan_max) */
    uint64_t bytes;         /* data bytes of the chunks in the table (READY + LOADING) */
    uint64_t bytes_loading; /* of which LOADING */
    /* The counters; the gauges are filled in by chunkcache_get_stats. */
    struct chunkcache_stats st;
    /* Slow waits (chunkcache_set_wait_limits; the three bounds are set once, before any wait):
     * slow_n in all, and per file in slow_slots[] (max_slow of them, n == 0: free). */
    unsigned slow_ms, max_slow, per_file;
    unsigned slow_n;
    struct slow_slot {
        uint64_t cid_hash;
        unsigned n;
    } *slow_slots;
    /* When a chunk of a file last became READY (CLOCK_MONOTONIC ns), by cid_hash, direct-mapped
     * (a collision only forgets an older file's time): chunkcache_progress_ns. */
    struct progress_slot {
        uint64_t cid_hash, at_ns;
    } progress[PROGRESS_SLOTS];
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
    cc->scan_max = UINT64_MAX;
    /* About one bucket per chunk the budget holds; the table grows if the budget is overshot. */
    cc->nbuckets = next_pow2(budget / chunk_size);
    cc->buckets = calloc(cc->nbuckets, sizeof *cc->buckets);
    if (!cc->buckets)
        goto out;
    if (pthread_mutex_init(&cc->lock, NULL) != 0) {
        rc = -EAGAIN;
        goto out;
    }
    /* Waits end at CLOCK_MONOTONIC deadlines (chunkcache_wait_until). */
    int e = cond_init_monotonic(&cc->done);
    if (e != 0) {
        pthread_mutex_destroy(&cc->lock);
        if (e != -ENOMEM)
            rc = e;
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
    chunkcache_data_free(ch->spare, ch->len);
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
    free(cc->slow_slots);
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

/* Put an unreferenced READY chunk on its list: the scan list if consumed, else the LRU. */
static void lru_push_locked(struct chunkcache *cc, struct chunk *ch)
{
    struct chunk **head = ch->consumed ? &cc->scan_head : &cc->lru_head;
    struct chunk **tail = ch->consumed ? &cc->scan_tail : &cc->lru_tail;

    ch->on_scan = ch->consumed;
    if (ch->on_scan)
        cc->scan_bytes += ch->len;
    ch->lru_prev = NULL;
    ch->lru_next = *head;
    if (*head)
        (*head)->lru_prev = ch;
    else
        *tail = ch;
    *head = ch;
}

static void lru_unlink_locked(struct chunkcache *cc, struct chunk *ch)
{
    struct chunk **head = ch->on_scan ? &cc->scan_head : &cc->lru_head;
    struct chunk **tail = ch->on_scan ? &cc->scan_tail : &cc->lru_tail;

    if (ch->on_scan)
        cc->scan_bytes -= ch->len;
    if (ch->lru_prev)
        ch->lru_prev->lru_next = ch->lru_next;
    else
        *head = ch->lru_next;
    if (ch->lru_next)
        ch->lru_next->lru_prev = ch->lru_prev;
    else
        *tail = ch->lru_prev;
    ch->lru_prev = ch->lru_next = NULL;
    ch->on_scan = false;
}

static void evict_one_locked(struct chunkcache *cc, struct chunk *ch, struct chunk **freed)
{
    lru_unlink_locked(cc, ch);
    table_remove_locked(cc, ch);
    cc->st.evictions++;
    ch->hnext = *freed;
    *freed = ch;
}

/* Evict unreferenced READY chunks until within the budget: the chunks sequential readers read
 * through first, oldest first, then the least recently used. The victims are chained on
 * *freed, to be freed after unlocking. */
static void evict_locked(struct chunkcache *cc, struct chunk **freed)
{
    while (cc->bytes > cc->budget && (cc->scan_tail || cc->lru_tail))
        evict_one_locked(cc, cc->scan_tail ? cc->scan_tail : cc->lru_tail, freed);
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
    /* Past scan_max, the oldest chunk read through goes too, one per chunk made (so its
     * buffer is reused at once). */
    if (cc->scan_bytes > cc->scan_max && cc->scan_tail)
        evict_one_locked(cc, cc->scan_tail, freed);
    /* Reuse a victim's buffer: rewriting memory in use costs far less than touching fresh
     * pages (page faults; on some virtual machines each first touch of a page is a trap). */
    if (len == cc->chunk_size) {
        for (struct chunk *v = *freed; v; v = v->hnext) {
            if (v->len == len && v->data) {
                ch->spare = v->data;
                v->data = NULL;
                cc->st.recycled++;
                break;
            }
        }
    }
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

void chunkcache_set_scan_max(struct chunkcache *cc, uint64_t bytes)
{
    pthread_mutex_lock(&cc->lock);
    cc->scan_max = bytes;
    pthread_mutex_unlock(&cc->lock);
}

char *chunkcache_buffer(struct chunk *ch)
{
    char *b = ch->spare;

    ch->spare = NULL;
    return b ? b : chunkcache_data_alloc(ch->len);
}

void chunkcache_consumed(struct chunkcache *cc, struct chunk *ch)
{
    pthread_mutex_lock(&cc->lock);
    ch->consumed = true;
    pthread_mutex_unlock(&cc->lock);
}

bool chunkcache_present(struct chunkcache *cc, const struct chunk_key *k)
{
    uint64_t h = key_hash(k);

    pthread_mutex_lock(&cc->lock);
    bool found = find_locked(cc, k, h) != NULL;
    pthread_mutex_unlock(&cc->lock);
    return found;
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
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        cc->progress[ch->cid_hash % PROGRESS_SLOTS] = (struct progress_slot){
            .cid_hash = ch->cid_hash,
            .at_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec};
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

uint64_t chunkcache_progress_ns(struct chunkcache *cc, uint64_t cid_hash)
{
    pthread_mutex_lock(&cc->lock);
    const struct progress_slot *p = &cc->progress[cid_hash % PROGRESS_SLOTS];
    uint64_t at = p->cid_hash == cid_hash ? p->at_ns : 0;
    pthread_mutex_unlock(&cc->lock);
    return at;
}

int chunkcache_wait(struct chunkcache *cc, struct chunk *ch)
{
    return chunkcache_wait_until(cc, ch, NULL);
}

int chunkcache_set_wait_limits(struct chunkcache *cc, unsigned slow_ms, unsigned max_slow,
                               unsigned per_file)
{
    struct slow_slot *slots = NULL;

    if (slow_ms && max_slow) {
        slots = calloc(max_slow, sizeof *slots);
        if (!slots)
            return -ENOMEM;
    }
    pthread_mutex_lock(&cc->lock);
    free(cc->slow_slots);
    cc->slow_slots = slots;
    cc->slow_ms = slots ? slow_ms : 0;
    cc->max_slow = slots ? max_slow : 0;
    cc->per_file = per_file && per_file < max_slow ? per_file : max_slow;
    pthread_mutex_unlock(&cc->lock);
    return 0;
}

/* Count a wait on a chunk of file cid_hash as slow; false past the bounds. */
static bool slow_enter_locked(struct chunkcache *cc, uint64_t cid_hash)
{
    struct slow_slot *slot = NULL, *free_slot = NULL;

    if (cc->slow_n >= cc->max_slow)
        return false;
    for (unsigned i = 0; i < cc->max_slow; i++) {
        if (cc->slow_slots[i].n && cc->slow_slots[i].cid_hash == cid_hash)
            slot = &cc->slow_slots[i];
        else if (!cc->slow_slots[i].n && !free_slot)
            free_slot = &cc->slow_slots[i];
    }
    if (slot && slot->n >= cc->per_file)
        return false;
    if (!slot) {
        slot = free_slot; /* fewer than max_slow waits hold slots: one is free */
        slot->cid_hash = cid_hash;
    }
    slot->n++;
    cc->slow_n++;
    return true;
}

static void slow_leave_locked(struct chunkcache *cc, uint64_t cid_hash)
{
    for (unsigned i = 0; i < cc->max_slow; i++) {
        if (cc->slow_slots[i].n && cc->slow_slots[i].cid_hash == cid_hash) {
            cc->slow_slots[i].n--;
            cc->slow_n--;
            return;
        }
    }
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int chunkcache_wait_until(struct chunkcache *cc, struct chunk *ch,
                          const struct timespec *deadline)
{
    struct timespec slow_at = {0};
    bool slow = false;
    int rc;

    if (cc->slow_ms) {
        clock_gettime(CLOCK_MONOTONIC, &slow_at);
        slow_at.tv_sec += cc->slow_ms / 1000;
        slow_at.tv_nsec += (long)(cc->slow_ms % 1000) * 1000000L;
        if (slow_at.tv_nsec >= 1000000000L) {
            slow_at.tv_sec++;
            slow_at.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&cc->lock);
    while (ch->state == ST_LOADING) {
        const struct timespec *until = deadline;
        if (cc->slow_ms && !slow && (!deadline || ts_before(&slow_at, deadline)))
            until = &slow_at;
        ch->waiters++;
        int e = until ? pthread_cond_timedwait(&cc->done, &cc->lock, until)
                      : pthread_cond_wait(&cc->done, &cc->lock);
        ch->waiters--;
        if (e != ETIMEDOUT || ch->state != ST_LOADING)
            continue;
        if (until == deadline) {
            cc->st.waits_timedout++;
            rc = -ETIMEDOUT;
            goto out;
        }
        if (!slow_enter_locked(cc, ch->cid_hash)) {
            cc->st.waits_refused++;
            rc = -EAGAIN;
            goto out;
        }
        slow = true;
    }
    rc = ch->state == ST_READY ? 0 : ch->err;
out:
    if (slow)
        slow_leave_locked(cc, ch->cid_hash);
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

uint64_t chunkcache_cid_hash(const struct chunk *ch)
{
    return ch->cid_hash;
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
    st->bytes_scan = cc->scan_bytes;
    st->slow_waits = cc->slow_n;
    pthread_mutex_unlock(&cc->lock);
}

/* reader.c - see reader.h. */
#include "config.h"

#include "reader.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkcache.h"
#include "log.h"

#define DEFAULT_WORKERS 8
/* Measured against the js-ipfs test node (256 MiB sequential, 8 MiB window): 1 MiB spans gave
 * 250 MB/s, 2 MiB 300-450, 4 MiB 500-540 MB/s, the same as one plain `cat` (per-request cost
 * dominates). A waiter on a span's first chunk waits for the whole span: ~8 ms at that rate. */
#define DEFAULT_SPAN (4u << 20)
/* Chunks one read holds references to at a time; longer reads go in batches. */
#define SYNC_BATCH 16
/* Largest node_read a reading thread makes for the missing run of its own read. */
#define SYNC_SPAN_BYTES (4u << 20)

/* A prefetch job: contiguous chunks of one file, claimed (LOADING, one reference each). */
struct job {
    struct job *next;
    unsigned n;
    struct chunk *ch[];
};

struct reader {
    /* Immutable after reader_new. */
    struct node *node;
    struct chunkcache *cc;
    uint64_t cs;
    uint64_t readahead_max;
    unsigned span_chunks;
    unsigned sync_chunks;
    unsigned queue_max;
    unsigned nthreads;
    pthread_t *threads;

    atomic_uint_fast64_t requests; /* node_read calls */
    atomic_uint_fast64_t errors;   /* of which failed */

    /* qlock guards the job queue and the prefetch counters. It is taken alone or under a
     * handle's lock, never while holding the cache lock, never across a network call. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond; /* a job was queued, or stopping */
    struct job *qhead, *qtail;
    unsigned queued; /* jobs in the queue plus slots reserved for jobs being built */
    bool stopping;
    uint64_t pf_jobs;    /* jobs queued */
    uint64_t pf_dropped; /* times the queue was full and the rest of a window was skipped */
};

struct reader_handle {
    /* Immutable after reader_open. */
    struct reader *r;
    struct cid cid;
    uint64_t cid_hash;
    uint64_t size;

    /* lock guards the sequential detector below; held while claiming and queueing prefetch
     * jobs (cache and queue locks nest inside it), never across a network call. */
    pthread_mutex_t lock;
    bool started;        /* a read was seen */
    uint64_t stream_end; /* end of the furthest read of the current sequential stream */
    uint64_t last_end;   /* end of the latest read */
    uint64_t window;     /* readahead bytes; 0 = none */
    uint64_t pf_next;    /* chunks before this index were already considered for prefetch */
    unsigned randoms;    /* consecutive random reads */
};

/* ---- fetching ------------------------------------------------------------------------------ */

static size_t chunk_len(const struct reader_handle *h, uint64_t idx)
{
    uint64_t start = idx * h->r->cs;
    uint64_t left = h->size - start;

    return (size_t)(left < h->r->cs ? left : h->r->cs);
}

/* Streaming fill of a run of chunks: each chunk is completed (and its waiters woken) as soon as
 * its last byte arrives, so a long range costs the first reader only its first chunk. */
struct fill {
    struct reader *r;
    struct chunk **ch;
    unsigned n, cur; /* chunks, the one being filled */
    char *buf;       /* its buffer */
    size_t have;
};

static int fill_sink(void *ud, const char *data, size_t len)
{
    struct fill *f = ud;
    while (len > 0) {
        if (f->cur >= f->n)
            return -EIO;
        size_t clen = chunkcache_len(f->ch[f->cur]);
        if (!f->buf && !(f->buf = malloc(clen)))
            return -ENOMEM;
        size_t take = clen - f->have < len ? clen - f->have : len;
        memcpy(f->buf + f->have, data, take);
        f->have += take;
        data += take;
        len -= take;
        if (f->have == clen) {
            chunkcache_complete(f->r->cc, f->ch[f->cur], f->buf, 0);
            f->buf = NULL;
            f->have = 0;
            f->cur++;
        }
    }
    return 0;
}

/* Fetch n claimed contiguous chunks of one file with one request, and complete them all (READY
 * or FAILED). The references stay with the caller. Returns 0 or the first -errno. */
static int fetch_run(struct reader *r, struct chunk **ch, unsigned n)
{
    uint64_t off = chunkcache_index(ch[0]) * r->cs;
    uint64_t len = 0;
    int rc;

    for (unsigned i = 0; i < n; i++)
        len += chunkcache_len(ch[i]);
    atomic_fetch_add_explicit(&r->requests, 1, memory_order_relaxed);
    struct fill f = {.r = r, .ch = ch, .n = n};
    if (r->node->ops->read_stream) {
        rc = r->node->ops->read_stream(r->node, chunkcache_cid(ch[0]), off, len, fill_sink, &f);
    } else {
        char *buf = malloc(len);
        ssize_t got = buf ? node_read(r->node, chunkcache_cid(ch[0]), off, len, buf) : -ENOMEM;
        rc = got < 0 ? (int)got : (uint64_t)got != len ? -EIO : fill_sink(&f, buf, len);
        free(buf);
    }
    if (rc == 0 && f.cur != n)
        rc = -EIO;
    if (rc < 0) {
        log_debug("fetch of %" PRIu64 " bytes at %" PRIu64 " failed: %s", len, off,
                  strerror(-rc));
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        free(f.buf);
        for (unsigned i = f.cur; i < n; i++)
            chunkcache_complete(r->cc, ch[i], NULL, rc);
    }
    return rc;
}

/* ---- prefetch workers ---------------------------------------------------------------------- */

static void job_cancel(struct reader *r, struct job *j)
{
    for (unsigned i = 0; i < j->n; i++) {
        chunkcache_complete(r->cc, j->ch[i], NULL, -ECANCELED);
        chunkcache_release(r->cc, j->ch[i]);
    }
    free(j);
}

static void *worker_main(void *arg)
{
    struct reader *r = arg;

    for (;;) {
        struct job *j;

        pthread_mutex_lock(&r->qlock);
        while (!r->qhead && !r->stopping)
            pthread_cond_wait(&r->qcond, &r->qlock);
        if (r->stopping) {
            pthread_mutex_unlock(&r->qlock);
            break;
        }
        j = r->qhead;
        r->qhead = j->next;
        if (!r->qhead)
            r->qtail = NULL;
        r->queued--;
        pthread_mutex_unlock(&r->qlock);

        int rc = fetch_run(r, j->ch, j->n);
        if (rc < 0)
            log_debug("prefetch of %u chunks from %" PRIu64 " failed: %s", j->n,
                      chunkcache_index(j->ch[0]), strerror(-rc));
        for (unsigned i = 0; i < j->n; i++)
            chunkcache_release(r->cc, j->ch[i]);
        free(j);
    }
    return NULL;
}

/* Reserve a queue slot for a job about to be built; false if the queue is full. */
static bool queue_reserve(struct reader *r)
{
    bool ok;

    pthread_mutex_lock(&r->qlock);
    ok = !r->stopping && r->queued < r->queue_max;
    if (ok)
        r->queued++;
    else
        r->pf_dropped++;
    pthread_mutex_unlock(&r->qlock);
    return ok;
}

/* Queue a job into its reserved slot, or give the slot back (j NULL). */
static void queue_push(struct reader *r, struct job *j)
{
    pthread_mutex_lock(&r->qlock);
    if (!j) {
        r->queued--;
    } else {
        j->next = NULL;
        if (r->qtail)
            r->qtail->next = j;
        else
            r->qhead = j;
        r->qtail = j;
        r->pf_jobs++;
        pthread_cond_signal(&r->qcond);
    }
    pthread_mutex_unlock(&r->qlock);
}

/* Queue prefetch jobs for the chunks [from, to) of h that are neither cached nor in flight.
 * Returns the index where it stopped: to, or earlier if the queue or the in-flight budget is
 * full (the rest is left for a later read). */
static uint64_t prefetch(struct reader_handle *h, uint64_t from, uint64_t to)
{
    struct reader *r = h->r;
    struct chunk_key k = {.cid = &h->cid, .cid_hash = h->cid_hash};
    uint64_t i = from;
    bool full = false;

    while (i < to && !full) {
        struct job *j;

        if (!queue_reserve(r))
            break;
        j = malloc(sizeof *j + r->span_chunks * sizeof j->ch[0]);
        if (!j) {
            queue_push(r, NULL);
            break;
        }
        j->n = 0;
        while (i < to && j->n < r->span_chunks) {
            struct chunk *ch;
            k.index = i;
            int rc = chunkcache_claim(r->cc, &k, chunk_len(h, i), &ch);
            if (rc == -EEXIST) {
                i++;
                if (j->n)
                    break; /* a job is one contiguous run */
                continue;
            }
            if (rc < 0) {
                full = true;
                break;
            }
            j->ch[j->n++] = ch;
            i++;
        }
        if (j->n) {
            queue_push(r, j);
        } else {
            queue_push(r, NULL);
            free(j);
        }
    }
    return i;
}

/* ---- the sequential detector --------------------------------------------------------------- */

/* Within one chunk of the expected offset, either way. */
static bool near(uint64_t off, uint64_t expect, uint64_t cs)
{
    return off + cs >= expect && off <= expect + cs;
}

static uint64_t grow(const struct reader *r, uint64_t window, size_t size)
{
    uint64_t need = (size + r->cs - 1) / r->cs * r->cs;
    uint64_t w = window ? window * 2 : r->cs;

    if (w < need)
        w = need;
    return w < r->readahead_max ? w : r->readahead_max;
}

/* Classify the read [off, off + size) (within the file), update the window and queue what it
 * asks for. */
static void detect(struct reader_handle *h, uint64_t off, size_t size)
{
    struct reader *r = h->r;
    uint64_t end = off + size;
    uint64_t cs = r->cs;

    pthread_mutex_lock(&h->lock);
    if (!h->started) {
        h->started = true;
        h->stream_end = h->last_end = end;
        goto out;
    }
    if (near(off, h->stream_end, cs)) {
        h->randoms = 0;
        h->window = grow(r, h->window, size);
        if (end > h->stream_end)
            h->stream_end = end;
    } else if (near(off, h->last_end, cs)) {
        /* The previous read, a random one, started a new stream: this is its first hit. */
        h->randoms = 0;
        h->window = grow(r, 0, size);
        h->stream_end = end;
        h->pf_next = 0;
    } else {
        if (++h->randoms >= 2) {
            h->window = 0;
            h->pf_next = 0;
        }
        h->last_end = end;
        goto out;
    }
    h->last_end = end;

    uint64_t target = h->stream_end + h->window;
    if (target > h->size)
        target = h->size;
    if (!r->nthreads || target <= h->stream_end)
        goto out;
    uint64_t nchunks = (h->size + cs - 1) / cs;
    uint64_t from = h->stream_end / cs;
    uint64_t to = (target + cs - 1) / cs;
    uint64_t wchunks = (h->window + cs - 1) / cs;
    if (from < h->pf_next)
        from = h->pf_next;
    /* Wait until a whole span (or the whole window, if smaller, or the end of the file) is due,
     * so that requests are large rather than one chunk each time the reads move by one. */
    if (to > from &&
        (to - from >= (wchunks < r->span_chunks ? wchunks : r->span_chunks) || to == nchunks))
        h->pf_next = prefetch(h, from, to);
out:
    pthread_mutex_unlock(&h->lock);
}

/* ---- reads --------------------------------------------------------------------------------- */

/* Get chunk idx READY with a reference, fetching it or waiting for it. A failed or cancelled
 * prefetch is retried once by fetching here; any other failure is returned. */
static int get_ready(struct reader_handle *h, uint64_t idx, struct chunk **out)
{
    struct reader *r = h->r;
    struct chunk_key k = {.cid = &h->cid, .cid_hash = h->cid_hash, .index = idx};

    *out = NULL;
    for (int attempt = 0;; attempt++) {
        struct chunk *ch;
        int rc = chunkcache_get(r->cc, &k, chunk_len(h, idx), &ch);
        if (rc < 0)
            return rc;
        if (rc == CHUNK_CLAIMED)
            fetch_run(r, &ch, 1);
        rc = rc == CHUNK_READY ? 0 : chunkcache_wait(r->cc, ch);
        if (rc == 0) {
            *out = ch;
            return 0;
        }
        bool retry = chunkcache_advisory(ch) && attempt == 0;
        chunkcache_release(r->cc, ch);
        if (!retry)
            return rc;
    }
}

/* Copy the part of [off, off + size) that chunks first .. first + n - 1 cover into buf (which
 * holds the bytes from off). */
static int read_batch(struct reader_handle *h, uint64_t first, unsigned n, uint64_t off,
                      size_t size, char *buf)
{
    struct reader *r = h->r;
    struct chunk_key k = {.cid = &h->cid, .cid_hash = h->cid_hash};
    struct chunk *ch[SYNC_BATCH] = {NULL};
    int st[SYNC_BATCH];
    unsigned got = 0;
    int rc = 0;

    for (; got < n; got++) {
        k.index = first + got;
        st[got] = chunkcache_get(r->cc, &k, chunk_len(h, first + got), &ch[got]);
        if (st[got] < 0) {
            rc = st[got];
            break;
        }
    }
    /* Our own missing chunks: each contiguous run in one request. They must be completed even
     * if this read already failed, or their waiters would wait for ever. */
    for (unsigned i = 0; i < got;) {
        unsigned j = i;
        if (st[i] != CHUNK_CLAIMED) {
            i++;
            continue;
        }
        while (j < got && st[j] == CHUNK_CLAIMED && j - i < r->sync_chunks)
            j++;
        int e = fetch_run(r, &ch[i], j - i);
        if (e < 0 && rc == 0)
            rc = e;
        for (; i < j; i++)
            st[i] = CHUNK_LOADING; /* completed: chunkcache_wait returns at once */
    }
    for (unsigned i = 0; i < got && rc == 0; i++) {
        if (st[i] == CHUNK_READY)
            continue;
        rc = chunkcache_wait(r->cc, ch[i]);
        if (rc < 0 && chunkcache_advisory(ch[i])) {
            chunkcache_release(r->cc, ch[i]);
            rc = get_ready(h, first + i, &ch[i]);
        }
    }
    for (unsigned i = 0; i < got && rc == 0; i++) {
        uint64_t cstart = (first + i) * r->cs;
        uint64_t from = off > cstart ? off : cstart;
        uint64_t cend = cstart + chunkcache_len(ch[i]);
        uint64_t to = off + size < cend ? off + size : cend;
        if (chunkcache_len(ch[i]) != chunk_len(h, first + i)) {
            /* The same CID opened with two different sizes: the node is inconsistent. */
            log_warn("chunk %" PRIu64 " has %zu bytes, expected %zu", first + i,
                     chunkcache_len(ch[i]), chunk_len(h, first + i));
            rc = -EIO;
            break;
        }
        memcpy(buf + (from - off), chunkcache_data(ch[i]) + (from - cstart), (size_t)(to - from));
    }
    for (unsigned i = 0; i < got; i++)
        chunkcache_release(r->cc, ch[i]);
    return rc;
}

ssize_t reader_read(struct reader_handle *h, uint64_t off, size_t size, char *buf)
{
    struct reader *r = h->r;
    uint64_t first, last;

    if (off >= h->size || size == 0)
        return 0;
    if (size > h->size - off)
        size = (size_t)(h->size - off);
    if (size > SSIZE_MAX)
        size = SSIZE_MAX;
    detect(h, off, size);
    first = off / r->cs;
    last = (off + size - 1) / r->cs;
    for (uint64_t b = first; b <= last; b += SYNC_BATCH) {
        uint64_t left = last - b + 1;
        int rc = read_batch(h, b, left < SYNC_BATCH ? (unsigned)left : SYNC_BATCH, off, size, buf);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)size;
}

/* ---- handles ------------------------------------------------------------------------------- */

struct reader_handle *reader_open(struct reader *r, const struct cid *c, uint64_t filesize)
{
    struct reader_handle *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return NULL;
    }
    h->r = r;
    h->cid = *c;
    h->cid_hash = cid_hash(c);
    h->size = filesize;
    return h;
}

void reader_close(struct reader_handle *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- the reader ---------------------------------------------------------------------------- */

static void stop_workers(struct reader *r)
{
    struct job *j;

    pthread_mutex_lock(&r->qlock);
    r->stopping = true;
    pthread_cond_broadcast(&r->qcond);
    pthread_mutex_unlock(&r->qlock);
    for (unsigned i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    r->nthreads = 0;
    /* Nobody reads any more, but the chunks must leave the LOADING state before the cache goes. */
    while ((j = r->qhead)) {
        r->qhead = j->next;
        job_cancel(r, j);
    }
    r->qtail = NULL;
    r->queued = 0;
}

int reader_new(struct node *node, const struct reader_config *cfg, struct reader **out)
{
    struct reader *r;
    unsigned workers = cfg->workers ? cfg->workers : DEFAULT_WORKERS;
    size_t span = cfg->span_bytes ? cfg->span_bytes : DEFAULT_SPAN;
    int rc;

    *out = NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->node = node;
    rc = chunkcache_new(cfg->cache_bytes, cfg->chunk_size, &r->cc);
    if (rc < 0) {
        free(r);
        return rc;
    }
    if (pthread_mutex_init(&r->qlock, NULL) != 0) {
        chunkcache_free(r->cc);
        free(r);
        return -EAGAIN;
    }
    if (pthread_cond_init(&r->qcond, NULL) != 0) {
        pthread_mutex_destroy(&r->qlock);
        chunkcache_free(r->cc);
        free(r);
        return -EAGAIN;
    }
    r->cs = chunkcache_chunk_size(r->cc);
    /* In flight is capped at half the cache; a window of a quarter leaves room for what was
     * prefetched but not yet read, so it is not evicted before its read comes. */
    r->readahead_max = cfg->readahead_max;
    if (r->readahead_max > chunkcache_budget(r->cc) / 4)
        r->readahead_max = chunkcache_budget(r->cc) / 4;
    r->span_chunks = (unsigned)(span / r->cs ? (span / r->cs < 1024 ? span / r->cs : 1024) : 1);
    r->sync_chunks = (unsigned)(SYNC_SPAN_BYTES / r->cs);
    if (r->sync_chunks < 1)
        r->sync_chunks = 1;
    if (r->sync_chunks > SYNC_BATCH)
        r->sync_chunks = SYNC_BATCH;
    r->queue_max = cfg->queue_max ? cfg->queue_max : 4 * workers;
    if (r->readahead_max == 0)
        workers = 0; /* nothing to prefetch */
    if (workers) {
        r->threads = calloc(workers, sizeof *r->threads);
        if (!r->threads) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (; r->nthreads < workers; r->nthreads++) {
        int e = pthread_create(&r->threads[r->nthreads], NULL, worker_main, r);
        if (e) {
            log_err("cannot start a fetch worker: %s", strerror(e));
            rc = -e;
            goto out;
        }
    }
    *out = r;
    return 0;
out:
    reader_free(r);
    return rc;
}

void reader_free(struct reader *r)
{
    if (!r)
        return;
    stop_workers(r);
    free(r->threads);
    pthread_cond_destroy(&r->qcond);
    pthread_mutex_destroy(&r->qlock);
    chunkcache_free(r->cc);
    free(r);
}

int reader_stats(struct reader *r, char *buf, size_t len)
{
    struct chunkcache_stats st;
    uint64_t jobs, dropped;

    chunkcache_get_stats(r->cc, &st);
    pthread_mutex_lock(&r->qlock);
    jobs = r->pf_jobs;
    dropped = r->pf_dropped;
    pthread_mutex_unlock(&r->qlock);
    return snprintf(buf, len,
                    "cache_hits %" PRIu64 "\n"
                    "cache_misses %" PRIu64 "\n"
                    "cache_waits %" PRIu64 "\n"
                    "cache_evictions %" PRIu64 "\n"
                    "cache_chunks %" PRIu64 "\n"
                    "cache_bytes %" PRIu64 "\n"
                    "cache_bytes_loading %" PRIu64 "\n"
                    "cache_budget %zu\n"
                    "cache_bytes_fetched %" PRIu64 "\n"
                    "cache_chunks_failed %" PRIu64 "\n"
                    "fetch_requests %" PRIu64 "\n"
                    "fetch_errors %" PRIu64 "\n"
                    "prefetch_chunks %" PRIu64 "\n"
                    "prefetch_jobs %" PRIu64 "\n"
                    "prefetch_dropped %" PRIu64 "\n",
                    st.hits, st.misses, st.waits, st.evictions, st.chunks, st.bytes_cached,
                    st.bytes_loading, chunkcache_budget(r->cc), st.bytes_fetched, st.failed,
                    (uint64_t)atomic_load(&r->requests), (uint64_t)atomic_load(&r->errors),
                    st.prefetches, jobs, dropped);
}

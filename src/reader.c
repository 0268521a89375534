/* reader.c - see reader.h.
 *
 * What --timeout bounds (the rule; the man page says the same):
 *
 * - A read(2) waits at most --timeout for its bytes. Its deadline starts when the read reaches
 *   reader_read; the chunks it needs are copied from the cache, waited for (when another thread
 *   fetches them) or fetched by the reading thread itself, and at the deadline it stops doing any
 *   of these and fails with ETIMEDOUT. Each chunk of the file that arrives meanwhile moves the
 *   deadline to --timeout after it, up to EXTEND_MAX times --timeout in all (extend_deadline):
 *   a slow but steady node is read, not cut. Whatever else the node does (no answer, headers
 *   sent slowly, a stall half way, a trickle of a byte now and then, a body that never ends),
 *   the read returns within --timeout of the last chunk that came, plus about one second (the
 *   heartbeat of a transfer, see rpc.h).
 * - A fetch that its reader gave up is failed, not finished: its chunks fail (ETIME inside), and
 *   the other reads that waited for them fetch them again, each within its own deadline.
 * - A read that timed out after waiting at least 1 s (or half of --timeout, if less) is
 *   remembered for TIMEOUT_HOLD_MS, on its handle and for every handle of the file (hold_all):
 *   a read of the same chunks in that time fails at once. The kernel follows a failed readahead
 *   with a read of the one page the program wants, inside the same read(2), and lets one
 *   program at a time try a page; without this, one read(2) would wait twice --timeout, and N
 *   programs reading one missing chunk N timeouts.
 * - Background fetches (readahead spans and streams) have no deadline of their own: a read that
 *   needs one of their chunks waits for it within its own deadline. The transport bounds them:
 *   each 256 KiB must arrive within --timeout (RPC_PROGRESS_BYTES), so a trickle ends them after
 *   about one --timeout and cannot hold a worker for longer.
 * - Every other request (lookup, stat, listings, MFS calls) has a total deadline of --timeout
 *   (rpc.c: the node is told so, and the connection is cut 0.5 s later).
 * - Uploads (close(2) of a written file) are long transfers: they fail when less than 256 KiB
 *   moved within --timeout.
 * - Waiting threads are bounded: a request that the node has not answered after 1 s is a wait,
 *   at most 16 at once and 4 for one CID or path (rpc.c); a read that has waited 1 s for a chunk
 *   that another thread fetches is a slow wait, at most 32 at once and 8 on one file (here).
 *   Past these bounds the call fails at once with EAGAIN, so that missing or slow content never
 *   takes every FUSE thread (64) while other content is read.
 */
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
#include <time.h>

#include "chunkcache.h"
#include "clock.h"
#include "dagpb.h"
#include "log.h"
#include "sha256.h"

#define DEFAULT_WORKERS 8
/* Measured against the js-ipfs test node (256 MiB sequential, 8 MiB window): 1 MiB spans gave
 * 250 MB/s, 2 MiB 300-450, 4 MiB 500-540 MB/s, the same as one plain `cat` (per-request cost
 * dominates). A waiter on a span's first chunk waits for the whole span: ~8 ms at that rate. */
#define DEFAULT_SPAN (4u << 20)
/* Chunks one read holds references to at a time; longer reads go in batches. */
#define SYNC_BATCH 16
/* Largest node_read a reading thread makes for the missing run of its own read. */
#define SYNC_SPAN_BYTES (4u << 20)
/* A handle whose window reached this (or readahead_max, if smaller) streams (see below): long,
 * growing requests instead of a span each. The js-ipfs node spends ~2 ms CPU per request and is
 * single-threaded: 4 MiB spans cost it ~0.95-1.1 CPU s per 256 MiB, a stream ~0.7 s, as a plain
 * `cat` does. */
#define STREAM_MIN_WINDOW (1u << 20)
/* A stream whose reader claims nothing new for this long gives up its request (the reader
 * paused or went away); the next sequential read starts another. Well below any --timeout, so
 * the stall detection never sees our own wait (rpc.c restarts its clock after the sink). */
#define STREAM_PAUSE_MS 1000
/* A stream's requests: the first is a span, each next one twice the previous, up to this. The
 * js-ipfs node ignores backpressure: once asked for a range it reads all of it, even after we
 * abort, so a request is never longer than the bytes the stream already delivered (what an
 * abort wastes stays below what was read) nor than this. */
#define STREAM_MAX_SEGMENT (32u << 20)
#define DEFAULT_TIMEOUT_MS 30000u
/* A wait for a chunk in flight that lasts this long is slow (see chunkcache_set_wait_limits). */
#define SLOW_WAIT_MS 1000u
#define DEFAULT_MAX_SLOW_WAITS 32u
#define DEFAULT_MAX_SLOW_WAITS_PER_FILE 8u
/* Inside: a fetch given up at its reader's deadline. Its waiters retry (while their own
 * deadlines allow); a reader sees -ETIMEDOUT. */
#define ERR_ABANDONED (-ETIME)
/* See the rule above: how long a timed-out read makes reads of its chunks fail at once. */
#define TIMEOUT_HOLD_MS 2000u
/* The chunks sequential readers read through that the cache keeps (reader.h, scan_keep), at
 * least: reads that the kernel sends out of order still find them. */
#define DEFAULT_SCAN_KEEP (4u << 20)
/* Small random reads (see "direct reads" below): reads up to chunk_size / DIRECT_DIV bytes. */
#define DIRECT_DIV 4u
/* The DAG map: its share of the cache budget (1/DAG_BUDGET_DIV), blocks fetched at once, the
 * largest internal block kept, how deep a walk goes. */
#define DAG_BUDGET_DIV 16u
#define DAG_MAX_LOADING 2u
#define DAG_MAX_BLOCK (1u << 20)
#define DAG_MAX_DEPTH 16
#define DAG_BUCKETS 1024u
/* Only files larger than this get their root fetched (smaller ones are one or a few leaves). */
#define DAG_MIN_FILE (1u << 20)
/* A dag-pb child whose link size (Tsize) exceeds its bytes by less than this is a leaf: the
 * protobuf framing of one leaf is ~20 bytes, an internal node adds ~40 bytes per child. */
#define DAG_LEAF_SLACK 64u

struct stream;
struct dnode;

/* A prefetch job: contiguous chunks of one file, claimed (LOADING, one reference each); or a
 * stream (n == 0). */
struct job {
    struct job *next;
    struct stream *stream;
    struct dnode *dn; /* a DAG map block to fetch (n == 0) */
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
    unsigned timeout_ms;
    unsigned nthreads;
    pthread_t *threads;

    unsigned max_streams;            /* streams at once; 0: none (no read_stream, 1 worker) */
    atomic_bool halt;                /* reader_free: running streams stop at their next bytes */
    atomic_uint_fast64_t requests;   /* node_read calls */
    atomic_uint_fast64_t errors;     /* of which failed */
    atomic_uint_fast64_t st_started; /* streams started */
    atomic_uint_fast64_t st_cancels; /* streams that ended before the end of the file */
    atomic_uint_fast64_t st_skipped; /* bytes a stream received for chunks it had not claimed */
    atomic_uint_fast64_t st_wait_us; /* time streams waited for their readers' claims */

    /* qlock guards the job queue and the prefetch counters. It is taken alone, under a
     * handle's lock or under dlock, never while holding the cache lock, never across a
     * network call. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond; /* a job was queued, or stopping */
    struct job *qhead, *qtail;
    unsigned queued;  /* jobs in the queue plus slots reserved for jobs being built */
    unsigned streams; /* streams queued or running */
    bool stopping;
    uint64_t pf_jobs;    /* jobs queued */
    uint64_t pf_dropped; /* times the queue was full and the rest of a window was skipped */
    /* qlock also guards held[] and held_next: chunk ranges of a file whose read waited out
     * --timeout, shared by every handle for TIMEOUT_HOLD_MS (hold_all). */
    struct {
        uint64_t cid_hash, first, last;
        struct timespec until;
    } held[8];
    unsigned held_next;

    /* Direct reads (small random reads, straight from the node into the reader's buffer) and
     * the DAG map they use (see "direct reads" below). */
    size_t direct_max;                /* immutable: largest direct read; 0: none */
    atomic_uint_fast64_t direct;      /* direct reads */
    atomic_uint_fast64_t direct_deep; /* of which asked below the file's root */
    atomic_uint_fast64_t dag_fetches; /* blocks fetched for the map */
    atomic_uint_fast64_t dag_failed;  /* of which failed or unusable */
    /* dlock guards the map: dbuckets, dlru_*, dmem, dloading and the dnodes' mutable fields.
     * Taken with no other lock held (qlock nests inside it), never across a network call. */
    pthread_mutex_t dlock;
    struct dnode **dbuckets; /* DAG_BUCKETS chains */
    struct dnode *dlru_head, *dlru_tail; /* READY and BAD nodes, most recently used first */
    size_t dmem, dbudget; /* bytes held by the map, its bound (immutable) */
    unsigned dloading;    /* nodes being fetched */
};

struct reader_handle {
    /* Immutable after reader_open. */
    struct reader *r;
    struct cid cid;
    uint64_t cid_hash;
    uint64_t size;

    /* lock guards the sequential detector below, refs, stream and the stream's claim
     * ring; held while claiming and queueing prefetch jobs (cache and queue locks nest inside
     * it), never across a network call. */
    pthread_mutex_t lock;
    pthread_cond_t cond;   /* the stream got new claims, or must stop */
    unsigned refs;         /* reader_open's, plus one while a stream is queued or running */
    struct stream *stream; /* the handle's stream, queued or running; NULL: none */
    bool started;          /* a read was seen */
    uint64_t stream_end;   /* end of the furthest read of the current sequential stream */
    uint64_t last_end;     /* end of the latest read */
    uint64_t window;       /* readahead bytes; 0 = none */
    uint64_t pf_next;      /* chunks before this index were already considered for prefetch */
    unsigned randoms;      /* consecutive random reads */
    /* The chunks of the last read that timed out, and until when reads of them fail at once
     * (tv_sec 0: none). */
    uint64_t to_first, to_last;
    struct timespec to_until;
};

/* ---- deadlines ----------------------------------------------------------------------------- */

static void deadline_in(struct timespec *t, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool deadline_passed(const struct timespec *t)
{
    struct timespec now;

    if (!t)
        return false;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* The read waited long for its timeout: half of timeout_ms, or 1 s if that is less, has gone
 * since the deadline was set timeout_ms ahead. */
static bool waited_long(const struct timespec *deadline, unsigned timeout_ms)
{
    struct timespec half = *deadline;
    unsigned wait_ms = timeout_ms / 2 < 1000 ? timeout_ms / 2 : 1000;
    unsigned back_ms = timeout_ms - wait_ms; /* the time the deadline lies after that point */
    long ns = (long)(back_ms % 1000) * 1000000L;

    half.tv_sec -= back_ms / 1000;
    half.tv_nsec -= ns;
    if (half.tv_nsec < 0) {
        half.tv_sec--;
        half.tv_nsec += 1000000000L;
    }
    return deadline_passed(&half);
}

/* A read whose bytes keep coming is not cut at its first deadline: the node may be slow but
 * steady (a rare CID that bitswap brings at 100 KB/s), and the kernel asks for its readahead
 * window (1 MiB and more) in reads as large, which at such a rate need longer than --timeout
 * even when every 256 KiB comes well within it. So each chunk of the file that becomes READY
 * (through this read's fetch, or a stream's or prefetch's it waits for) moves the read's
 * deadline to --timeout after that moment, as the transport bounds streams; a stall still
 * ends the read one --timeout after the last chunk, a trickle too (a chunk is 256 KiB), and
 * no read waits longer than EXTEND_MAX times --timeout in all. The reading thread's own
 * context, so that the fetch paths reach it without a parameter of their own. */
#define EXTEND_MAX 4u

struct read_ext {
    struct timespec *deadline; /* the read's (reader_read's local) */
    struct timespec cap;       /* the latest it may be moved to */
    unsigned ms;               /* --timeout */
};

static __thread struct read_ext *tl_ext;

/* Move the current read's deadline (if d is it) to --timeout after the file's last chunk
 * that became READY, within its cap. Whether it moved. */
static bool extend_deadline(struct reader *r, uint64_t cid_hash, const struct timespec *d)
{
    struct read_ext *x = tl_ext;
    if (!x || !d || d != x->deadline)
        return false;
    uint64_t at = chunkcache_progress_ns(r->cc, cid_hash);
    if (!at)
        return false;
    at += (uint64_t)x->ms * 1000000u;
    struct timespec t = {.tv_sec = (time_t)(at / 1000000000u),
                         .tv_nsec = (long)(at % 1000000000u)};
    if (t.tv_sec > x->cap.tv_sec || (t.tv_sec == x->cap.tv_sec && t.tv_nsec > x->cap.tv_nsec))
        t = x->cap;
    if (t.tv_sec < x->deadline->tv_sec ||
        (t.tv_sec == x->deadline->tv_sec && t.tv_nsec <= x->deadline->tv_nsec))
        return false;
    *x->deadline = t;
    return true;
}

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
    const struct timespec *deadline; /* the reader's, or NULL (a prefetch) */
};

static int fill_sink(void *ud, const char *data, size_t len)
{
    struct fill *f = ud;
    /* Called with bytes, and with heartbeats (len 0) while the node sends nothing. */
    if (deadline_passed(f->deadline))
        return ERR_ABANDONED;
    while (len > 0) {
        if (f->cur >= f->n)
            return -EIO;
        size_t clen = chunkcache_len(f->ch[f->cur]);
        if (!f->buf && !(f->buf = chunkcache_buffer(f->ch[f->cur])))
            return -ENOMEM;
        size_t take = clen - f->have < len ? clen - f->have : len;
        memcpy(f->buf + f->have, data, take);
        f->have += take;
        data += take;
        len -= take;
        if (f->have == clen) {
            struct chunk *done = f->ch[f->cur];
            chunkcache_complete(f->r->cc, done, f->buf, 0);
            extend_deadline(f->r, chunkcache_cid_hash(done), f->deadline);
            f->buf = NULL;
            f->have = 0;
            f->cur++;
        }
    }
    return 0;
}

/* Fetch n claimed contiguous chunks of one file with one request, and complete them all (READY
 * or FAILED). The references stay with the caller. With a deadline (a reader's own fetch), the
 * request is given up when it passes (ERR_ABANDONED; only a node with read_stream can be left
 * half way). Returns 0 or the first -errno. */
static int fetch_run(struct reader *r, struct chunk **ch, unsigned n,
                     const struct timespec *deadline)
{
    uint64_t off = chunkcache_index(ch[0]) * r->cs;
    uint64_t len = 0;
    int rc;

    for (unsigned i = 0; i < n; i++)
        len += chunkcache_len(ch[i]);
    atomic_fetch_add_explicit(&r->requests, 1, memory_order_relaxed);
    struct fill f = {.r = r, .ch = ch, .n = n, .deadline = deadline};
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
        log_debug("fetch of %" PRIu64 " bytes at %" PRIu64 " failed: %s", len, off, strerror(-rc));
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        if (f.buf)
            chunkcache_data_free(f.buf, chunkcache_len(ch[f.cur]));
        for (unsigned i = f.cur; i < n; i++)
            chunkcache_complete(r->cc, ch[i], NULL, rc);
    }
    return rc;
}

/* ---- prefetch workers ---------------------------------------------------------------------- */

static void stream_finish(struct reader *r, struct stream *st, int rc);
static void stream_run(struct reader *r, struct stream *st);

static void dag_cancel(struct reader *r, struct dnode *dn);
static void dag_fetch(struct reader *r, struct dnode *dn);

static void job_cancel(struct reader *r, struct job *j)
{
    if (j->stream)
        stream_finish(r, j->stream, -ECANCELED);
    if (j->dn)
        dag_cancel(r, j->dn);
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

        if (j->stream) {
            stream_run(r, j->stream);
            free(j);
            continue;
        }
        if (j->dn) {
            dag_fetch(r, j->dn);
            free(j);
            continue;
        }
        int rc = fetch_run(r, j->ch, j->n, NULL);
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
        j->stream = NULL;
        j->dn = NULL;
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

/* ---- streams ------------------------------------------------------------------------------- */

/* A stream reads a file from its first chunk towards the end in ranged requests made back to
 * back by one worker, each twice as long as the one before (STREAM_MAX_SEGMENT at most). Its
 * chunks are claimed ahead of the bytes, only as far as the handle's window reaches (the reads
 * extend the claims in detect()), into a ring: slot i % cap holds chunk i's claim, or NULL when
 * chunk i was cached or in flight already (its bytes are then dropped). The sink completes each
 * claimed chunk as its last byte arrives. When the bytes reach an unclaimed chunk, the sink waits
 * until the reader moves on, and the next request is made only once the reader's window reaches
 * it; after STREAM_PAUSE_MS without a new claim, or when cancelled, the stream ends. So a stream
 * keeps at most a window of chunks claimed or unread, like the span jobs, whatever the length of
 * its requests. */
struct stream {
    /* Immutable after stream_start. */
    struct reader_handle *h; /* holds one of h's references */
    uint64_t start;          /* first chunk */
    unsigned cap;            /* ring slots */
    struct chunk **ring;

    /* Guarded by h->lock. */
    uint64_t fill;    /* chunks before this were handed to the sink */
    uint64_t claimed; /* chunks [fill, claimed) are in the ring */
    bool cancel;      /* stop at the next bytes */
    bool done;        /* the request ended: claim nothing more */

    /* The sink's own (the worker thread's), no lock. */
    uint64_t cur;      /* chunk the bytes go to */
    bool open;         /* cur was taken from the ring */
    struct chunk *ch;  /* cur's claim, or NULL: drop its bytes */
    char *buf;         /* its buffer */
    size_t clen, have; /* its length, bytes received */
    unsigned skip_run; /* consecutive chunks taken unclaimed */
};

static void handle_unref(struct reader_handle *h);

static void stream_cancel_locked(struct reader_handle *h)
{
    if (h->stream && !h->stream->cancel) {
        h->stream->cancel = true;
        pthread_cond_broadcast(&h->cond);
    }
}

/* Claim chunks [st->claimed, to) for the stream, as far as its ring and the in-flight budget
 * allow (h->lock held). */
static void stream_extend_locked(struct reader_handle *h, struct stream *st, uint64_t to)
{
    struct reader *r = h->r;
    struct chunk_key k = {.cid = &h->cid, .cid_hash = h->cid_hash};
    bool added = false;

    while (st->claimed < to && st->claimed - st->fill < st->cap) {
        struct chunk *ch = NULL;
        k.index = st->claimed;
        int rc = chunkcache_claim(r->cc, &k, chunk_len(h, st->claimed), &ch);
        if (rc < 0 && rc != -EEXIST)
            break; /* -ENOSPC: the next read tries again */
        st->ring[st->claimed % st->cap] = ch;
        st->claimed++;
        added = true;
    }
    if (added)
        pthread_cond_broadcast(&h->cond);
}

/* Start a stream at the first chunk of [from, to) that is neither cached nor in flight, with
 * claims up to to (h->lock held). Returns false when no stream may start now (all slots busy,
 * nothing to claim, no memory): the caller falls back to span jobs. */
static bool stream_start_locked(struct reader_handle *h, uint64_t from, uint64_t to)
{
    struct reader *r = h->r;
    struct chunk_key k = {.cid = &h->cid, .cid_hash = h->cid_hash};
    struct stream *st = NULL;
    struct job *j = NULL;
    struct chunk *first = NULL;
    bool ok;

    pthread_mutex_lock(&r->qlock);
    ok = !r->stopping && r->streams < r->max_streams && r->queued < r->queue_max;
    if (ok) {
        r->streams++;
        r->queued++;
    }
    pthread_mutex_unlock(&r->qlock);
    if (!ok)
        return false;
    unsigned cap = (unsigned)((r->readahead_max + r->cs - 1) / r->cs) + 2;
    st = calloc(1, sizeof *st);
    j = calloc(1, sizeof *j);
    if (st)
        st->ring = calloc(cap, sizeof *st->ring);
    if (!st || !j || !st->ring)
        goto fail;
    for (; from < to; from++) {
        k.index = from;
        int rc = chunkcache_claim(r->cc, &k, chunk_len(h, from), &first);
        if (rc == 0)
            break;
        if (rc != -EEXIST)
            goto fail;
    }
    if (!first)
        goto fail;
    st->h = h;
    st->cap = cap;
    st->start = st->fill = st->cur = from;
    st->ring[from % cap] = first;
    st->claimed = from + 1;
    stream_extend_locked(h, st, to);
    h->refs++;
    h->stream = st;
    j->stream = st;
    atomic_fetch_add_explicit(&r->st_started, 1, memory_order_relaxed);
    queue_push(r, j);
    return true;
fail:
    if (st)
        free(st->ring);
    free(st);
    free(j);
    pthread_mutex_lock(&r->qlock);
    r->streams--;
    r->queued--;
    pthread_mutex_unlock(&r->qlock);
    return false;
}

/* Wait until the stream's next chunk is claimed (or known not to be needed), bounded by
 * STREAM_PAUSE_MS. If take, hand its slot to the sink. 0 or -ECANCELED. */
static int stream_next(struct stream *st, bool take)
{
    struct reader_handle *h = st->h;
    struct timespec deadline;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    struct timespec t0 = deadline;
    bool waited = false;
    deadline.tv_sec += STREAM_PAUSE_MS / 1000;
    deadline.tv_nsec += (long)(STREAM_PAUSE_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->lock);
    for (;;) {
        if (st->cancel || atomic_load_explicit(&h->r->halt, memory_order_relaxed)) {
            rc = -ECANCELED;
            break;
        }
        if (st->fill < st->claimed) {
            if (take) {
                st->ch = st->ring[st->fill % st->cap];
                st->ring[st->fill % st->cap] = NULL;
                st->fill++;
            }
            break;
        }
        waited = true;
        if (pthread_cond_timedwait(&h->cond, &h->lock, &deadline) == ETIMEDOUT &&
            st->fill == st->claimed) {
            rc = -ECANCELED; /* the reader paused: give the request up */
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (waited) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        atomic_fetch_add_explicit(&h->r->st_wait_us, (uint64_t)(us > 0 ? us : 0),
                                  memory_order_relaxed);
    }
    return rc;
}

static int stream_sink(void *ud, const char *data, size_t len)
{
    struct stream *st = ud;
    struct reader_handle *h = st->h;
    struct reader *r = h->r;

    while (len > 0) {
        if (!st->open) {
            if (st->cur * r->cs >= h->size)
                return -EIO; /* more than the file */
            int rc = stream_next(st, true);
            if (rc < 0)
                return rc;
            st->open = true;
            st->clen = chunk_len(h, st->cur);
            st->have = 0;
            st->skip_run = st->ch ? 0 : st->skip_run + 1;
            /* A window of chunks in a row that others fetched: another stream reads the same
             * bytes ahead of this one. Give up; the reads follow that one. */
            if (st->skip_run > st->cap)
                return -ECANCELED;
        }
        size_t take = st->clen - st->have < len ? st->clen - st->have : len;
        if (st->ch) {
            if (!st->buf && !(st->buf = chunkcache_buffer(st->ch)))
                return -ENOMEM;
            memcpy(st->buf + st->have, data, take);
        } else {
            atomic_fetch_add_explicit(&r->st_skipped, take, memory_order_relaxed);
        }
        st->have += take;
        data += take;
        len -= take;
        if (st->have == st->clen) {
            if (st->ch) {
                chunkcache_complete(r->cc, st->ch, st->buf, 0);
                chunkcache_release(r->cc, st->ch);
                st->ch = NULL;
                st->buf = NULL;
            }
            st->open = false;
            st->cur++;
        }
    }
    return 0;
}

/* End a stream whose request returned rc (or never ran): fail what it still holds, detach it
 * from its handle, free it. */
static void stream_finish(struct reader *r, struct stream *st, int rc)
{
    struct reader_handle *h = st->h;
    int err = rc < 0 ? rc : -ECANCELED;

    if (st->ch) {
        chunkcache_complete(r->cc, st->ch, NULL, err);
        chunkcache_release(r->cc, st->ch);
    }
    chunkcache_data_free(st->buf, st->clen);
    pthread_mutex_lock(&h->lock);
    st->done = true;
    h->stream = NULL;
    /* The span jobs take over from the first chunk the stream did not fill. */
    if (h->pf_next > st->fill)
        h->pf_next = st->fill;
    uint64_t from = st->fill, to = st->claimed;
    pthread_mutex_unlock(&h->lock);
    /* Nobody else touches the ring once done is set. */
    for (uint64_t i = from; i < to; i++) {
        struct chunk *ch = st->ring[i % st->cap];
        if (ch) {
            chunkcache_complete(r->cc, ch, NULL, err);
            chunkcache_release(r->cc, ch);
        }
    }
    if (rc < 0 || from < to || st->cur * r->cs < h->size)
        atomic_fetch_add_explicit(&r->st_cancels, 1, memory_order_relaxed);
    if (rc < 0 && rc != -ECANCELED) {
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        log_debug("stream from chunk %" PRIu64 " failed at chunk %" PRIu64 ": %s", st->start,
                  st->cur, strerror(-rc));
    }
    pthread_mutex_lock(&r->qlock);
    r->streams--;
    pthread_mutex_unlock(&r->qlock);
    free(st->ring);
    free(st);
    handle_unref(h);
}

static void stream_run(struct reader *r, struct stream *st)
{
    struct reader_handle *h = st->h;
    uint64_t off = st->start * r->cs;
    uint64_t seg = r->span_chunks * r->cs;
    int rc = 0;

    while (off < h->size) {
        /* Ask only once the reader's window reaches the range (stream_next checks cancel). */
        rc = stream_next(st, false);
        if (rc < 0)
            break;
        uint64_t len = h->size - off < seg ? h->size - off : seg;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        atomic_fetch_add_explicit(&r->requests, 1, memory_order_relaxed);
        rc = r->node->ops->read_stream(r->node, &h->cid, off, len, stream_sink, st);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        log_debug("stream: %" PRIu64 " bytes at %" PRIu64 " in %.1f ms: %d", len, off,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
                  rc);
        if (rc < 0)
            break;
        off += len;
        uint64_t next = seg * 2 < off - st->start * r->cs ? seg * 2 : off - st->start * r->cs;
        seg = next > STREAM_MAX_SEGMENT ? STREAM_MAX_SEGMENT : next > seg ? next : seg;
    }
    stream_finish(r, st, rc);
}

/* ---- the sequential detector --------------------------------------------------------------- */

/* Within slack (at least one chunk) of the expected offset, either way. */
static bool near(uint64_t off, uint64_t expect, uint64_t slack)
{
    return off + slack >= expect && off <= expect + slack;
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
 * asks for. Returns true if the read is random: the handle's first, or one that continues
 * nothing. */
static bool detect(struct reader_handle *h, uint64_t off, size_t size)
{
    struct reader *r = h->r;
    uint64_t end = off + size;
    uint64_t cs = r->cs;
    bool random = false;

    pthread_mutex_lock(&h->lock);
    if (!h->started) {
        h->started = true;
        h->stream_end = h->last_end = end;
        random = true;
        goto out;
    }
    /* Within the window of a running stream of reads is sequential too: the kernel's async
     * readahead sends several reads at once, and they arrive out of order. */
    if (near(off, h->stream_end, h->window > cs ? h->window : cs)) {
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
        stream_cancel_locked(h); /* it serves the old position */
    } else {
        random = true;
        if (++h->randoms >= 2) {
            h->window = 0;
            h->pf_next = 0;
            stream_cancel_locked(h);
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
    if (h->stream) {
        /* Running: claim what the window now covers. Being cancelled: nothing until it is
         * gone (its claims still stand); the reads fetch what they miss themselves. */
        if (!h->stream->cancel && !h->stream->done)
            stream_extend_locked(h, h->stream, to);
        goto out;
    }
    if (from < h->pf_next)
        from = h->pf_next;
    /* Clearly sequential, and more of the file left than the window: stream the rest. */
    uint64_t stream_window =
        r->readahead_max < STREAM_MIN_WINDOW ? r->readahead_max : STREAM_MIN_WINDOW;
    if (r->max_streams && to > from && to < nchunks && h->window >= stream_window &&
        stream_start_locked(h, from, to))
        goto out;
    /* Wait until a whole span (or the whole window, if smaller, or the end of the file) is due,
     * so that requests are large rather than one chunk each time the reads move by one. */
    if (to > from &&
        (to - from >= (wchunks < r->span_chunks ? wchunks : r->span_chunks) || to == nchunks))
        h->pf_next = prefetch(h, from, to);
out:
    pthread_mutex_unlock(&h->lock);
    return random;
}

/* ---- direct reads and the DAG map ------------------------------------------------------------ */

/* A small random read whose chunks are neither cached nor in flight is not worth a chunk: the
 * node's cat costs about per byte read (and prefetches siblings below the offset), so a whole
 * chunk for 4 KiB costs more than the 4 KiB alone. Such a read goes straight to the node into
 * the reader's buffer, and nothing is cached (the kernel's page cache keeps what it read).
 *
 * And it is asked of the deepest node of the file's DAG that holds the whole range, not of the
 * root: a ranged cat of the root walks the DAG from the top in the node (and reads ahead under
 * it), one of a leaf reads only that leaf (measured on Kubo 0.43, 1 GiB file: ~4.4-6 ms for
 * 4 KiB at an offset of the root, ~2 ms for 8 KiB of a leaf). The DAG map holds the internal
 * nodes of files (blocks fetched with get_block, their hashes checked, decoded once), shared by
 * all handles, LRU within cache_bytes / DAG_BUDGET_DIV. A read never waits for the map: what is
 * missing on its way down is fetched in the background (one job, DAG_MAX_LOADING at once), and
 * the read asks the deepest node known now. Offsets inside a node come from its UnixFS
 * blocksizes, as the node's own seek does, so the bytes are the ones a ranged cat of the root
 * gives. A node whose sizes do not add up is not used. */

enum dn_state { DN_LOADING, DN_READY, DN_BAD };

struct dnode {
    /* Immutable after creation. */
    struct cid cid;
    uint64_t hash;
    uint64_t size; /* the bytes it should hold: the file's size, or its parent's blocksize */

    /* Guarded by reader.dlock. A READY node's fields below are immutable once READY. */
    struct dnode *hnext;
    struct dnode *lru_prev, *lru_next; /* on the LRU list iff not LOADING */
    enum dn_state state;
    uint8_t *block;        /* the block (links point into it); NULL for a leaf */
    struct dagpb_node pb;  /* its links (none: the node is a leaf) */
    uint64_t *ends;        /* ends[i]: end of child i's bytes inside the node */
    size_t mem;            /* bytes counted in dmem */
};

static struct dnode *dag_find_locked(struct reader *r, const struct cid *c, uint64_t hash)
{
    for (struct dnode *dn = r->dbuckets[hash % DAG_BUCKETS]; dn; dn = dn->hnext)
        if (dn->hash == hash && cid_equal(&dn->cid, c))
            return dn;
    return NULL;
}

static void dag_lru_unlink_locked(struct reader *r, struct dnode *dn)
{
    if (dn->lru_prev)
        dn->lru_prev->lru_next = dn->lru_next;
    else
        r->dlru_head = dn->lru_next;
    if (dn->lru_next)
        dn->lru_next->lru_prev = dn->lru_prev;
    else
        r->dlru_tail = dn->lru_prev;
    dn->lru_prev = dn->lru_next = NULL;
}

static void dag_lru_push_locked(struct reader *r, struct dnode *dn)
{
    dn->lru_prev = NULL;
    dn->lru_next = r->dlru_head;
    if (r->dlru_head)
        r->dlru_head->lru_prev = dn;
    else
        r->dlru_tail = dn;
    r->dlru_head = dn;
}

static void dag_unhash_locked(struct reader *r, struct dnode *dn)
{
    for (struct dnode **p = &r->dbuckets[dn->hash % DAG_BUCKETS]; *p; p = &(*p)->hnext) {
        if (*p == dn) {
            *p = dn->hnext;
            break;
        }
    }
    dn->hnext = NULL;
    r->dmem -= dn->mem;
}

static void dnode_free(struct dnode *dn)
{
    dagpb_node_free(&dn->pb);
    free(dn->ends);
    free(dn->block);
    free(dn);
}

/* Drop the least recently used nodes until the map is within its bound; they are chained on
 * *freed (through hnext), to be freed after unlocking. */
static void dag_evict_locked(struct reader *r, struct dnode **freed)
{
    while (r->dmem > r->dbudget && r->dlru_tail) {
        struct dnode *dn = r->dlru_tail;
        dag_lru_unlink_locked(r, dn);
        dag_unhash_locked(r, dn);
        dn->hnext = *freed;
        *freed = dn;
    }
}

static void dag_free_list(struct dnode *list)
{
    while (list) {
        struct dnode *next = list->hnext;
        dnode_free(list);
        list = next;
    }
}

/* Is the block the one its CID names? Only sha2-256 can be checked (what Kubo writes). */
static bool block_matches(const struct cid *c, const uint8_t *data, size_t len)
{
    uint64_t code, dlen;
    size_t a = varint_decode(c->mh, c->mh_len, &code);
    size_t b = a ? varint_decode(c->mh + a, c->mh_len - a, &dlen) : 0;
    uint8_t md[SHA256_LEN];

    if (!b || code != MH_SHA2_256 || dlen != SHA256_LEN || a + b + dlen != c->mh_len)
        return false;
    return sha256_digest(data, len, md) == 0 && memcmp(md, c->mh + a + b, SHA256_LEN) == 0;
}

/* Decode a fetched block into dn (not yet published). Returns 0 or -EINVAL when it is no
 * usable UnixFS file node of dn->size bytes. */
static int dnode_parse(struct dnode *dn, uint8_t *block, size_t len)
{
    struct unixfs_data u;
    struct unixfs_bs_iter it;
    uint64_t bs, end = 0;

    if (dn->cid.codec != CID_CODEC_DAG_PB || len > DAG_MAX_BLOCK ||
        !block_matches(&dn->cid, block, len))
        return -EINVAL;
    if (dagpb_decode(block, len, &dn->pb) < 0)
        return -EINVAL;
    if (!dn->pb.has_data || unixfs_decode(dn->pb.data, dn->pb.data_len, &u) < 0 ||
        (u.type != UNIXFS_FILE && u.type != UNIXFS_RAW))
        return -EINVAL;
    if (dn->pb.nlinks == 0) {
        /* A leaf: nothing below it (its block is not kept). Its size is checked by the reads
         * themselves. */
        dagpb_node_free(&dn->pb);
        memset(&dn->pb, 0, sizeof dn->pb);
        return 0;
    }
    /* Bytes of its own before the children would shift every offset: not used. */
    if ((u.has_data && u.data_len > 0) || u.nblocksizes != dn->pb.nlinks ||
        (u.has_filesize && u.filesize != dn->size) || u.blocksizes_sum != dn->size)
        return -EINVAL;
    dn->ends = malloc(dn->pb.nlinks * sizeof *dn->ends);
    if (!dn->ends)
        return -ENOMEM;
    unixfs_bs_begin(&it, dn->pb.data, dn->pb.data_len);
    for (size_t i = 0; i < dn->pb.nlinks; i++) {
        if (unixfs_bs_next(&it, &bs) != 1)
            return -EINVAL;
        end += bs;
        dn->ends[i] = end;
    }
    if (end != dn->size)
        return -EINVAL;
    dn->block = block;
    return 0;
}

/* The job of a LOADING node: fetch, check, decode, publish (READY or BAD; removed when the
 * fetch failed for a reason that may pass, so that a later read tries again). */
static void dag_fetch(struct reader *r, struct dnode *dn)
{
    uint8_t *block = NULL;
    size_t len = 0;
    struct dnode *freed = NULL;
    int rc;

    atomic_fetch_add_explicit(&r->dag_fetches, 1, memory_order_relaxed);
    rc = r->node->ops->get_block(r->node, &dn->cid, &block, &len);
    /* A node that was slow, busy or unreachable may answer later; any other refusal (no such
     * command, not allowed...) stands, and the node stays unusable until it is evicted. */
    bool transient = rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EIO || rc == -ENOMEM ||
                     rc == -ECANCELED || rc == -EINTR;
    if (rc == 0) {
        rc = dnode_parse(dn, block, len);
        if (rc < 0 || !dn->block)
            free(block); /* not kept (a leaf keeps no block either) */
    }
    if (rc < 0) {
        atomic_fetch_add_explicit(&r->dag_failed, 1, memory_order_relaxed);
        dagpb_node_free(&dn->pb);
        memset(&dn->pb, 0, sizeof dn->pb);
        free(dn->ends);
        dn->ends = NULL;
        dn->block = NULL;
    }
    pthread_mutex_lock(&r->dlock);
    r->dloading--;
    if (transient) {
        dag_unhash_locked(r, dn);
        dn->hnext = freed;
        freed = dn;
    } else {
        dn->state = rc == 0 ? DN_READY : DN_BAD;
        size_t extra = (dn->block ? len : 0) + dn->pb.nlinks * (sizeof *dn->pb.links + 8);
        dn->mem += extra;
        r->dmem += extra;
        dag_lru_push_locked(r, dn);
        dag_evict_locked(r, &freed);
    }
    pthread_mutex_unlock(&r->dlock);
    dag_free_list(freed);
}

/* Queue a fetch of node c (size bytes) unless it is known, in flight, or too many are (dlock
 * held; the queue lock nests inside it). */
static void dag_want_locked(struct reader *r, const struct cid *c, uint64_t hash, uint64_t size)
{
    if (r->dloading >= DAG_MAX_LOADING || !r->nthreads || !queue_reserve(r))
        return;
    struct dnode *dn = calloc(1, sizeof *dn);
    struct job *j = calloc(1, sizeof *j);
    if (!dn || !j) {
        free(dn);
        free(j);
        queue_push(r, NULL);
        return;
    }
    dn->cid = *c;
    dn->hash = hash;
    dn->size = size;
    dn->state = DN_LOADING;
    dn->mem = sizeof *dn;
    dn->hnext = r->dbuckets[hash % DAG_BUCKETS];
    r->dbuckets[hash % DAG_BUCKETS] = dn;
    r->dmem += dn->mem;
    r->dloading++;
    j->dn = dn;
    queue_push(r, j);
}

/* Where to ask for [off, off + len) of file root (size bytes): the deepest node the map knows
 * that holds the whole range (*target), and the offset in it (*rel). Queues the fetch of the
 * first internal node missing on the way. */
static void dag_resolve(struct reader *r, const struct cid *root, uint64_t size, uint64_t off,
                        size_t len, struct cid *target, uint64_t *rel)
{
    struct cid cur = *root;
    uint64_t cur_size = size;
    struct dnode *freed = NULL;

    *target = *root;
    *rel = off;
    if (!r->node->ops->get_block || root->codec != CID_CODEC_DAG_PB || size <= DAG_MIN_FILE)
        return;
    pthread_mutex_lock(&r->dlock);
    for (int depth = 0; depth < DAG_MAX_DEPTH; depth++) {
        uint64_t hash = cid_hash(&cur);
        struct dnode *dn = dag_find_locked(r, &cur, hash);
        if (!dn) {
            dag_want_locked(r, &cur, hash, cur_size);
            break;
        }
        if (dn->state != DN_READY || dn->size != cur_size)
            break; /* in flight, unusable, or seen with another size */
        dag_lru_unlink_locked(r, dn);
        dag_lru_push_locked(r, dn);
        size_t n = dn->pb.nlinks;
        if (n == 0)
            break; /* a leaf */
        /* The child whose bytes hold *rel: the first with ends[i] > *rel. */
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (dn->ends[mid] > *rel)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (lo >= n || *rel + len > dn->ends[lo])
            break; /* the range spans children: ask this node */
        struct cid child;
        const struct dagpb_link *l = &dn->pb.links[lo];
        if (cid_from_bytes(l->hash, l->hash_len, &child) < 0)
            break;
        uint64_t start = lo ? dn->ends[lo - 1] : 0;
        *target = child;
        *rel -= start;
        cur = child;
        cur_size = dn->ends[lo] - start;
        if (child.codec != CID_CODEC_DAG_PB || child.mh_code == MH_IDENTITY)
            break; /* raw (a leaf), or inline */
        if (l->has_tsize && l->tsize < cur_size + DAG_LEAF_SLACK)
            break; /* a leaf: no need to know it */
    }
    dag_evict_locked(r, &freed);
    pthread_mutex_unlock(&r->dlock);
    dag_free_list(freed);
}

/* A queued fetch that will not run (the reader stops). */
static void dag_cancel(struct reader *r, struct dnode *dn)
{
    pthread_mutex_lock(&r->dlock);
    r->dloading--;
    dag_unhash_locked(r, dn);
    pthread_mutex_unlock(&r->dlock);
    dnode_free(dn);
}

static void dag_free(struct reader *r)
{
    if (!r->dbuckets)
        return;
    for (unsigned i = 0; i < DAG_BUCKETS; i++)
        dag_free_list(r->dbuckets[i]);
    free(r->dbuckets);
    r->dbuckets = NULL;
}

struct direct_sink {
    char *buf;
    size_t len, got;
    const struct timespec *deadline;
};

static int direct_sink_fn(void *ud, const char *data, size_t len)
{
    struct direct_sink *d = ud;

    if (deadline_passed(d->deadline))
        return ERR_ABANDONED;
    if (len > d->len - d->got)
        return -EIO;
    memcpy(d->buf + d->got, data, len);
    d->got += len;
    return 0;
}

/* len bytes at rel of c, into buf. With stream (and a node that can), the request is given up
 * at the deadline; without, it is a plain read, bounded by the node's timeout (started just
 * after the read's deadline was set: it ends within about the same time) and lighter for a few
 * KiB. 0 or -errno (ERR_ABANDONED). */
static int direct_fetch(struct reader *r, const struct cid *c, uint64_t rel, size_t len,
                        char *buf, bool stream, const struct timespec *deadline)
{
    int rc;

    atomic_fetch_add_explicit(&r->requests, 1, memory_order_relaxed);
    if (stream && r->node->ops->read_stream) {
        struct direct_sink d = {.buf = buf, .len = len, .deadline = deadline};
        rc = r->node->ops->read_stream(r->node, c, rel, len, direct_sink_fn, &d);
        if (rc == 0 && d.got != len)
            rc = -EIO;
    } else {
        ssize_t got = node_read(r->node, c, rel, len, buf);
        rc = got < 0 ? (int)got : (size_t)got != len ? -EIO : 0;
    }
    if (rc < 0)
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
    return rc;
}

/* Is any chunk of [first, last] cached or in flight? */
static bool any_chunk(struct reader_handle *h, uint64_t first, uint64_t last)
{
    struct chunk_key k = {.cid = &h->cid, .cid_hash = h->cid_hash};

    for (k.index = first; k.index <= last; k.index++)
        if (chunkcache_present(h->r->cc, &k))
            return true;
    return false;
}

/* A direct read of [off, off + size). 0 or -errno. */
static int read_direct(struct reader_handle *h, uint64_t off, size_t size, char *buf,
                       const struct timespec *deadline)
{
    struct reader *r = h->r;
    struct cid target;
    uint64_t rel;

    dag_resolve(r, &h->cid, h->size, off, size, &target, &rel);
    bool deep = !cid_equal(&target, &h->cid);
    atomic_fetch_add_explicit(&r->direct, 1, memory_order_relaxed);
    if (deep)
        atomic_fetch_add_explicit(&r->direct_deep, 1, memory_order_relaxed);
    int rc = direct_fetch(r, &target, rel, size, buf, false, deadline);
    /* A node below the root that the node cannot serve as the map says: ask the root. */
    if (rc < 0 && deep && rc != ERR_ABANDONED && rc != -EAGAIN && rc != -ETIMEDOUT &&
        !deadline_passed(deadline)) {
        char cs[CID_STR_MAX];
        cid_format(&target, cs, sizeof cs);
        log_debug("direct read of %zu bytes at %" PRIu64 " of %s failed (%s): asking the root",
                  size, rel, cs, strerror(-rc));
        /* Given up at the deadline: the read stays within it, whatever the first one took. */
        rc = direct_fetch(r, &h->cid, off, size, buf, true, deadline);
    }
    return rc == ERR_ABANDONED ? -ETIMEDOUT : rc;
}

/* ---- reads --------------------------------------------------------------------------------- */

/* Hold [first, last] of the file cid_hash for every handle (held[]): a read of it through any
 * open file fails at once for TIMEOUT_HOLD_MS. Whether the node is alive but not finding the
 * content, or hung: the kernel lets one program at a time try a page (the page lock), so
 * without this N programs reading it wait N timeouts one after the other (a hung node costs
 * each of them a version check too, a second each). */
static void hold_all(struct reader *r, uint64_t cid_hash, uint64_t first, uint64_t last)
{
    pthread_mutex_lock(&r->qlock);
    unsigned i = r->held_next++ % (sizeof r->held / sizeof r->held[0]);
    r->held[i].cid_hash = cid_hash;
    r->held[i].first = first;
    r->held[i].last = last;
    deadline_in(&r->held[i].until, TIMEOUT_HOLD_MS);
    pthread_mutex_unlock(&r->qlock);
}

/* A wait or fetch failed with rc: may the read fetch the chunk again? A failed or cancelled
 * prefetch once (attempt 0); a fetch that another reader gave up, while our deadline allows. */
static bool worth_retry(const struct chunk *ch, int rc, int attempt,
                        const struct timespec *deadline)
{
    if (deadline_passed(deadline))
        return false;
    /* -EAGAIN: too many slow waits (or requests waiting on the node): fail fast. */
    return rc == ERR_ABANDONED || (chunkcache_advisory(ch) && attempt == 0 && rc != -EAGAIN);
}

/* Get chunk idx READY with a reference, fetching it or waiting for it (until deadline). See
 * worth_retry for what is tried again; any other failure is returned. */
static int get_ready(struct reader_handle *h, uint64_t idx, const struct timespec *deadline,
                     struct chunk **out)
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
            fetch_run(r, &ch, 1, deadline);
        rc = rc == CHUNK_READY ? 0 : chunkcache_wait_until(r->cc, ch, deadline);
        if (rc == 0) {
            *out = ch;
            return 0;
        }
        bool retry = worth_retry(ch, rc, attempt, deadline);
        chunkcache_release(r->cc, ch);
        if (!retry)
            return rc == ERR_ABANDONED ? -ETIMEDOUT : rc;
    }
}

/* Copy the part of [off, off + size) that chunks first .. first + n - 1 cover into buf (which
 * holds the bytes from off). */
static int read_batch(struct reader_handle *h, uint64_t first, unsigned n, uint64_t off,
                      size_t size, char *buf, bool seq, const struct timespec *deadline)
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
        int e = fetch_run(r, &ch[i], j - i, deadline);
        if (e < 0 && rc == 0)
            rc = e == ERR_ABANDONED ? -ETIMEDOUT : e;
        for (; i < j; i++)
            st[i] = CHUNK_LOADING; /* completed: chunkcache_wait returns at once */
    }
    for (unsigned i = 0; i < got && rc == 0; i++) {
        if (st[i] == CHUNK_READY)
            continue;
        rc = chunkcache_wait_until(r->cc, ch[i], deadline);
        /* Another thread's fetch of it is still under way and the file's chunks keep
         * coming: wait on (see extend_deadline). */
        while (rc == -ETIMEDOUT && extend_deadline(r, h->cid_hash, deadline))
            rc = chunkcache_wait_until(r->cc, ch[i], deadline);
        if (rc < 0 && worth_retry(ch[i], rc, 0, deadline)) {
            chunkcache_release(r->cc, ch[i]);
            rc = get_ready(h, first + i, deadline, &ch[i]);
        } else if (rc == ERR_ABANDONED) {
            rc = -ETIMEDOUT;
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
        /* A sequential read that reaches the chunk's end is done with it (see scan_keep). */
        if (seq && to == cend)
            chunkcache_consumed(r->cc, ch[i]);
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
    first = off / r->cs;
    last = (off + size - 1) / r->cs;
    pthread_mutex_lock(&h->lock);
    bool held = h->to_until.tv_sec && !deadline_passed(&h->to_until) && first <= h->to_last &&
                last >= h->to_first;
    pthread_mutex_unlock(&h->lock);
    if (!held) {
        pthread_mutex_lock(&r->qlock);
        for (unsigned i = 0; i < sizeof r->held / sizeof r->held[0] && !held; i++)
            held = r->held[i].until.tv_sec && !deadline_passed(&r->held[i].until) &&
                   r->held[i].cid_hash == h->cid_hash && first <= r->held[i].last &&
                   last >= r->held[i].first;
        pthread_mutex_unlock(&r->qlock);
    }
    if (held)
        return -ETIMEDOUT;
    struct timespec deadline;
    deadline_in(&deadline, r->timeout_ms);
    struct read_ext ext = {.deadline = &deadline, .ms = r->timeout_ms};
    deadline_in(&ext.cap, r->timeout_ms * EXTEND_MAX);
    struct read_ext *outer = tl_ext; /* none: a FUSE thread reads one thing at a time */
    tl_ext = &ext;
    bool random = detect(h, off, size);
    bool direct = random && size <= r->direct_max && !any_chunk(h, first, last);
    for (uint64_t b = first; b <= last; b += SYNC_BATCH) {
        uint64_t left = last - b + 1;
        int rc = direct ? read_direct(h, off, size, buf, &deadline)
                        : read_batch(h, b, left < SYNC_BATCH ? (unsigned)left : SYNC_BATCH, off,
                                     size, buf, !random, &deadline);
        if (direct)
            b = last; /* all of it */
        if (rc == -ETIMEDOUT && waited_long(&deadline, r->timeout_ms)) {
            pthread_mutex_lock(&h->lock);
            h->to_first = first;
            h->to_last = last;
            deadline_in(&h->to_until, TIMEOUT_HOLD_MS);
            pthread_mutex_unlock(&h->lock);
            hold_all(r, h->cid_hash, first, last);
        }
        if (rc < 0) {
            tl_ext = outer;
            return rc;
        }
    }
    tl_ext = outer;
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
    if (cond_init_monotonic(&h->cond) != 0) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    h->refs = 1;
    h->r = r;
    h->cid = *c;
    h->cid_hash = cid_hash(c);
    h->size = filesize;
    return h;
}

static void handle_unref(struct reader_handle *h)
{
    bool last;

    pthread_mutex_lock(&h->lock);
    last = --h->refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last) {
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
    }
}

void reader_close(struct reader_handle *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    stream_cancel_locked(h);
    pthread_mutex_unlock(&h->lock);
    handle_unref(h);
}

/* ---- the reader ---------------------------------------------------------------------------- */

static void stop_workers(struct reader *r)
{
    struct job *j;

    atomic_store(&r->halt, true);
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
    if (pthread_mutex_init(&r->dlock, NULL) != 0) {
        pthread_cond_destroy(&r->qcond);
        pthread_mutex_destroy(&r->qlock);
        chunkcache_free(r->cc);
        free(r);
        return -EAGAIN;
    }
    r->cs = chunkcache_chunk_size(r->cc);
    r->direct_max = cfg->direct_max == SIZE_MAX ? 0
                    : cfg->direct_max                ? cfg->direct_max
                                                     : r->cs / DIRECT_DIV;
    r->dbudget = chunkcache_budget(r->cc) / DAG_BUDGET_DIV;
    uint64_t keep = cfg->scan_keep;
    if (keep == 0) {
        keep = cfg->readahead_max > DEFAULT_SCAN_KEEP ? cfg->readahead_max : DEFAULT_SCAN_KEEP;
        if (keep > chunkcache_budget(r->cc) / 4)
            keep = chunkcache_budget(r->cc) / 4;
    }
    chunkcache_set_scan_max(r->cc, keep == SIZE_MAX ? UINT64_MAX : keep);
    r->dbuckets = calloc(DAG_BUCKETS, sizeof *r->dbuckets);
    if (!r->dbuckets) {
        rc = -ENOMEM;
        goto out;
    }
    r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    rc = chunkcache_set_wait_limits(
        r->cc, SLOW_WAIT_MS, cfg->max_slow_waits ? cfg->max_slow_waits : DEFAULT_MAX_SLOW_WAITS,
        cfg->max_slow_waits_per_file ? cfg->max_slow_waits_per_file
                                     : DEFAULT_MAX_SLOW_WAITS_PER_FILE);
    if (rc < 0)
        goto out;
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
    /* A stream holds its worker for as long as its reader reads: leave half the workers to the
     * span jobs (no streams with one worker). */
    r->max_streams = node->ops->read_stream ? workers / 2 : 0;
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
    dag_free(r);
    pthread_mutex_destroy(&r->dlock);
    pthread_cond_destroy(&r->qcond);
    pthread_mutex_destroy(&r->qlock);
    chunkcache_free(r->cc);
    free(r);
}

int reader_stats(struct reader *r, char *buf, size_t len)
{
    struct chunkcache_stats st;
    uint64_t jobs, dropped, streams;

    chunkcache_get_stats(r->cc, &st);
    pthread_mutex_lock(&r->qlock);
    jobs = r->pf_jobs;
    dropped = r->pf_dropped;
    streams = r->streams;
    pthread_mutex_unlock(&r->qlock);
    pthread_mutex_lock(&r->dlock);
    size_t dmem = r->dmem;
    unsigned dloading = r->dloading;
    pthread_mutex_unlock(&r->dlock);
    return snprintf(buf, len,
                    "cache_hits %" PRIu64 "\n"
                    "cache_misses %" PRIu64 "\n"
                    "cache_waits %" PRIu64 "\n"
                    "cache_evictions %" PRIu64 "\n"
                    "cache_chunks %" PRIu64 "\n"
                    "cache_bytes %" PRIu64 "\n"
                    "cache_bytes_loading %" PRIu64 "\n"
                    "cache_budget %zu\n"
                    "cache_bytes_scan %" PRIu64 "\n"
                    "cache_buffers_reused %" PRIu64 "\n"
                    "cache_bytes_fetched %" PRIu64 "\n"
                    "cache_chunks_failed %" PRIu64 "\n"
                    "cache_waits_timedout %" PRIu64 "\n"
                    "cache_waits_refused %" PRIu64 "\n"
                    "fetch_requests %" PRIu64 "\n"
                    "fetch_errors %" PRIu64 "\n"
                    "prefetch_chunks %" PRIu64 "\n"
                    "prefetch_jobs %" PRIu64 "\n"
                    "prefetch_dropped %" PRIu64 "\n"
                    "prefetch_streams %" PRIu64 "\n"
                    "prefetch_streams_now %" PRIu64 "\n"
                    "prefetch_stream_cancels %" PRIu64 "\n"
                    "prefetch_stream_skipped_bytes %" PRIu64 "\n"
                    "prefetch_stream_wait_ms %" PRIu64 "\n"
                    "direct_reads %" PRIu64 "\n"
                    "direct_reads_deep %" PRIu64 "\n"
                    "dag_fetches %" PRIu64 "\n"
                    "dag_failed %" PRIu64 "\n"
                    "dag_bytes %zu\n"
                    "dag_loading %u\n",
                    st.hits, st.misses, st.waits, st.evictions, st.chunks, st.bytes_cached,
                    st.bytes_loading, chunkcache_budget(r->cc), st.bytes_scan, st.recycled,
                    st.bytes_fetched, st.failed,
                    st.waits_timedout, st.waits_refused,
                    (uint64_t)atomic_load(&r->requests), (uint64_t)atomic_load(&r->errors),
                    st.prefetches, jobs, dropped, (uint64_t)atomic_load(&r->st_started), streams,
                    (uint64_t)atomic_load(&r->st_cancels), (uint64_t)atomic_load(&r->st_skipped),
                    (uint64_t)atomic_load(&r->st_wait_us) / 1000, (uint64_t)atomic_load(&r->direct),
                    (uint64_t)atomic_load(&r->direct_deep), (uint64_t)atomic_load(&r->dag_fetches),
                    (uint64_t)atomic_load(&r->dag_failed), dmem, dloading);
}

/* prepush.c - see prepush.h.
 *
 * One thread (sender) takes the queue and writes each block as a CAR section into a pipe; a
 * second one (the upload, one per CAR) hands the pipe's other end to the node's put_car. The
 * sender wakes for PREPUSH_BATCH bytes of blocks or after PREPUSH_IDLE_MS, then takes all that
 * are queued. A CAR ends when the queue is still empty after such a wait, when a drain's blocks
 * are in it, or at PREPUSH_CAR_MAX bytes or PREPUSH_CAR_MS; its blocks count as confirmed only
 * once put_car returned 0.
 */
#include "config.h"

#include "prepush.h"

#include "car.h"
#include "clock.h"
#include "dagpb.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PREPUSH_IDLE_MS 200u          /* a CAR with nothing new for this long ends */
#define PREPUSH_BATCH (1u << 20)      /* a CAR's sender wakes for this many bytes of blocks
                                       * (or after PREPUSH_IDLE_MS): not once per block */
#define PREPUSH_CAR_MAX (256u << 20)  /* bytes of blocks per CAR (one upload) */
#define PREPUSH_CAR_MS 10000u         /* and at most this long: then answered, a new one */
#define PREPUSH_FAIL_MS 5000u         /* after a failed CAR: blocks left to the push this long */
#define PREPUSH_PIPE_BYTES (1u << 20) /* the pipe to the upload, as sync.c's push */
#define PREPUSH_SPARE 16              /* block buffers kept for reuse (past malloc's mmap
                                       * threshold, a fresh one costs its page faults) */
#define KEY_MAX 34                    /* a sha2-256 multihash: only those are remembered */
#define KNOWN_SLOTS (2u * PREPUSH_KNOWN_MAX) /* open addressing, at most half full */

struct item {
    struct item *next;
    struct cid cid;
    uint8_t *data;
    size_t len, cap; /* cap: bytes at data */
};

/* A confirmed block: its codec and multihash. The codec counts: a raw chunk and a dag-pb
 * directory of the same bytes are one block to the node, but only the chunk has no links, and
 * the push must still walk under the directory. */
struct key {
    uint8_t len; /* 0: a free slot */
    bool raw;    /* CID_CODEC_RAW, else dag-pb (the only two codecs taken) */
    uint8_t mh[KEY_MAX];
};

struct prepush {
    struct node *up;
    pthread_t thread;

    pthread_mutex_t lock; /* protects everything below */
    pthread_cond_t cond;  /* the sender waits for blocks here; drains wait for answers */
    bool stop;
    bool off;    /* prepush_off: nothing more is taken, nothing more is confirmed */
    bool in_car; /* the sender writes a CAR (and wakes for PREPUSH_BATCH bytes) */
    struct item *head, *tail; /* the queue, oldest first */
    size_t qbytes, qn;        /* its bytes and blocks */
    uint64_t seq_in;   /* blocks queued so far */
    uint64_t seq_sent; /* of those, taken into a CAR (or dropped) */
    uint64_t seq_done; /* of those, whose CAR was answered (or dropped) */
    uint64_t drain_to; /* a drain waits for seq_done >= this (0: none) */
    uint64_t fail_until_ms;
    struct item *spare[PREPUSH_SPARE];
    unsigned nspare;
    struct key *known; /* KNOWN_SLOTS, or NULL while empty */
    size_t nknown;
    uint64_t known_since_ms; /* when the first entry of the set went in */
    uint64_t blocks, bytes, cars, skipped, failed_cars;
};

static uint64_t key_hash(const uint8_t *mh, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ mh[i]) * 1099511628211ull;
    return h;
}

/* Call with lock held. The slot of c's multihash, or the free slot where it would go. */
static struct key *known_slot(struct prepush *p, const struct cid *c)
{
    bool raw = c->codec == CID_CODEC_RAW;
    size_t j = (key_hash(c->mh, c->mh_len) + raw) & (KNOWN_SLOTS - 1);
    while (p->known[j].len && !(p->known[j].len == c->mh_len && p->known[j].raw == raw &&
                                memcmp(p->known[j].mh, c->mh, c->mh_len) == 0))
        j = (j + 1) & (KNOWN_SLOTS - 1);
    return &p->known[j];
}

static void known_clear_locked(struct prepush *p)
{
    free(p->known);
    p->known = NULL;
    p->nknown = 0;
}

static void known_add_locked(struct prepush *p, const struct cid *c, uint64_t now)
{
    if (c->mh_len > KEY_MAX)
        return;
    if (p->nknown >= PREPUSH_KNOWN_MAX)
        known_clear_locked(p); /* full: start again (the push sends what it no longer knows) */
    if (!p->known) {
        p->known = calloc(KNOWN_SLOTS, sizeof *p->known);
        if (!p->known)
            return;
        p->known_since_ms = now;
    }
    struct key *k = known_slot(p, c);
    if (!k->len) {
        k->len = (uint8_t)c->mh_len;
        k->raw = c->codec == CID_CODEC_RAW;
        memcpy(k->mh, c->mh, c->mh_len);
        p->nknown++;
    }
}

bool prepush_has(struct prepush *p, const struct cid *c)
{
    if (!p || c->mh_len > KEY_MAX ||
        (c->codec != CID_CODEC_RAW && c->codec != CID_CODEC_DAG_PB))
        return false;
    pthread_mutex_lock(&p->lock);
    if (p->known && clock_mono_ms() - p->known_since_ms > PREPUSH_KNOWN_MS)
        known_clear_locked(p);
    bool has = p->known && known_slot(p, c)->len != 0;
    pthread_mutex_unlock(&p->lock);
    return has;
}

void prepush_forget(struct prepush *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    known_clear_locked(p);
    pthread_mutex_unlock(&p->lock);
}

static void drop_queue_locked(struct prepush *p);

void prepush_off(struct prepush *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->off = true;
    drop_queue_locked(p);
    known_clear_locked(p);
    pthread_mutex_unlock(&p->lock);
}

/* Call with lock held: keep its buffer for reuse, or free it. */
static void item_free_locked(struct prepush *p, struct item *it)
{
    if (p->nspare < PREPUSH_SPARE) {
        p->spare[p->nspare++] = it;
        return;
    }
    free(it->data);
    free(it);
}

/* Call with lock held: every queued block is left to the push. */
static void drop_queue_locked(struct prepush *p)
{
    while (p->head) {
        struct item *it = p->head;
        p->head = it->next;
        p->qbytes -= it->len;
        p->qn--;
        p->seq_sent++;
        p->seq_done++;
        p->skipped++;
        item_free_locked(p, it);
    }
    p->tail = NULL;
    pthread_cond_broadcast(&p->cond);
}

static bool is_leaf(const struct cid *c, const uint8_t *data, size_t len)
{
    if (c->codec == CID_CODEC_RAW)
        return true;
    if (c->codec != CID_CODEC_DAG_PB)
        return false;
    struct dagpb_node pb;
    if (dagpb_decode(data, len, &pb) < 0)
        return false;
    bool leaf = pb.nlinks == 0;
    dagpb_node_free(&pb);
    return leaf;
}

void prepush_block(struct prepush *p, const struct cid *c, const uint8_t *data, size_t len)
{
    if (!p || len < PREPUSH_MIN_BLOCK || c->mh_len > KEY_MAX || !is_leaf(c, data, len))
        return;
    pthread_mutex_lock(&p->lock);
    if (p->stop || p->off || clock_mono_ms() < p->fail_until_ms ||
        p->qbytes + len > PREPUSH_QUEUE_BYTES) {
        p->skipped++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    struct item *it = NULL;
    for (unsigned i = p->nspare; i-- > 0;)
        if (p->spare[i]->cap >= len) {
            it = p->spare[i];
            p->spare[i] = p->spare[--p->nspare];
            break;
        }
    p->qbytes += len; /* room held while copying (the lock is not) */
    pthread_mutex_unlock(&p->lock);
    if (!it && (it = calloc(1, sizeof *it))) {
        it->cap = len;
        if (!(it->data = malloc(len))) {
            free(it);
            it = NULL;
        }
    }
    if (it) {
        memcpy(it->data, data, len);
        it->cid = *c;
        it->len = len;
        it->next = NULL;
    }
    pthread_mutex_lock(&p->lock);
    if (!it || p->stop || p->off) {
        p->qbytes -= len;
        p->skipped++;
        if (it)
            item_free_locked(p, it);
    } else {
        if (p->tail)
            p->tail->next = it;
        else
            p->head = it;
        p->tail = it;
        p->qn++;
        p->seq_in++;
        if (!p->in_car || p->qbytes >= PREPUSH_BATCH)
            pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- the sender ---- */

struct upload {
    struct node *up;
    int fd; /* the pipe's read end: closed when put_car returns */
    int rc;
    char err[256];
};

static void *upload_thread(void *arg)
{
    struct upload *u = arg;
    u->rc = u->up->ops->put_car(u->up, u->fd, NODE_CAR_STREAM, u->err, sizeof u->err);
    close(u->fd); /* a CAR still being written: its next write fails, and it ends */
    return NULL;
}

/* One CAR, from first (taken off the queue already, lock not held) until the queue runs dry,
 * a drain is satisfied, or the CAR is full. Returns with lock held. */
static void send_car(struct prepush *p, struct item *first)
{
    struct cid *sent = NULL;
    size_t nsent = 0, cap = 0;
    uint64_t bytes = 0;
    int rc = 0;
    int pfd[2];
    struct upload u = {.up = p->up};
    pthread_t ut;
    bool started = false;
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
    } else {
        (void)fcntl(pfd[1], F_SETPIPE_SZ, PREPUSH_PIPE_BYTES); /* best effort */
        u.fd = pfd[0];
        rc = -pthread_create(&ut, NULL, upload_thread, &u);
        if (rc < 0) {
            close(pfd[0]);
            close(pfd[1]);
        } else {
            started = true;
        }
    }
    int wfd = started ? pfd[1] : -1;
    if (rc == 0)
        rc = car_write_header(car_sink_fd, &wfd, &first->cid, 1);
    struct item *it = first;
    uint64_t taken = 0;  /* items of the queue this CAR took */
    size_t unwaited = 0; /* blocks to take before waiting again (all those queued then) */
    uint64_t t0 = clock_mono_ms();
    for (;;) {
        if (rc == 0) {
            rc = car_write_block(car_sink_fd, &wfd, &it->cid, it->data, it->len);
            if (rc == 0 && nsent == cap) {
                size_t nc = cap ? 2 * cap : 64;
                struct cid *t = realloc(sent, nc * sizeof *t);
                if (t) {
                    sent = t;
                    cap = nc;
                }
            }
            if (rc == 0 && nsent < cap)
                sent[nsent++] = it->cid;
            bytes += it->len;
        }
        pthread_mutex_lock(&p->lock);
        p->seq_sent++;
        taken++;
        item_free_locked(p, it);
        if (rc < 0 || bytes >= PREPUSH_CAR_MAX || clock_mono_ms() - t0 >= PREPUSH_CAR_MS)
            break;
        /* A drain waits for this CAR's answer once the blocks it waits for are in it. */
        if (p->drain_to && p->seq_sent >= p->drain_to)
            break;
        /* The next blocks: wait a little for a batch of them, then take all that are queued
         * (a drain sends what is queued at once). */
        if (unwaited == 0 && p->qbytes < PREPUSH_BATCH && !p->stop && !p->drain_to) {
            struct timespec ts = clock_mono_after(PREPUSH_IDLE_MS);
            while (p->qbytes < PREPUSH_BATCH && !p->stop && !p->drain_to)
                if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT)
                    break;
            unwaited = p->qn;
        }
        if (!p->head)
            break;
        if (unwaited)
            unwaited--;
        it = p->head;
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        p->qbytes -= it->len;
        p->qn--;
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    if (started) {
        close(wfd);
        pthread_join(ut, NULL);
        if (rc == 0 || rc == -EPIPE)
            rc = u.rc < 0 ? u.rc : rc;
    }
    pthread_mutex_lock(&p->lock);
    uint64_t now = clock_mono_ms();
    if (rc == 0 && p->off) {
        p->skipped += nsent; /* sent, but not to be counted on */
    } else if (rc == 0) {
        for (size_t i = 0; i < nsent; i++)
            known_add_locked(p, &sent[i], now);
        p->blocks += nsent;
        p->bytes += bytes;
        p->cars++;
    } else {
        p->failed_cars++;
        p->skipped += nsent;
        p->fail_until_ms = now + PREPUSH_FAIL_MS;
        drop_queue_locked(p);
        log_debug("sending %zu blocks ahead of their names to %s failed (%s): the push sends "
                  "them",
                  nsent, p->up->description, u.err[0] ? u.err : strerror(-rc));
    }
    p->seq_done += taken;
    if (p->drain_to && p->seq_done >= p->drain_to)
        p->drain_to = 0; /* (a drain that gave up waiting leaves it set) */
    pthread_cond_broadcast(&p->cond);
    free(sent);
}

static void *sender_thread(void *arg)
{
    struct prepush *p = arg;
    /* A write after the upload gave up is EPIPE here, not a SIGPIPE for the process. */
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->head)
            break;
        struct item *it = p->head;
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        p->qbytes -= it->len;
        p->qn--;
        p->in_car = true;
        pthread_mutex_unlock(&p->lock);
        send_car(p, it); /* returns with lock held */
        p->in_car = false;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void prepush_drain(struct prepush *p, unsigned wait_ms)
{
    prepush_drain_moving(p, wait_ms, NULL);
}

void prepush_drain_moving(struct prepush *p, unsigned wait_ms, _Atomic uint64_t *moved_ms)
{
    if (!p)
        return;
    struct timespec ts = clock_mono_after(wait_ms);
    pthread_mutex_lock(&p->lock);
    uint64_t want = p->seq_in;
    if (p->seq_done < want) {
        if (p->drain_to < want)
            p->drain_to = want;
        pthread_cond_broadcast(&p->cond);
        uint64_t seen = p->seq_done;
        while (p->seq_done < want && !p->stop) {
            int w = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
            if (moved_ms && p->seq_done != seen) {
                seen = p->seq_done;
                atomic_store(moved_ms, clock_mono_ms());
            }
            if (w == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&p->lock);
}

int prepush_stats(struct prepush *p, char *buf, size_t len)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    int n = snprintf(buf, len,
                     "sync_ahead_blocks %" PRIu64 "\nsync_ahead_bytes %" PRIu64
                     "\nsync_ahead_cars %" PRIu64 "\nsync_ahead_failed_cars %" PRIu64
                     "\nsync_ahead_skipped %" PRIu64 "\n",
                     p->blocks, p->bytes, p->cars, p->failed_cars, p->skipped);
    pthread_mutex_unlock(&p->lock);
    return n;
}

int prepush_new(struct node *up, struct prepush **out)
{
    *out = NULL;
    if (!up->ops->put_car)
        return -ENOTSUP;
    struct prepush *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->up = up;
    pthread_mutex_init(&p->lock, NULL);
    (void)cond_init_monotonic(&p->cond);
    int rc = -pthread_create(&p->thread, NULL, sender_thread, p);
    if (rc < 0) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void prepush_free(struct prepush *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    drop_queue_locked(p);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < p->nspare; i++) {
        free(p->spare[i]->data);
        free(p->spare[i]);
    }
    free(p->known);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

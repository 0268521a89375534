/* test_prepush.c - sending a large file's blocks ahead of its name (prepush.c), no mount and no
 * node: the upstream is a put_car that reads the CAR with our verifying reader and keeps the
 * CIDs it got, and that can be told to refuse or to hold its answer. What is under test is the
 * queue, the CARs, and which blocks count as confirmed. */
#include "config.h"

#include "car.h"
#include "cid.h"
#include "clock.h"
#include "dagpb.h"
#include "prepush.h"
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

struct up {
    struct node base;
    pthread_mutex_t lock;
    int refuse;          /* put_car reads the CAR, then answers this (0: accepts) */
    unsigned hold_ms;    /* put_car waits this long before it reads */
    bool gated;          /* put_car waits until this is cleared (and opened signalled) */
    pthread_cond_t opened;
    unsigned cars;       /* CARs read */
    unsigned blocks;     /* blocks in them */
    struct cid got[256]; /* the blocks' CIDs, in order */
};

static int got_block(void *ud, const struct cid *c, const uint8_t *b, size_t len)
{
    struct up *u = ud;
    (void)b;
    (void)len;
    pthread_mutex_lock(&u->lock);
    if (u->blocks < 256)
        u->got[u->blocks] = *c;
    u->blocks++;
    pthread_mutex_unlock(&u->lock);
    return 0;
}

static int up_put_car(struct node *n, int fd, uint64_t size, char *err, size_t errlen)
{
    struct up *u = (struct up *)n;
    (void)size;
    pthread_mutex_lock(&u->lock);
    unsigned hold = u->hold_ms;
    int refuse = u->refuse;
    while (u->gated)
        pthread_cond_wait(&u->opened, &u->lock);
    pthread_mutex_unlock(&u->lock);
    if (hold) {
        struct timespec ts = {hold / 1000, (long)(hold % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    struct car_reader r;
    car_reader_init(&r, 1 << 21);
    uint8_t buf[65536];
    ssize_t k;
    int rc = 0;
    while (rc == 0 && (k = read(fd, buf, sizeof buf)) > 0)
        rc = car_reader_feed(&r, buf, (size_t)k, got_block, u);
    if (rc == 0)
        rc = car_reader_finish(&r);
    car_reader_free(&r);
    pthread_mutex_lock(&u->lock);
    u->cars++;
    pthread_mutex_unlock(&u->lock);
    if (rc == 0 && refuse) {
        snprintf(err, errlen, "refused (test)");
        return refuse;
    }
    return rc;
}

static const struct node_ops up_ops = {.put_car = up_put_car};

static void up_init(struct up *u)
{
    memset(u, 0, sizeof *u);
    u->base.ops = &up_ops;
    u->base.description = "test upstream";
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->opened, NULL);
}

/* Hold every CAR while gated; let them through once not. */
static void set_gate(struct up *u, bool gated)
{
    pthread_mutex_lock(&u->lock);
    u->gated = gated;
    pthread_cond_broadcast(&u->opened);
    pthread_mutex_unlock(&u->lock);
}

/* A raw block of len bytes, filled from seed, and its CIDv1. */
static uint8_t *raw_block(unsigned seed, size_t len, struct cid *c)
{
    uint8_t *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)((i * 2654435761u + seed * 40503u) >> 11);
    uint8_t d[32];
    SHA256(b, len, d);
    memset(c, 0, sizeof *c);
    c->version = 1;
    c->codec = CID_CODEC_RAW;
    c->mh_code = MH_SHA2_256;
    c->mh[0] = 0x12;
    c->mh[1] = 32;
    memcpy(c->mh + 2, d, 32);
    c->mh_len = 34;
    return b;
}

static void offer(struct prepush *p, unsigned seed, size_t len, struct cid *c)
{
    uint8_t *b = raw_block(seed, len, c);
    prepush_block(p, c, b, len);
    free(b);
}

/* Offer the dag-pb block b (which must decode with nlinks links) under its CIDv0. */
static struct cid offer_pb(struct prepush *p, const uint8_t *b, size_t len, size_t nlinks)
{
    struct cid c = {.version = 0, .codec = CID_CODEC_DAG_PB, .mh_code = MH_SHA2_256, .mh_len = 34};
    c.mh[0] = 0x12, c.mh[1] = 32;
    SHA256(b, len, c.mh + 2);
    struct dagpb_node dn;
    CHECK_EQ_INT(dagpb_decode(b, len, &dn), 0);
    CHECK_EQ_INT(dn.nlinks, nlinks);
    dagpb_node_free(&dn);
    prepush_block(p, &c, b, len);
    return c;
}

static uint64_t stat_of(struct prepush *p, const char *name)
{
    char buf[1024];
    prepush_stats(p, buf, sizeof buf);
    return unit_stat(buf, name);
}

/* An upstream that holds each CAR hold_ms before it reads it, and a prepush over it. */
static struct prepush *start(struct up *u, unsigned hold_ms)
{
    up_init(u);
    u->hold_ms = hold_ms;
    struct prepush *p = NULL;
    CHECK_EQ_INT(prepush_new(&u->base, &p), 0);
    return p;
}

static void stop(struct prepush *p, struct up *u)
{
    prepush_free(p);
    pthread_cond_destroy(&u->opened);
    pthread_mutex_destroy(&u->lock);
}

/* Blocks go in one CAR, and count once it is answered; small ones and non-leaves never go. */
static void test_sends(void)
{
    struct up u;
    struct prepush *p = start(&u, 0);
    struct cid c[8], small;
    /* Made first, then offered back to back: the sender ends a CAR after PREPUSH_IDLE_MS
     * (200 ms) with nothing new, and making a block between two offers on a slow machine
     * (sanitizers) could take that long twice (three CARs). */
    uint8_t *blk[8];
    for (unsigned i = 0; i < 8; i++)
        blk[i] = raw_block(i, 256 * 1024, &c[i]);
    for (unsigned i = 0; i < 8; i++) {
        prepush_block(p, &c[i], blk[i], 256 * 1024);
        free(blk[i]);
    }
    offer(p, 99, 1000, &small); /* below PREPUSH_MIN_BLOCK: left to the push */
    /* A dag-pb node with a link (to c[0]) and 70,000 bytes of data: not a leaf, however
     * big (a push that skipped it would skip what it links). Links come before Data. */
    size_t dl = 70000, nl = 2 + 36 + 1 + 3 + dl;
    uint8_t *pb = calloc(1, nl), *q = pb;
    *q++ = 0x12, *q++ = 36, *q++ = 0x0a, *q++ = 34;
    memcpy(q, c[0].mh, 34), q += 34;
    *q++ = 0x0a, *q++ = (uint8_t)(0x80 | (dl & 0x7f)), *q++ = (uint8_t)(0x80 | ((dl >> 7) & 0x7f));
    *q++ = (uint8_t)(dl >> 14);
    struct cid inner = offer_pb(p, pb, nl, 1);
    free(pb);
    prepush_drain(p, 5000);
    CHECK(!prepush_has(p, &inner));
    for (unsigned i = 0; i < 8; i++)
        CHECK(prepush_has(p, &c[i]));
    CHECK(!prepush_has(p, &small));
    CHECK_EQ_INT(u.blocks, 8);
    CHECK(u.cars >= 1);
    for (unsigned i = 0; i < 8 && i < u.blocks; i++)
        CHECK(cid_equal(&u.got[i], &c[i])); /* in the order they were stored */
    CHECK_EQ_INT(stat_of(p, "sync_ahead_blocks"), 8);
    CHECK_EQ_INT(stat_of(p, "sync_ahead_bytes"), 8 * 256 * 1024);
    CHECK(u.cars <= 2); /* one CAR, or two if the sender woke between them */
    /* The same multihash under dag-pb is not the chunk that went: the push must still walk
     * what such a block links. */
    struct cid v0 = c[3];
    v0.version = 0;
    v0.codec = CID_CODEC_DAG_PB;
    CHECK(!prepush_has(p, &v0));
    /* A dag-pb leaf (Data only, as a CIDv0 file chunk is): sent, and known under v0 and v1. */
    size_t dlen = 100000, ll = 4 + dlen; /* field 1, varint(100000) in 3 bytes, the data */
    uint8_t *leaf = calloc(1, ll);
    leaf[0] = 0x0a, leaf[1] = (uint8_t)(0x80 | (dlen & 0x7f));
    leaf[2] = (uint8_t)(0x80 | ((dlen >> 7) & 0x7f)), leaf[3] = (uint8_t)(dlen >> 14);
    memset(leaf + 4, 0x5a, dlen);
    struct cid lv0 = offer_pb(p, leaf, ll, 0);
    free(leaf);
    prepush_drain(p, 5000);
    struct cid lv1 = lv0;
    lv1.version = 1;
    CHECK(prepush_has(p, &lv0));
    CHECK(prepush_has(p, &lv1));
    struct cid lraw = lv0;
    lraw.version = 1;
    lraw.codec = CID_CODEC_RAW;
    CHECK(!prepush_has(p, &lraw));
    prepush_forget(p);
    CHECK(!prepush_has(p, &c[0]));
    stop(p, &u);
}

/* A refused CAR confirms nothing, and for a while later blocks are left to the push. */
static void test_refused(void)
{
    struct up u;
    struct prepush *p = start(&u, 0);
    pthread_mutex_lock(&u.lock);
    u.refuse = -EIO;
    pthread_mutex_unlock(&u.lock);
    struct cid c[4];
    for (unsigned i = 0; i < 4; i++)
        offer(p, 10 + i, 128 * 1024, &c[i]);
    prepush_drain(p, 5000);
    for (unsigned i = 0; i < 4; i++)
        CHECK(!prepush_has(p, &c[i]));
    CHECK_EQ_INT(stat_of(p, "sync_ahead_blocks"), 0);
    CHECK(stat_of(p, "sync_ahead_failed_cars") >= 1);
    pthread_mutex_lock(&u.lock);
    u.refuse = 0;
    pthread_mutex_unlock(&u.lock);
    struct cid later;
    offer(p, 20, 128 * 1024, &later); /* within the back-off: not sent */
    prepush_drain(p, 5000);
    CHECK(!prepush_has(p, &later));
    CHECK(stat_of(p, "sync_ahead_skipped") >= 1);
    stop(p, &u);
}

/* A node that does not read yet: the queue is bounded (the writer never waits), the drain is
 * bounded, and what was queued arrives once the node reads. The node is held by a gate, not
 * for a time: the offers (72 MiB of copies) may take seconds under the sanitizers. */
static void test_bounded(void)
{
    struct up u;
    struct prepush *p = start(&u, 0);
    set_gate(&u, true);
    unsigned n = PREPUSH_QUEUE_BYTES / (1u << 20) + 40; /* more than the queue holds */
    uint8_t **b = calloc(n, sizeof *b);
    struct cid *c = calloc(n, sizeof *c);
    for (unsigned i = 0; i < n; i++)
        b[i] = raw_block(100 + i, 1u << 20, &c[i]);
    uint64_t t0 = clock_mono_ms();
    for (unsigned i = 0; i < n; i++)
        prepush_block(p, &c[i], b[i], 1u << 20);
    CHECK(clock_mono_ms() - t0 < 10000); /* never waited on the node (it would hang) */
    for (unsigned i = 0; i < n; i++)
        free(b[i]);
    free(b);
    free(c);
    CHECK(stat_of(p, "sync_ahead_skipped") >= 1);
    t0 = clock_mono_ms();
    prepush_drain(p, 100);
    CHECK(clock_mono_ms() - t0 < 3000);
    set_gate(&u, false);
    prepush_drain(p, 30000);
    uint64_t sent = stat_of(p, "sync_ahead_blocks"), skipped = stat_of(p, "sync_ahead_skipped");
    CHECK_EQ_INT(sent + skipped, n);
    CHECK(sent >= PREPUSH_QUEUE_BYTES / (1u << 20) - 1);
    stop(p, &u);
}

/* Freeing with blocks queued and a CAR on its way ends at once (what is queued is dropped). */
static void test_free_busy(void)
{
    struct up u;
    struct prepush *p = start(&u, 300);
    struct cid c;
    for (unsigned i = 0; i < 6; i++)
        offer(p, 300 + i, 512 * 1024, &c);
    uint64_t t0 = clock_mono_ms();
    prepush_free(p);
    CHECK(clock_mono_ms() - t0 < 3000);
    pthread_mutex_destroy(&u.lock);
}

int main(void)
{
    test_sends();
    test_refused();
    test_bounded();
    test_free_busy();
    return unit_done("test_prepush");
}

/* test_chunkcache.c - the chunk cache on its own: states, single flight, failure, LRU budget,
 * bounded waits. No check depends on the machine's speed: results are decided by events (a
 * chunk that is never completed, a slot that is taken), and polls for an event have a bound far
 * above any normal run. */
#include "config.h"

#include "chunkcache.h"
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define CS 1024

static struct cid cid_a, cid_b;

static void make_cid(struct cid *c, uint8_t tag)
{
    memset(c, 0, sizeof *c);
    c->version = 1;
    c->codec = CID_CODEC_RAW;
    c->mh_code = MH_SHA2_256;
    c->mh_len = 34;
    c->mh[0] = 0x12;
    c->mh[1] = 0x20;
    for (int i = 2; i < 34; i++)
        c->mh[i] = (uint8_t)(tag + i);
}

static struct chunk_key key(const struct cid *c, uint64_t idx)
{
    return (struct chunk_key){.cid = c, .cid_hash = cid_hash(c), .index = idx};
}

static char *filled(size_t len, int v)
{
    char *d = chunkcache_data_alloc(len);
    if (!d)
        abort();
    memset(d, v, len);
    return d;
}

/* Claim, complete, hit; another CID with the same index is another chunk. */
static void test_basic(void)
{
    struct chunkcache *cc;
    struct chunk *ch, *ch2;
    struct chunkcache_stats st;
    struct chunk_key ka = key(&cid_a, 3), kb = key(&cid_b, 3);

    CHECK_EQ_INT(chunkcache_new(10 * CS, CS, &cc), 0);
    CHECK_EQ_INT(chunkcache_chunk_size(cc), CS);
    CHECK_EQ_INT(chunkcache_get(cc, &ka, CS, &ch), CHUNK_CLAIMED);
    CHECK_EQ_INT(chunkcache_index(ch), 3);
    CHECK(!chunkcache_advisory(ch));
    chunkcache_complete(cc, ch, filled(CS, 'a'), 0);
    CHECK_EQ_INT(chunkcache_wait(cc, ch), 0);
    chunkcache_release(cc, ch);

    CHECK_EQ_INT(chunkcache_get(cc, &ka, CS, &ch), CHUNK_READY);
    CHECK_EQ_INT(chunkcache_data(ch)[CS - 1], 'a');
    CHECK_EQ_INT(chunkcache_get(cc, &kb, 100, &ch2), CHUNK_CLAIMED);
    CHECK_EQ_INT(chunkcache_len(ch2), 100);
    chunkcache_complete(cc, ch2, filled(100, 'b'), 0);
    chunkcache_release(cc, ch2);
    CHECK_EQ_INT(chunkcache_claim(cc, &kb, 100, &ch2), -EEXIST);
    CHECK(ch2 == NULL);
    chunkcache_release(cc, ch);
    CHECK_EQ_INT(chunkcache_get(cc, &kb, 100, &ch2), CHUNK_READY);
    CHECK_EQ_INT(chunkcache_data(ch2)[0], 'b');
    chunkcache_release(cc, ch2);

    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.hits, 2);
    CHECK_EQ_INT(st.misses, 2);
    CHECK_EQ_INT(st.chunks, 2);
    CHECK_EQ_INT(st.bytes_cached, CS + 100);
    CHECK_EQ_INT(st.bytes_fetched, CS + 100);
    CHECK_EQ_INT(st.bytes_loading, 0);

    CHECK_EQ_INT(chunkcache_get(cc, &ka, 0, &ch), -EINVAL);
    CHECK_EQ_INT(chunkcache_get(cc, &ka, CS + 1, &ch), -EINVAL);
    chunkcache_free(cc);
    CHECK_EQ_INT(chunkcache_new(CS - 1, CS, &cc), -EINVAL);
    chunkcache_free(NULL);
}

/* A failed fetch: the waiter gets the error, the entry is gone, the next get claims again. */
static void test_failure(void)
{
    struct chunkcache *cc;
    struct chunk *ch, *w;
    struct chunkcache_stats st;
    struct chunk_key k = key(&cid_a, 0);

    CHECK_EQ_INT(chunkcache_new(4 * CS, CS, &cc), 0);
    CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &ch), CHUNK_CLAIMED);
    CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &w), CHUNK_LOADING);
    chunkcache_complete(cc, ch, NULL, -ETIMEDOUT);
    CHECK_EQ_INT(chunkcache_wait(cc, w), -ETIMEDOUT);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.chunks, 0);
    CHECK_EQ_INT(st.bytes_cached, 0);
    CHECK_EQ_INT(st.failed, 1);
    CHECK_EQ_INT(st.waits, 1);
    chunkcache_release(cc, w);
    chunkcache_release(cc, ch);

    CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &ch), CHUNK_CLAIMED);
    chunkcache_complete(cc, ch, filled(CS, 1), 0);
    chunkcache_release(cc, ch);
    chunkcache_free(cc);
}

/* LRU eviction within the budget; referenced chunks are kept (overshoot), then evicted. */
static void test_lru(void)
{
    struct chunkcache *cc;
    struct chunk *ch, *held[5];
    struct chunkcache_stats st;

    CHECK_EQ_INT(chunkcache_new(4 * CS, CS, &cc), 0);
    for (uint64_t i = 0; i < 4; i++) {
        struct chunk_key k = key(&cid_a, i);
        CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &ch), CHUNK_CLAIMED);
        chunkcache_complete(cc, ch, filled(CS, (int)i), 0);
        chunkcache_release(cc, ch);
    }
    /* Touch 0, so 1 is the least recently used. */
    struct chunk_key k0 = key(&cid_a, 0), k1 = key(&cid_a, 1), k4 = key(&cid_a, 4);
    CHECK_EQ_INT(chunkcache_get(cc, &k0, CS, &ch), CHUNK_READY);
    chunkcache_release(cc, ch);
    CHECK_EQ_INT(chunkcache_get(cc, &k4, CS, &ch), CHUNK_CLAIMED);
    chunkcache_complete(cc, ch, filled(CS, 4), 0);
    chunkcache_release(cc, ch);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.evictions, 1);
    CHECK_EQ_INT(st.bytes_cached, 4 * CS);
    /* LRU order now 2 3 0 4. Readahead claims evict too, and stop at half the budget. */
    struct chunk *pf1, *pf5;
    struct chunk_key k5 = key(&cid_a, 5), k6 = key(&cid_a, 6);
    CHECK_EQ_INT(chunkcache_claim(cc, &k1, CS, &pf1), 0);
    CHECK(chunkcache_advisory(pf1));
    CHECK_EQ_INT(chunkcache_claim(cc, &k5, CS, &pf5), 0);
    CHECK_EQ_INT(chunkcache_claim(cc, &k6, CS, &ch), -ENOSPC);
    CHECK_EQ_INT(chunkcache_get(cc, &k5, CS, &ch), CHUNK_LOADING);
    chunkcache_complete(cc, pf1, filled(CS, 1), 0);
    chunkcache_complete(cc, pf5, NULL, -ECANCELED);
    CHECK_EQ_INT(chunkcache_wait(cc, ch), -ECANCELED);
    CHECK(chunkcache_advisory(ch));
    chunkcache_release(cc, ch);
    chunkcache_release(cc, pf1);
    chunkcache_release(cc, pf5);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.evictions, 3); /* 2 and 3 */
    CHECK_EQ_INT(st.bytes_cached, 3 * CS);
    CHECK_EQ_INT(st.bytes_loading, 0);
    CHECK_EQ_INT(st.prefetches, 2);
    CHECK_EQ_INT(chunkcache_get(cc, &k0, CS, &ch), CHUNK_READY);
    chunkcache_release(cc, ch); /* LRU order now 4 1 0 */

    /* Hold 5 chunks of another file: the cache evicts all it can, then overshoots. */
    for (uint64_t i = 0; i < 5; i++) {
        struct chunk_key k = key(&cid_b, i);
        CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &held[i]), CHUNK_CLAIMED);
        chunkcache_complete(cc, held[i], filled(CS, 'b'), 0);
    }
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.chunks, 5);
    CHECK_EQ_INT(st.bytes_cached, 5 * CS);
    CHECK_EQ_INT(st.evictions, 6);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(chunkcache_data(held[i])[0], 'b');
    for (int i = 0; i < 5; i++)
        chunkcache_release(cc, held[i]);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.bytes_cached, 4 * CS);
    CHECK_EQ_INT(st.evictions, 7);
    /* The first released went first. */
    struct chunk_key kb0 = key(&cid_b, 0), kb4 = key(&cid_b, 4);
    CHECK_EQ_INT(chunkcache_claim(cc, &kb4, CS, &ch), -EEXIST);
    CHECK_EQ_INT(chunkcache_claim(cc, &kb0, CS, &ch), 0); /* evicts b1, the next oldest */
    chunkcache_complete(cc, ch, NULL, -ECANCELED);
    chunkcache_release(cc, ch);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.prefetches, 3);
    CHECK_EQ_INT(st.evictions, 8);
    CHECK_EQ_INT(st.chunks, 3);
    CHECK_EQ_INT(st.bytes_cached, 3 * CS);
    chunkcache_free(cc);
}

/* Many chunks: the table grows and every chunk is still found. */
static void test_many(void)
{
    struct chunkcache *cc;
    struct chunk *ch;
    const uint64_t n = 3000;

    CHECK_EQ_INT(chunkcache_new(n * 16, 16, &cc), 0);
    for (uint64_t i = 0; i < n; i++) {
        struct chunk_key k = key(i & 1 ? &cid_a : &cid_b, i);
        CHECK_EQ_INT(chunkcache_get(cc, &k, 16, &ch), CHUNK_CLAIMED);
        chunkcache_complete(cc, ch, filled(16, (int)(i & 0x7f)), 0);
        chunkcache_release(cc, ch);
    }
    int bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct chunk_key k = key(i & 1 ? &cid_a : &cid_b, i);
        if (chunkcache_get(cc, &k, 16, &ch) != CHUNK_READY ||
            chunkcache_data(ch)[5] != (char)(i & 0x7f))
            bad++;
        chunkcache_release(cc, ch);
    }
    CHECK_EQ_INT(bad, 0);
    chunkcache_free(cc);
}

/* Single flight: 16 threads want the same missing chunk; one claims, the rest wait. */
struct sf {
    struct chunkcache *cc;
    pthread_mutex_t lock;
    int claims, ok;
};

static void *sf_thread(void *arg)
{
    struct sf *s = arg;
    struct chunk_key k = key(&cid_a, 7);
    struct chunk *ch;
    int rc = chunkcache_get(s->cc, &k, CS, &ch);

    if (rc == CHUNK_CLAIMED) {
        pthread_mutex_lock(&s->lock);
        s->claims++;
        pthread_mutex_unlock(&s->lock);
        usleep(50000);
        chunkcache_complete(s->cc, ch, filled(CS, 'z'), 0);
    }
    if (rc >= 0 && chunkcache_wait(s->cc, ch) == 0 && chunkcache_data(ch)[10] == 'z') {
        pthread_mutex_lock(&s->lock);
        s->ok++;
        pthread_mutex_unlock(&s->lock);
    }
    chunkcache_release(s->cc, ch);
    return NULL;
}

static void test_single_flight(void)
{
    struct sf s = {.claims = 0};
    pthread_t t[16];
    struct chunkcache_stats st;

    pthread_mutex_init(&s.lock, NULL);
    CHECK_EQ_INT(chunkcache_new(8 * CS, CS, &s.cc), 0);
    for (int i = 0; i < 16; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, sf_thread, &s), 0);
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(s.claims, 1);
    CHECK_EQ_INT(s.ok, 16);
    chunkcache_get_stats(s.cc, &st);
    CHECK_EQ_INT(st.misses, 1);
    CHECK_EQ_INT(st.hits + st.waits, 15);
    chunkcache_free(s.cc);
    pthread_mutex_destroy(&s.lock);
}

/* A wait with a deadline on a chunk that is never completed ends with -ETIMEDOUT; the chunk
 * stays LOADING for its fetcher. */
static void test_wait_deadline(void)
{
    struct chunkcache *cc;
    struct chunk *mine, *other;
    struct chunkcache_stats st;
    struct timespec dl;
    struct chunk_key k = key(&cid_a, 3);

    CHECK_EQ_INT(chunkcache_new(8 * CS, CS, &cc), 0);
    CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &mine), CHUNK_CLAIMED);
    CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &other), CHUNK_LOADING);
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += 20 * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    CHECK_EQ_INT(chunkcache_wait_until(cc, other, &dl), -ETIMEDOUT);
    CHECK_EQ_INT(chunkcache_wait_until(cc, other, &dl), -ETIMEDOUT); /* already passed */
    chunkcache_release(cc, other);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.waits_timedout, 2);
    CHECK_EQ_INT(st.bytes_loading, CS);
    chunkcache_complete(cc, mine, filled(CS, 'q'), 0);
    CHECK_EQ_INT(chunkcache_wait_until(cc, mine, &dl), 0); /* READY: no wait at all */
    chunkcache_release(cc, mine);
    chunkcache_free(cc);
}

/* Slow waits: at most 2 at once, 1 per file. */
struct slow_arg {
    struct chunkcache *cc;
    struct chunk *ch;
    int rc;
};

static void *slow_thread(void *arg)
{
    struct slow_arg *a = arg;
    a->rc = chunkcache_wait_until(a->cc, a->ch, NULL);
    return NULL;
}

static uint64_t await_slow(struct chunkcache *cc, uint64_t n)
{
    struct chunkcache_stats st;
    for (int i = 0; i < 30000; i++) { /* 60 s: only a hang reaches it */
        chunkcache_get_stats(cc, &st);
        if (st.slow_waits >= n)
            break;
        usleep(2000);
    }
    return st.slow_waits;
}

static void test_slow_waits(void)
{
    static struct cid cid_c;
    struct chunkcache *cc;
    struct chunk *fa, *fb, *fc, *w;
    struct chunkcache_stats st;
    struct chunk_key ka = key(&cid_a, 0), kb = key(&cid_b, 0), kc;
    struct slow_arg a1, a2;
    pthread_t t1, t2;

    make_cid(&cid_c, 3);
    kc = key(&cid_c, 0);
    CHECK_EQ_INT(chunkcache_new(8 * CS, CS, &cc), 0);
    CHECK_EQ_INT(chunkcache_set_wait_limits(cc, 10, 2, 1), 0);
    CHECK_EQ_INT(chunkcache_get(cc, &ka, CS, &fa), CHUNK_CLAIMED);
    CHECK_EQ_INT(chunkcache_get(cc, &kb, CS, &fb), CHUNK_CLAIMED);
    CHECK_EQ_INT(chunkcache_get(cc, &kc, CS, &fc), CHUNK_CLAIMED);

    /* One slow wait on file a... */
    a1 = (struct slow_arg){.cc = cc};
    CHECK_EQ_INT(chunkcache_get(cc, &ka, CS, &a1.ch), CHUNK_LOADING);
    CHECK_EQ_INT(pthread_create(&t1, NULL, slow_thread, &a1), 0);
    CHECK_EQ_INT(await_slow(cc, 1), 1);
    /* ... so a second one on a is refused once slow, */
    CHECK_EQ_INT(chunkcache_get(cc, &ka, CS, &w), CHUNK_LOADING);
    CHECK_EQ_INT(chunkcache_wait_until(cc, w, NULL), -EAGAIN);
    chunkcache_release(cc, w);
    /* one on file b is fine, */
    a2 = (struct slow_arg){.cc = cc};
    CHECK_EQ_INT(chunkcache_get(cc, &kb, CS, &a2.ch), CHUNK_LOADING);
    CHECK_EQ_INT(pthread_create(&t2, NULL, slow_thread, &a2), 0);
    CHECK_EQ_INT(await_slow(cc, 2), 2);
    /* and a third slow one, on file c, is past the bound. */
    CHECK_EQ_INT(chunkcache_get(cc, &kc, CS, &w), CHUNK_LOADING);
    CHECK_EQ_INT(chunkcache_wait_until(cc, w, NULL), -EAGAIN);
    chunkcache_release(cc, w);

    chunkcache_complete(cc, fa, filled(CS, 'a'), 0);
    chunkcache_complete(cc, fb, NULL, -EIO);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK_EQ_INT(a1.rc, 0);
    CHECK_EQ_INT(a2.rc, -EIO);
    chunkcache_release(cc, a1.ch);
    chunkcache_release(cc, a2.ch);
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.waits_refused, 2);
    CHECK_EQ_INT(st.slow_waits, 0);
    chunkcache_complete(cc, fc, NULL, -ECANCELED);
    chunkcache_release(cc, fa);
    chunkcache_release(cc, fb);
    chunkcache_release(cc, fc);
    chunkcache_free(cc);
}

/* Chunks read through (consumed) go on the scan list: evicted before the LRU ones, oldest
 * first, kept to scan_max once new chunks are made, and a new chunk gets the buffer of the one
 * evicted for it. */
static void test_scan(void)
{
    struct chunkcache *cc;
    struct chunk *ch;
    struct chunkcache_stats st;

    CHECK_EQ_INT(chunkcache_new(16 * CS, CS, &cc), 0);
    chunkcache_set_scan_max(cc, 4 * CS);
    /* 4 chunks of b, read at random (LRU), then 10 of a, read through (scan); all claimed
     * first (nothing is evicted while everything is referenced). */
    struct chunk *all[14];
    for (uint64_t i = 0; i < 14; i++) {
        struct chunk_key k = i < 4 ? key(&cid_b, i) : key(&cid_a, i - 4);
        CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &all[i]), CHUNK_CLAIMED);
    }
    for (uint64_t i = 0; i < 14; i++) {
        char *b = chunkcache_buffer(all[i]);
        CHECK(b != NULL);
        memset(b, (int)i, CS);
        chunkcache_complete(cc, all[i], b, 0);
        if (i >= 4)
            chunkcache_consumed(cc, all[i]);
        chunkcache_release(cc, all[i]);
    }
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.bytes_cached, 14 * CS);
    CHECK_EQ_INT(st.bytes_scan, 10 * CS); /* scan_max applies when chunks are made */
    CHECK_EQ_INT(st.recycled, 0);
    /* A new chunk: the oldest chunk read through goes, and its buffer is the new one's. */
    struct chunk_key k0 = key(&cid_a, 0), kn = key(&cid_a, 100);
    CHECK_EQ_INT(chunkcache_get(cc, &k0, CS, &ch), CHUNK_READY);
    const char *old = chunkcache_data(ch);
    chunkcache_release(cc, ch); /* a hit does not move it off the scan list's order: it is
                                 * pushed back as the newest there */
    CHECK_EQ_INT(chunkcache_get(cc, &kn, CS, &ch), CHUNK_CLAIMED);
    struct chunk_key k1 = key(&cid_a, 1);
    CHECK(!chunkcache_present(cc, &k1)); /* a0 was used: a1 is now the oldest */
    CHECK(chunkcache_present(cc, &k0));
    char *b = chunkcache_buffer(ch);
    CHECK(b != old); /* a0 kept its buffer */
    chunkcache_get_stats(cc, &st);
    CHECK_EQ_INT(st.recycled, 1);
    memset(b, 'n', CS);
    chunkcache_complete(cc, ch, b, 0);
    chunkcache_release(cc, ch);
    /* Over the budget: the scan list goes first, then the LRU (b's chunks stay meanwhile). */
    for (uint64_t i = 200; i < 210; i++) {
        struct chunk_key k = key(&cid_a, i);
        CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &ch), CHUNK_CLAIMED);
        char *d = chunkcache_buffer(ch);
        memset(d, 'x', CS);
        chunkcache_complete(cc, ch, d, 0);
        chunkcache_release(cc, ch);
    }
    for (uint64_t i = 0; i < 4; i++) {
        struct chunk_key k = key(&cid_b, i);
        CHECK(chunkcache_present(cc, &k));
    }
    chunkcache_get_stats(cc, &st);
    /* 9 on the scan list: 5 made go to scan_max (4), 2 more fit, 3 go over the budget. */
    CHECK_EQ_INT(st.bytes_cached, 16 * CS);
    CHECK_EQ_INT(st.recycled, 9);
    CHECK_EQ_INT(st.bytes_scan, CS);
    /* The bytes of every chunk still there are its own. */
    for (uint64_t i = 0; i < 4; i++) {
        struct chunk_key k = key(&cid_b, i);
        CHECK_EQ_INT(chunkcache_get(cc, &k, CS, &ch), CHUNK_READY);
        CHECK(chunkcache_data(ch)[0] == (char)i && chunkcache_data(ch)[CS - 1] == (char)i);
        chunkcache_release(cc, ch);
    }
    /* A claimed chunk that fails keeps no buffer: the spare goes with the chunk. */
    struct chunk_key kf = key(&cid_a, 300);
    CHECK_EQ_INT(chunkcache_get(cc, &kf, CS, &ch), CHUNK_CLAIMED);
    chunkcache_complete(cc, ch, NULL, -EIO);
    chunkcache_release(cc, ch);
    chunkcache_free(cc);
}

int main(void)
{
    make_cid(&cid_a, 1);
    make_cid(&cid_b, 2);
    test_basic();
    test_failure();
    test_lru();
    test_many();
    test_single_flight();
    test_wait_deadline();
    test_slow_waits();
    test_scan();
    return unit_done("chunkcache");
}

/* test_reader.c - reads through the chunk cache against a stub node: exact bytes, EOF, single
 * flight, readahead (sequential vs random), the budget, failures, shutdown with fetches in flight.
 *
 * The stub's byte at offset i is (i * 131 + seed) & 0xff; it counts calls and bytes, records how
 * many times each chunk was fetched, and can delay and fail requests. */
#include "config.h"

#include "reader.h"
#include "unit.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define SEED 7

struct stub {
    struct node base;
    uint64_t size;
    size_t cs;            /* to count fetches per chunk */
    uint8_t pattern[512]; /* the bytes repeat every 256 */

    pthread_mutex_t lock; /* guards everything below */
    unsigned calls;
    uint64_t bytes;
    uint64_t max_len;
    unsigned *fetched; /* per chunk */
    uint64_t nchunks;
    uint64_t bad_calls; /* zero length or past EOF */
    unsigned delay_us;
    int fail_err;        /* fail requests touching [fail_lo, fail_hi) ... */
    unsigned fail_count; /* ... this many times */
    uint64_t fail_lo, fail_hi;
    unsigned active, max_active;
};

static uint8_t byte_at(uint64_t i)
{
    return (uint8_t)((i * 131 + SEED) & 0xff);
}

static ssize_t stub_read(struct node *n, const struct cid *c, uint64_t off, size_t len, char *buf)
{
    struct stub *s = (struct stub *)n;
    unsigned delay;
    int err = 0;

    (void)c;
    pthread_mutex_lock(&s->lock);
    s->calls++;
    if (len == 0 || off + len > s->size) {
        s->bad_calls++;
        pthread_mutex_unlock(&s->lock);
        return -EIO;
    }
    if (s->fail_count && off < s->fail_hi && off + len > s->fail_lo) {
        s->fail_count--;
        err = s->fail_err;
    } else {
        s->bytes += len;
        if (len > s->max_len)
            s->max_len = len;
        for (uint64_t i = off / s->cs; i <= (off + len - 1) / s->cs && i < s->nchunks; i++)
            s->fetched[i]++;
    }
    delay = s->delay_us;
    if (++s->active > s->max_active)
        s->max_active = s->active;
    pthread_mutex_unlock(&s->lock);
    if (delay)
        usleep(delay);
    if (!err) {
        for (size_t o = 0; o < len;) {
            size_t p = (size_t)((off + o) & 0xff);
            size_t k = len - o < 256 ? len - o : 256;
            memcpy(buf + o, s->pattern + p, k);
            o += k;
        }
    }
    pthread_mutex_lock(&s->lock);
    s->active--;
    pthread_mutex_unlock(&s->lock);
    return err ? err : (ssize_t)len;
}

static void stub_destroy(struct node *n)
{
    (void)n;
}

static const struct node_ops stub_ops = {
    .read = stub_read,
    .destroy = stub_destroy,
};

/* read_stream: the bytes go to the sink in pieces of 3000 (so pieces straddle chunks); a chunk
 * counts as fetched when its first byte is delivered. A failure set with stub_fail hits the
 * request once the bytes reach fail_lo. */
static int stub_read_stream(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                            int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    struct stub *s = (struct stub *)n;
    char piece[3000];
    int rc = 0;

    (void)c;
    pthread_mutex_lock(&s->lock);
    s->calls++;
    if (len == 0 || off + len > s->size) {
        s->bad_calls++;
        pthread_mutex_unlock(&s->lock);
        return -EIO;
    }
    if (len > s->max_len)
        s->max_len = len;
    if (++s->active > s->max_active)
        s->max_active = s->active;
    unsigned delay = s->delay_us;
    pthread_mutex_unlock(&s->lock);
    for (uint64_t o = off; o < off + len && rc == 0;) {
        size_t k = off + len - o < sizeof piece ? (size_t)(off + len - o) : sizeof piece;
        pthread_mutex_lock(&s->lock);
        if (s->fail_count && o + k > s->fail_lo && o < s->fail_hi) {
            s->fail_count--;
            rc = s->fail_err;
        } else {
            s->bytes += k;
            for (uint64_t i = (o + s->cs - 1) / s->cs; i * s->cs < o + k && i < s->nchunks; i++)
                s->fetched[i]++;
        }
        pthread_mutex_unlock(&s->lock);
        if (rc)
            break;
        for (size_t i = 0; i < k; i++)
            piece[i] = (char)byte_at(o + i);
        if (delay)
            usleep(delay);
        rc = sink(ud, piece, k);
        o += k;
    }
    pthread_mutex_lock(&s->lock);
    s->active--;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static const struct node_ops stub_stream_ops = {
    .read = stub_read,
    .read_stream = stub_read_stream,
    .destroy = stub_destroy,
};

static struct cid file_cid;

static void stub_init(struct stub *s, uint64_t size, size_t cs)
{
    memset(s, 0, sizeof *s);
    s->base.ops = &stub_ops;
    s->base.description = "stub";
    s->size = size;
    s->cs = cs;
    s->nchunks = (size + cs - 1) / cs;
    s->fetched = calloc(s->nchunks + 1, sizeof *s->fetched);
    if (!s->fetched)
        abort();
    for (int i = 0; i < 512; i++)
        s->pattern[i] = byte_at((uint64_t)i);
    pthread_mutex_init(&s->lock, NULL);
}

static void stub_fini(struct stub *s)
{
    free(s->fetched);
    pthread_mutex_destroy(&s->lock);
}

static unsigned stub_calls(struct stub *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned v = s->calls;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static uint64_t stub_get(struct stub *s, const uint64_t *field)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = *field;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void stub_fail(struct stub *s, int err, unsigned count, uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&s->lock);
    s->fail_err = err;
    s->fail_count = count;
    s->fail_lo = lo;
    s->fail_hi = hi;
    pthread_mutex_unlock(&s->lock);
}

static void stub_delay(struct stub *s, unsigned us)
{
    pthread_mutex_lock(&s->lock);
    s->delay_us = us;
    pthread_mutex_unlock(&s->lock);
}

/* Chunks fetched more than once, and chunks never fetched. */
static void stub_fetch_counts(struct stub *s, unsigned *twice, unsigned *never)
{
    *twice = *never = 0;
    pthread_mutex_lock(&s->lock);
    for (uint64_t i = 0; i < s->nchunks; i++) {
        if (s->fetched[i] > 1)
            (*twice)++;
        if (s->fetched[i] == 0)
            (*never)++;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Every chunk of a size-byte file was fetched exactly once, with no bad request. */
static void check_fetched_once(struct stub *s, uint64_t size)
{
    unsigned twice, never;
    stub_fetch_counts(s, &twice, &never);
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(never, 0);
    CHECK_EQ_INT(stub_get(s, &s->bad_calls), 0);
    CHECK_EQ_INT(stub_get(s, &s->bytes), size);
}

static uint64_t stat_of(struct reader *r, const char *name)
{
    char buf[2048];
    char key[64];
    const char *p;

    reader_stats(r, buf, sizeof buf);
    snprintf(key, sizeof key, "%s ", name);
    for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, strlen(key)) == 0)
            return strtoull(p + strlen(key), NULL, 10);
    }
    fprintf(stderr, "no stat %s\n", name);
    return UINT64_MAX;
}

/* Wait until no prefetch is in flight and no stream is left (bounded). */
static void settle(struct reader *r)
{
    for (int i = 0; i < 1000 && (stat_of(r, "cache_bytes_loading") != 0 ||
                                 stat_of(r, "prefetch_streams_now") != 0);
         i++)
        usleep(2000);
}

static int check_bytes(const char *buf, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((uint8_t)buf[i] != byte_at(off + i))
            return 0;
    }
    return 1;
}

static struct reader *new_reader_span(struct stub *s, size_t cache, size_t cs, size_t ra,
                                      unsigned w, size_t span)
{
    struct reader_config cfg = {.cache_bytes = cache,
                                .chunk_size = cs,
                                .readahead_max = ra,
                                .workers = w,
                                .span_bytes = span};
    struct reader *r = NULL;

    CHECK_EQ_INT(reader_new(&s->base, &cfg, &r), 0);
    if (!r)
        abort();
    return r;
}

static struct reader *new_reader(struct stub *s, size_t cache, size_t cs, size_t ra, unsigned w)
{
    return new_reader_span(s, cache, cs, ra, w, 0);
}

/* Every (offset, size) around the chunk boundaries and EOF, for small files. */
static void test_exact(void)
{
    const size_t cs = 64;
    const uint64_t sizes[] = {0, 1, cs - 1, cs, cs + 1, 5 * cs + 7};
    char buf[400];

    for (int ra = 0; ra < 2; ra++) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            uint64_t size = sizes[si];
            struct stub s;
            stub_init(&s, size, cs);
            struct reader *r = new_reader(&s, 16 * cs, cs, ra ? 4 * cs : 0, 2);
            struct reader_handle *h = reader_open(r, &file_cid, size);
            int bad = 0;
            CHECK(h != NULL);
            for (uint64_t off = 0; off <= size + cs + 1; off++) {
                for (size_t len = 0; len <= 3 * cs + 2; len += (len < cs + 2 ? 1 : 13)) {
                    uint64_t want = off >= size ? 0 : (size - off < len ? size - off : len);
                    memset(buf, 0xee, sizeof buf);
                    ssize_t n = reader_read(h, off, len, buf);
                    if (n != (ssize_t)want || !check_bytes(buf, off, (size_t)want) ||
                        (uint8_t)buf[want] != 0xee)
                        bad++;
                }
            }
            CHECK_EQ_INT(bad, 0);
            CHECK_EQ_INT(reader_read(h, UINT64_MAX - 10, 100, buf), 0);
            settle(r);
            check_fetched_once(&s, size); /* the cache holds the whole file */
            reader_close(h);
            reader_free(r);
            stub_fini(&s);
        }
    }
}

/* 16 threads read the same missing chunk: one fetch. */
struct sf_arg {
    struct reader *r;
    uint64_t size;
    int ok;
};

static void *sf_thread(void *arg)
{
    struct sf_arg *a = arg;
    struct reader_handle *h = reader_open(a->r, &file_cid, a->size);
    char buf[4096];

    if (h && reader_read(h, 1000, sizeof buf, buf) == (ssize_t)sizeof buf &&
        check_bytes(buf, 1000, sizeof buf))
        a->ok = 1;
    reader_close(h);
    return NULL;
}

static void test_single_flight(void)
{
    const size_t cs = 64 << 10;
    struct stub s;
    pthread_t t[16];
    struct sf_arg a[16];

    stub_init(&s, 10 * cs, cs);
    stub_delay(&s, 100000);
    struct reader *r = new_reader(&s, 16 * cs, cs, 8 * cs, 4);
    for (int i = 0; i < 16; i++) {
        a[i] = (struct sf_arg){.r = r, .size = s.size};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, sf_thread, &a[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
    }
    CHECK_EQ_INT(ok, 16);
    CHECK_EQ_INT(stub_calls(&s), 1);
    CHECK_EQ_INT(stub_get(&s, &s.bytes), cs);
    CHECK_EQ_INT(stat_of(r, "cache_misses"), 1);
    CHECK_EQ_INT(stat_of(r, "cache_hits") + stat_of(r, "cache_waits"), 15);
    reader_free(r);
    stub_fini(&s);
}

/* Read a whole file sequentially with reads of rsz bytes; in order, or with neighbouring pairs
 * swapped as async kernel readahead may do. Returns the number of bad reads. */
static int read_all(struct reader_handle *h, uint64_t size, size_t rsz, int swap)
{
    char *buf = malloc(rsz);
    int bad = 0;

    if (!buf)
        abort();
    for (uint64_t off = 0; off < size; off += 2 * rsz) {
        for (int k = 0; k < 2; k++) {
            uint64_t o = off + (uint64_t)((k ^ swap) & 1) * rsz;
            uint64_t want = o >= size ? 0 : (size - o < rsz ? size - o : rsz);
            ssize_t n = reader_read(h, o, rsz, buf);
            if (n != (ssize_t)want || !check_bytes(buf, o, (size_t)want))
                bad++;
        }
    }
    free(buf);
    return bad;
}

static void test_sequential(void)
{
    const size_t cs = 64 << 10;
    const uint64_t size = 64 * cs + 5000;

    for (int swap = 0; swap < 2; swap++) {
        struct stub s;
        stub_init(&s, size, cs);
        stub_delay(&s, 2000);
        struct reader *r = new_reader_span(&s, 128 * cs, cs, 16 * cs, 4, 4 * cs);
        struct reader_handle *h = reader_open(r, &file_cid, size);
        CHECK_EQ_INT(read_all(h, size, 4096, swap), 0);
        settle(r);
        check_fetched_once(&s, size);
        /* 1040 reads of 4 KiB, 65 chunks: spans of 4 chunks once the window is open. */
        CHECK(stub_calls(&s) <= 25);
        CHECK(stat_of(r, "prefetch_chunks") >= 55);
        CHECK(stat_of(r, "cache_hits") > 900);
        CHECK(stub_get(&s, &s.max_len) <= 4 * cs);
        if (getenv("VERBOSE"))
            fprintf(stderr, "sequential: %u calls, largest %" PRIu64 "\n", stub_calls(&s),
                    stub_get(&s, &s.max_len));
        reader_close(h);
        reader_free(r);
        stub_fini(&s);
    }
}

/* Random 4 KiB reads: about one chunk fetched per read, no large prefetch. */
static void test_random(void)
{
    const size_t cs = 64 << 10;
    const uint64_t size = 1024 * cs; /* 64 MiB, never generated in full */
    const int nreads = 300;
    struct stub s;
    uint64_t x = 88172645463325252ull;
    char buf[4096];
    int bad = 0;

    stub_init(&s, size, cs);
    struct reader *r = new_reader(&s, 512 * cs, cs, 128 * cs, 4);
    struct reader_handle *h = reader_open(r, &file_cid, size);
    for (int i = 0; i < nreads; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t off = x % (size - sizeof buf);
        if (reader_read(h, off, sizeof buf, buf) != (ssize_t)sizeof buf ||
            !check_bytes(buf, off, sizeof buf))
            bad++;
    }
    settle(r);
    CHECK_EQ_INT(bad, 0);
    /* A read may straddle two chunks. */
    CHECK(stub_get(&s, &s.bytes) <= (uint64_t)(nreads + 4) * 2 * cs);
    CHECK(stub_get(&s, &s.max_len) <= 2 * cs);
    CHECK(stat_of(r, "prefetch_chunks") <= 4);
    reader_close(h);
    reader_free(r);
    stub_fini(&s);
}

/* A file 10x the cache: cached bytes stay within the budget, nothing is fetched twice. */
static void test_budget(void)
{
    const size_t cs = 256 << 10;
    const size_t cache = 4u << 20;
    const uint64_t size = 10 * (uint64_t)cache + 12345;
    const size_t rsz = 128 << 10;
    struct stub s;
    char *buf = malloc(rsz);
    int bad = 0;
    uint64_t max_cached = 0;

    if (!buf)
        abort();
    stub_init(&s, size, cs);
    struct reader *r = new_reader(&s, cache, cs, 8u << 20, 8);
    struct reader_handle *h = reader_open(r, &file_cid, size);
    for (uint64_t off = 0; off < size; off += rsz) {
        ssize_t n = reader_read(h, off, rsz, buf);
        uint64_t want = size - off < rsz ? size - off : rsz;
        if (n != (ssize_t)want || !check_bytes(buf, off, (size_t)want))
            bad++;
        uint64_t c = stat_of(r, "cache_bytes");
        if (c > max_cached)
            max_cached = c;
    }
    settle(r);
    CHECK_EQ_INT(bad, 0);
    CHECK(max_cached <= cache);
    CHECK(stat_of(r, "cache_bytes") <= cache);
    CHECK(stat_of(r, "cache_evictions") > 0);
    CHECK(stat_of(r, "prefetch_chunks") > 100);
    unsigned twice, never;
    stub_fetch_counts(&s, &twice, &never);
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(stub_get(&s, &s.bytes), size);
    reader_close(h);
    reader_free(r);
    stub_fini(&s);
    free(buf);
}

/* A failed fetch returns its errno; the next read retries and succeeds. A failed prefetch
 * does not fail the read that needs its chunk. */
static void test_failures(void)
{
    const size_t cs = 4096;
    const uint64_t size = 64 * cs;
    struct stub s;
    char buf[8192];

    stub_init(&s, size, cs);
    struct reader *r = new_reader(&s, 64 * cs, cs, 8 * cs, 2);
    struct reader_handle *h = reader_open(r, &file_cid, size);

    stub_fail(&s, -ETIMEDOUT, 1, 0, size);
    CHECK_EQ_INT(reader_read(h, 100, 1000, buf), -ETIMEDOUT);
    CHECK_EQ_INT(reader_read(h, 100, 1000, buf), 1000);
    CHECK(check_bytes(buf, 100, 1000));
    stub_fail(&s, -EIO, 1, 10 * cs, 10 * cs + 1);
    CHECK_EQ_INT(reader_read(h, 9 * cs + 10, 2 * cs, buf), -EIO); /* one request for 9..11 */
    CHECK_EQ_INT(reader_read(h, 9 * cs + 10, 2 * cs, buf), 2 * cs);
    CHECK(check_bytes(buf, 9 * cs + 10, 2 * cs));
    settle(r);
    CHECK_EQ_INT(stat_of(r, "fetch_errors"), 2);
    reader_close(h);

    /* Prefetch failure, no reader waiting: later reads fetch synchronously. */
    h = reader_open(r, &file_cid, size);
    CHECK_EQ_INT(reader_read(h, 20 * cs, 100, buf), 100);
    stub_fail(&s, -EIO, 100, 21 * cs, 40 * cs);
    CHECK_EQ_INT(reader_read(h, 20 * cs + 100, 100, buf), 100); /* a hit; prefetches 21 */
    settle(r);
    CHECK_EQ_INT(stat_of(r, "fetch_errors"), 3);
    stub_fail(&s, 0, 0, 0, 0);
    int bad = 0;
    for (uint64_t off = 20 * cs + 200; off < 30 * cs; off += 3000) {
        if (reader_read(h, off, 3000, buf) != 3000 || !check_bytes(buf, off, 3000))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    reader_close(h);

    /* Prefetch failure while a read waits for it: the read fetches the chunk itself. */
    settle(r);
    h = reader_open(r, &file_cid, size);
    CHECK_EQ_INT(reader_read(h, 45 * cs, 100, buf), 100);
    stub_delay(&s, 100000);
    stub_fail(&s, -ETIMEDOUT, 1, 46 * cs, 47 * cs);
    CHECK_EQ_INT(reader_read(h, 45 * cs + 100, 100, buf), 100); /* a hit; prefetches 46 */
    uint64_t waits = stat_of(r, "cache_waits");
    CHECK_EQ_INT(reader_read(h, 45 * cs + 200, cs, buf), cs); /* waits for 46, refetches */
    CHECK(check_bytes(buf, 45 * cs + 200, cs));
    CHECK_EQ_INT(stat_of(r, "cache_waits"), waits + 1);
    stub_delay(&s, 0);
    reader_close(h);
    settle(r);
    CHECK_EQ_INT(stat_of(r, "fetch_errors"), 4);
    CHECK_EQ_INT(stub_get(&s, &s.bad_calls), 0);
    reader_free(r);
    stub_fini(&s);
}

/* reader_free with prefetch jobs running and queued: neither hangs nor leaks. */
static void test_free_inflight(void)
{
    const size_t cs = 64 << 10;
    const uint64_t size = 256 * cs;
    struct stub s;
    char buf[4096];
    struct timespec t0, t1;

    stub_init(&s, size, cs);
    stub_delay(&s, 200000);
    struct reader_config cfg = {.cache_bytes = 256 * cs,
                                .chunk_size = cs,
                                .readahead_max = 64 * cs,
                                .workers = 2,
                                .span_bytes = cs,
                                .queue_max = 8};
    struct reader *r = NULL;
    CHECK_EQ_INT(reader_new(&s.base, &cfg, &r), 0);
    struct reader_handle *h = reader_open(r, &file_cid, size);
    for (uint64_t off = 0; off < 4 * cs; off += cs)
        CHECK_EQ_INT(reader_read(h, off, sizeof buf, buf), sizeof buf);
    reader_close(h);
    CHECK(stat_of(r, "prefetch_jobs") >= 3);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    reader_free(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(secs < 1.0); /* the running fetches (200 ms) finish, the queued ones are cancelled */
    stub_fini(&s);
}

/* Several handles (threads) streaming one file and a second file at once. */
struct conc_arg {
    struct reader *r;
    uint64_t size;
    size_t rsz;
    int bad;
};

static void *conc_thread(void *arg)
{
    struct conc_arg *a = arg;
    struct reader_handle *h = reader_open(a->r, &file_cid, a->size);

    if (!h) {
        a->bad = 1;
        return NULL;
    }
    a->bad = read_all(h, a->size, a->rsz, 0);
    reader_close(h);
    return NULL;
}

static void test_concurrent(void)
{
    const size_t cs = 32 << 10;
    const uint64_t size = 200 * cs + 1;
    struct stub s;
    pthread_t t[8];
    struct conc_arg a[8];

    stub_init(&s, size, cs);
    stub_delay(&s, 500);
    struct reader *r = new_reader(&s, 256 * cs, cs, 16 * cs, 4);
    for (int i = 0; i < 8; i++) {
        a[i] = (struct conc_arg){.r = r, .size = size, .rsz = (size_t)(4096 << (i % 4))};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, conc_thread, &a[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        bad += a[i].bad;
    }
    settle(r);
    CHECK_EQ_INT(bad, 0);
    unsigned twice, never;
    stub_fetch_counts(&s, &twice, &never);
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(never, 0);
    CHECK_EQ_INT(stub_get(&s, &s.bad_calls), 0);
    reader_free(r);
    stub_fini(&s);
}

/* A long sequential read with a node that streams: a few requests, growing, each chunk once. */
static void test_stream(void)
{
    const size_t cs = 16 << 10;
    const uint64_t size = 1024 * cs + 777; /* 16 MiB */
    struct stub s;

    stub_init(&s, size, cs);
    s.base.ops = &stub_stream_ops;
    /* window 16 chunks, spans of 4: a request grows 4, 4, 8, 16, ... chunks */
    struct reader *r = new_reader_span(&s, 256 * cs, cs, 16 * cs, 4, 4 * cs);
    struct reader_handle *h = reader_open(r, &file_cid, size);
    CHECK_EQ_INT(read_all(h, size, 32 << 10, 0), 0);
    settle(r);
    check_fetched_once(&s, size);
    CHECK_EQ_INT(stat_of(r, "prefetch_streams"), 1);
    CHECK_EQ_INT(stat_of(r, "prefetch_stream_cancels"), 0);
    CHECK(stat_of(r, "cache_bytes") <= 256 * cs);
    /* 1024 chunks: 4+4+8+...+512 at most, so ~10 stream requests plus the first few reads */
    CHECK(stub_calls(&s) <= 16);
    CHECK(stub_get(&s, &s.max_len) > 64 * cs);
    if (getenv("VERBOSE"))
        fprintf(stderr, "stream: %u calls, largest %" PRIu64 "\n", stub_calls(&s),
                stub_get(&s, &s.max_len));
    reader_close(h);
    reader_free(r);
    stub_fini(&s);
}

/* A stream never claims past the window: a reader that stops leaves at most a window of chunks
 * fetched ahead, and its request ends (pause); closing and freeing are quick. */
static void test_stream_pause_close(void)
{
    const size_t cs = 16 << 10;
    const uint64_t size = 4096 * cs; /* 64 MiB, never read in full */
    struct stub s;
    char buf[32 << 10];
    struct timespec t0, t1;

    stub_init(&s, size, cs);
    s.base.ops = &stub_stream_ops;
    struct reader *r = new_reader_span(&s, 512 * cs, cs, 16 * cs, 4, 4 * cs);
    struct reader_handle *h = reader_open(r, &file_cid, size);
    int bad = 0;
    for (uint64_t off = 0; off < 64 * cs; off += sizeof buf) {
        if (reader_read(h, off, sizeof buf, buf) != (ssize_t)sizeof buf ||
            !check_bytes(buf, off, sizeof buf))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(stat_of(r, "prefetch_streams"), 1);
    usleep(1500 * 1000); /* longer than the pause */
    settle(r);
    /* read 64 chunks; the window is 16 */
    CHECK(stub_get(&s, &s.bytes) <= (64 + 16 + 1) * cs);
    CHECK_EQ_INT(stat_of(r, "prefetch_stream_cancels"), 1);
    /* Reading on: a new stream, the bytes still right. */
    for (uint64_t off = 64 * cs; off < 256 * cs; off += sizeof buf) {
        if (reader_read(h, off, sizeof buf, buf) != (ssize_t)sizeof buf ||
            !check_bytes(buf, off, sizeof buf))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(stat_of(r, "prefetch_streams"), 2);
    unsigned twice, never;
    stub_fetch_counts(&s, &twice, &never);
    CHECK_EQ_INT(twice, 0);
    /* Close with the stream running, then free at once. */
    stub_delay(&s, 2000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    reader_close(h);
    reader_free(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(secs < 0.5);
    CHECK_EQ_INT(stub_get(&s, &s.bad_calls), 0);
    stub_fini(&s);
}

/* A stream that fails half way: the reads still get every byte right (the chunks it held are
 * fetched by the reads themselves), and the error counts once. */
static void test_stream_failure(void)
{
    const size_t cs = 16 << 10;
    const uint64_t size = 512 * cs + 5;
    struct stub s;

    stub_init(&s, size, cs);
    s.base.ops = &stub_stream_ops;
    struct reader *r = new_reader_span(&s, 256 * cs, cs, 16 * cs, 4, 4 * cs);
    struct reader_handle *h = reader_open(r, &file_cid, size);
    stub_fail(&s, -EIO, 1, 100 * cs + 10, 100 * cs + 11);
    CHECK_EQ_INT(read_all(h, size, 32 << 10, 0), 0);
    settle(r);
    CHECK(stat_of(r, "fetch_errors") >= 1);
    CHECK(stat_of(r, "prefetch_streams") >= 2); /* the next read started another */
    unsigned twice, never;
    stub_fetch_counts(&s, &twice, &never);
    CHECK_EQ_INT(never, 0);
    CHECK(twice <= 1);
    CHECK_EQ_INT(stub_get(&s, &s.bad_calls), 0);
    reader_close(h);
    reader_free(r);
    stub_fini(&s);
}

/* 8 handles stream 8 files at once: at most workers / 2 streams run, every byte is right and
 * the cache stays within its budget. */
static void test_stream_many(void)
{
    const size_t cs = 16 << 10;
    const uint64_t size = 300 * cs + 1;
    struct stub s;
    pthread_t t[8];
    struct conc_arg a[8];

    stub_init(&s, size, cs);
    s.base.ops = &stub_stream_ops;
    stub_delay(&s, 200);
    struct reader *r = new_reader_span(&s, 64 * cs, cs, 16 * cs, 4, 4 * cs);
    for (int i = 0; i < 8; i++) {
        a[i] = (struct conc_arg){.r = r, .size = size, .rsz = 32 << 10};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, conc_thread, &a[i]), 0);
    }
    int bad = 0;
    uint64_t max_cached = 0, max_streams = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t c = stat_of(r, "cache_bytes");
        uint64_t n = stat_of(r, "prefetch_streams_now");
        if (c > max_cached)
            max_cached = c;
        if (n > max_streams)
            max_streams = n;
        usleep(1000);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        bad += a[i].bad;
    }
    settle(r);
    CHECK_EQ_INT(bad, 0);
    CHECK(max_cached <= 64 * cs + 8 * 16 * cs); /* over only while all is referenced */
    CHECK(stat_of(r, "cache_bytes") <= 64 * cs);
    CHECK(max_streams >= 1 && max_streams <= 2); /* 4 workers: 2 streams at most */
    CHECK_EQ_INT(stat_of(r, "prefetch_streams_now"), 0);
    CHECK(stat_of(r, "prefetch_streams") >= 2);
    if (getenv("VERBOSE"))
        fprintf(stderr,
                "many: %u calls, %" PRIu64 " streams, %" PRIu64 " cancels, max %" PRIu64
                " cached\n",
                stub_calls(&s), stat_of(r, "prefetch_streams"),
                stat_of(r, "prefetch_stream_cancels"), max_cached);
    CHECK_EQ_INT(stub_get(&s, &s.bad_calls), 0);
    reader_free(r);
    stub_fini(&s);
}

static void test_stats_text(void)
{
    struct stub s;
    char small[8];

    stub_init(&s, 100, 64);
    struct reader *r = new_reader(&s, 0, 0, 0, 0);
    int n = reader_stats(r, small, sizeof small);
    CHECK(n > (int)sizeof small);
    CHECK_EQ_INT(strlen(small), sizeof small - 1);
    CHECK_EQ_INT(stat_of(r, "cache_budget"), 256u << 20);
    CHECK_EQ_INT(stat_of(r, "cache_hits"), 0);
    reader_free(r);
    reader_free(NULL);
    reader_close(NULL);
    stub_fini(&s);
}

int main(void)
{
    memset(&file_cid, 0, sizeof file_cid);
    file_cid.version = 1;
    file_cid.codec = CID_CODEC_RAW;
    file_cid.mh_code = MH_SHA2_256;
    file_cid.mh_len = 34;
    file_cid.mh[0] = 0x12;
    file_cid.mh[1] = 0x20;
    file_cid.mh[2] = 0xab;

    test_exact();
    test_single_flight();
    test_sequential();
    test_random();
    test_budget();
    test_failures();
    test_free_inflight();
    test_concurrent();
    test_stream();
    test_stream_pause_close();
    test_stream_failure();
    test_stream_many();
    test_stats_text();
    return unit_done("reader");
}

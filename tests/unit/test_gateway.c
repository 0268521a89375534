/* test_gateway.c - the gateway pool's pure parts: URLs, Retry-After, block verification, and
 * the calls that need no request (identity CIDs, hashes we cannot check, a pool with no
 * gateway answering: blocks, batches, CARs), a gateway that trickles (a loopback server that
 * sends a byte every 50 ms: every call gives up within about its timeout), batches from a
 * loopback server that answers the block of "Test" (one answer wrong, or the callback failing),
 * and the bounded cache of fetched blocks in the block store (blockstore_put_cache,
 * blockstore_evict). Requests to real gateways are tested by
 * integration/gateway.sh, against Kubo's own gateway and faulty proxies in front of it.
 *
 * The known answer: the 4-byte content "Test" added with Kubo's defaults is the dag-pb block
 * 0a 0a 08 02 12 04 "Test" 18 04, whose CID is QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR
 * (as Kubo's gateway served it with ?format=raw).
 */
#include "config.h"

#include "blockstore.h"
#include "cid.h"
#include "gateway.h"
#include "unit.h"
#include "unixfs_enc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const uint8_t test_block[] = {0x0a, 0x0a, 0x08, 0x02, 0x12, 0x04, 'T',
                                     'e',  's',  't',  0x18, 0x04};
static const char test_cid[] = "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR";

static void test_urls(void)
{
    char out[256];
    CHECK_EQ_INT(gw_normalize_url("https://trustless-gateway.link/", out, sizeof out), 0);
    CHECK_EQ_STR(out, "https://trustless-gateway.link");
    CHECK_EQ_INT(gw_normalize_url("http://127.0.0.1:8080", out, sizeof out), 0);
    CHECK_EQ_STR(out, "http://127.0.0.1:8080");
    /* What curl would refuse at the first request is refused here. */
    CHECK_EQ_INT(gw_normalize_url("http://127.0.0.1:430951", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("http://127.0.0.1:port", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("http://:8080", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("http://127.0.0.1:0", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("http://[::1]:8080", out, sizeof out), 0);
    CHECK_EQ_INT(gw_normalize_url("HTTPS://example.org/prefix//", out, sizeof out), 0);
    CHECK_EQ_STR(out, "HTTPS://example.org/prefix");
    CHECK_EQ_INT(gw_normalize_url("ftp://example.org", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("example.org", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https://", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https:///x", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https://example.org/?q=1", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https://example.org/#f", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https://exa mple.org", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https://example.org\r\nX: y", out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url(NULL, out, sizeof out), -EINVAL);
    CHECK_EQ_INT(gw_normalize_url("https://example.org", out, 8), -EINVAL);
}

static void test_retry_after(void)
{
    time_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
    CHECK_EQ_INT(gw_retry_after_ms("0", now), 0);
    CHECK_EQ_INT(gw_retry_after_ms(" 2", now), 2000);
    CHECK_EQ_INT(gw_retry_after_ms("120", now), GW_MAX_BACKOFF_MS);
    CHECK_EQ_INT(gw_retry_after_ms("99999999999999999999999", now), GW_MAX_BACKOFF_MS);
    CHECK_EQ_INT(gw_retry_after_ms("3 ", now), 3000);
    CHECK_EQ_INT(gw_retry_after_ms("-1", now), -1);
    CHECK_EQ_INT(gw_retry_after_ms("2x", now), -1);
    CHECK_EQ_INT(gw_retry_after_ms("", now), -1);
    CHECK_EQ_INT(gw_retry_after_ms(NULL, now), -1);
    CHECK_EQ_INT(gw_retry_after_ms("Wed, 21 Oct 2015 07:28:05 GMT", now), 5000);
    CHECK_EQ_INT(gw_retry_after_ms("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
    CHECK_EQ_INT(gw_retry_after_ms("Wed, 21 Oct 2015 09:28:00 GMT", now), GW_MAX_BACKOFF_MS);
    CHECK_EQ_INT(gw_retry_after_ms("soon", now), -1);
}

static void test_verify(void)
{
    struct cid c;
    CHECK_EQ_INT(cid_parse(test_cid, sizeof test_cid - 1, &c), 0);
    CHECK_EQ_INT(gw_verify(&c, test_block, sizeof test_block), 0);
    uint8_t bad[sizeof test_block];
    memcpy(bad, test_block, sizeof bad);
    bad[7] ^= 1; /* one bit of "Test" */
    CHECK_EQ_INT(gw_verify(&c, bad, sizeof bad), -EIO);
    CHECK_EQ_INT(gw_verify(&c, test_block, sizeof test_block - 1), -EIO);
    CHECK_EQ_INT(gw_verify(&c, test_block, 0), -EIO);

    /* The same bytes as a CIDv1 raw block: only the multihash counts. */
    static const char v1[] = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    struct cid r;
    CHECK_EQ_INT(cid_parse(v1, sizeof v1 - 1, &r), 0);
    CHECK_EQ_INT(gw_verify(&r, (const uint8_t *)"hello world\n", 12), -EIO);
}

static void test_identity(void)
{
    /* An identity CID holds its block: bafkqaddumvzhiidunvxxe3bb = raw "Test more!" is not
     * needed, any identity multihash will do: build one by hand. */
    uint8_t bin[2 + 2 + 5] = {0x01, 0x55, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
    struct cid c;
    CHECK_EQ_INT(cid_from_bytes(bin, sizeof bin, &c), 0);
    CHECK_EQ_INT(gw_verify(&c, (const uint8_t *)"hello", 5), 0);
    CHECK_EQ_INT(gw_verify(&c, (const uint8_t *)"hellO", 5), -EIO);
    CHECK_EQ_INT(gw_verify(&c, (const uint8_t *)"hell", 4), -EIO);

    /* gw_block answers it without asking anyone (this gateway does not exist). */
    const char *urls[] = {"http://127.0.0.1:9"};
    struct gw_config cfg = {.urls = urls, .n_urls = 1, .timeout_ms = 2000};
    struct gw *g = NULL;
    char err[256];
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    uint8_t *d = NULL;
    size_t n = 0;
    CHECK_EQ_INT(gw_block(g, &c, &d, &n), 0);
    CHECK_EQ_INT(n, 5);
    CHECK(d && memcmp(d, "hello", 5) == 0);
    free(d);
    gw_free(g);
}

static void test_config(void)
{
    struct gw *g = NULL;
    char err[256];
    struct gw_config none = {0};
    CHECK_EQ_INT(gw_new(&none, &g, err, sizeof err), -EINVAL);
    const char *bad[] = {"http://a.example", "gopher://b"};
    struct gw_config cb = {.urls = bad, .n_urls = 2};
    CHECK_EQ_INT(gw_new(&cb, &g, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "gopher://b") != NULL);
    const char *twice[] = {"http://a.example/", "http://a.example"};
    struct gw_config ct = {.urls = twice, .n_urls = 2};
    CHECK_EQ_INT(gw_new(&ct, &g, err, sizeof err), -EINVAL);
    const char *many[GW_MAX + 1];
    for (size_t i = 0; i <= GW_MAX; i++)
        many[i] = "http://a.example";
    struct gw_config cm = {.urls = many, .n_urls = GW_MAX + 1};
    CHECK_EQ_INT(gw_new(&cm, &g, err, sizeof err), -EINVAL);
    CHECK(g == NULL);
}

/* A pool whose only gateway refuses connections: the first call fails within its timeout and
 * sets the gateway aside; the next asks it all the same (every gateway is aside, none for
 * wrong bytes: on probation, 2 s at most), and is refused at once. */
static void test_dead_gateway(void)
{
    const char *urls[] = {"http://127.0.0.1:9"}; /* discard: nothing listens there */
    struct gw_config cfg = {.urls = urls, .n_urls = 1, .timeout_ms = 3000};
    struct gw *g = NULL;
    char err[256];
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    struct cid c;
    CHECK_EQ_INT(cid_parse(test_cid, sizeof test_cid - 1, &c), 0);
    uint8_t *d = NULL;
    size_t n = 0;
    CHECK_EQ_INT(gw_block(g, &c, &d, &n), -ETIMEDOUT);
    CHECK(d == NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(gw_block(g, &c, &d, &n), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(t1.tv_sec - t0.tv_sec < 3); /* within PROBATION_MS, not the timeout */
    char st[1024];
    CHECK(gw_stats(g, st, sizeof st) > 0);
    CHECK(strstr(st, "gw_calls 2\n") != NULL);
    CHECK(strstr(st, "failed=2 ") != NULL); /* asked again on probation: refused at once */
    gw_free(g);

    /* A hash we cannot check is refused before any request. */
    uint8_t bin[] = {0x01, 0x55, 0x13, 0x40}; /* sha2-512, 64 bytes */
    uint8_t full[4 + 64] = {0};
    memcpy(full, bin, sizeof bin);
    struct cid s512;
    if (cid_from_bytes(full, sizeof full, &s512) == 0) {
        CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
        CHECK_EQ_INT(gw_block(g, &s512, &d, &n), -ENOTSUP);
        gw_free(g);
    }
}

static int batch_take(void *ud, size_t i, uint8_t *data, size_t len)
{
    (void)i;
    (void)len;
    (*(int *)ud)++;
    free(data);
    return 0;
}

static int car_take(void *ud, const struct cid *c, const uint8_t *block, size_t len)
{
    (void)c;
    (void)block;
    (void)len;
    (*(int *)ud)++;
    return 0;
}

/* A batch and a CAR from a pool whose only gateway is dead: nothing given, the gateway set
 * aside once, and the next calls fail at once. */
static void test_dead_batch_and_car(void)
{
    const char *urls[] = {"http://127.0.0.1:9"};
    struct gw_config cfg = {.urls = urls, .n_urls = 1, .timeout_ms = 3000};
    struct gw *g = NULL;
    char err[256];
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    struct cid c[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(cid_parse(test_cid, sizeof test_cid - 1, &c[i]), 0);
    int got = 0;
    CHECK_EQ_INT(gw_blocks(g, c, 3, 8, batch_take, &got), 0);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(gw_blocks(g, c, 3, 8, batch_take, &got), -ETIMEDOUT); /* set aside */
    CHECK_EQ_INT(gw_fetch_range(g, &c[0], 0, 3, 1u << 20, car_take, &got), -ETIMEDOUT);
    CHECK_EQ_INT(got, 0);
    char st[1024];
    CHECK(gw_stats(g, st, sizeof st) > 0);
    CHECK(strstr(st, "failed=1 ") != NULL);
    gw_free(g);

    /* A CAR from a fresh pool: the connection fails, nothing reaches the callback. */
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    CHECK_EQ_INT(gw_car(g, "/ipfs/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR?format=car",
                        1u << 20, car_take, &got),
                 -ETIMEDOUT);
    CHECK_EQ_INT(got, 0);
    /* The pool's buffers go back and come out again. */
    gw_buf_release(g, malloc(GW_MAX_BLOCK));
    gw_buf_release(g, NULL);
    gw_free(g);
}

/* ---- a gateway that trickles ---- */

/* A listening TCP socket on a free loopback port (*port), or -1. */
static int loopback_listen(unsigned short *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* The next connection on the listening fd, or -1 once stop is set (looked at every 50 ms). */
static int accept_until(int fd, atomic_bool *stop)
{
    while (!atomic_load(stop)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int c = accept(fd, NULL, NULL);
        if (c >= 0)
            return c;
    }
    return -1;
}

struct trickler {
    int fd; /* listening, on loopback */
    unsigned short port;
    atomic_bool stop;
    pthread_t th;
};

/* Answer each connection (one at a time) with a 200 whose body never comes whole: the first
 * byte of a CAR header (its length, 56), then a zero every 50 ms, until the client goes. */
static void *trickle_serve(void *ud)
{
    struct trickler *t = ud;
    int c;
    while ((c = accept_until(t->fd, &t->stop)) >= 0) {
        char req[4096];
        size_t got = 0;
        while (got < sizeof req - 1) {
            ssize_t r = recv(c, req + got, sizeof req - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n"
                                   "Content-Type: application/octet-stream\r\n\r\n\x38";
        bool up = send(c, head, sizeof head - 1, MSG_NOSIGNAL) > 0;
        while (up && !atomic_load(&t->stop)) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            up = send(c, "", 1, MSG_NOSIGNAL) == 1;
        }
        close(c);
    }
    return NULL;
}

static int trickler_start(struct trickler *t)
{
    memset(t, 0, sizeof *t);
    if ((t->fd = loopback_listen(&t->port)) < 0)
        return -1;
    atomic_init(&t->stop, false);
    if (pthread_create(&t->th, NULL, trickle_serve, t) != 0) {
        close(t->fd);
        return -1;
    }
    return 0;
}

static void trickler_stop(struct trickler *t)
{
    atomic_store(&t->stop, true);
    pthread_join(t->th, NULL);
    close(t->fd);
}

/* A loopback server that answers every request, on up to BLOCKER_CONNS connections in all
 * (kept alive), with the block of "Test" as Kubo's gateway served it. Answers are numbered
 * from 1: those from bad_from to bad_to have one byte flipped, those from fail_from on are
 * HTTP 500 (0: none), sent a second late. For the batches' hand-over: its own thread from
 * HAND_THREAD_MIN blocks on (gateway.c). */
#define BLOCKER_CONNS 64
struct blocker {
    int fd;
    unsigned short port;
    atomic_bool stop;
    atomic_int served;
    int bad_from, bad_to, fail_from;
    pthread_t th;
    pthread_t conn_th[BLOCKER_CONNS];
    int nconn;
};

struct blocker_conn {
    struct blocker *b;
    int fd;
};

static void *blocker_conn(void *ud)
{
    struct blocker_conn *bc = ud;
    struct blocker *b = bc->b;
    int fd = bc->fd;
    free(bc);
    char req[4096];
    size_t got = 0;
    while (!atomic_load(&b->stop)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = '\0';
        char *end;
        while ((end = strstr(req, "\r\n\r\n"))) {
            int k = atomic_fetch_add(&b->served, 1) + 1;
            char out[256];
            size_t on;
            if (b->fail_from && k >= b->fail_from) {
                /* A 500 comes a second late, so that a wrong answer sent before it is
                 * always judged first: the client may take answers from its connections
                 * in any order, the more so under the sanitizers. */
                for (int w = 0; w < 20 && !atomic_load(&b->stop); w++)
                    poll(NULL, 0, 50);
                static const char e500[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                           "Content-Length: 0\r\n\r\n";
                memcpy(out, e500, sizeof e500 - 1);
                on = sizeof e500 - 1;
            } else {
                int hn = snprintf(out, sizeof out,
                                  "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ipld.raw\r\n"
                                  "Content-Length: %zu\r\n\r\n",
                                  sizeof test_block);
                memcpy(out + hn, test_block, sizeof test_block);
                if (b->bad_from && k >= b->bad_from && k <= b->bad_to)
                    out[hn + 6] ^= 0x20; /* "Test" -> "test" */
                on = (size_t)hn + sizeof test_block;
            }
            if (send(fd, out, on, MSG_NOSIGNAL) < 0)
                goto out;
            size_t used = (size_t)(end + 4 - req);
            memmove(req, end + 4, got - used + 1);
            got -= used;
        }
        if (got == sizeof req - 1)
            break;
    }
out:
    close(fd);
    return NULL;
}

static void *blocker_serve(void *ud)
{
    struct blocker *b = ud;
    int c;
    while ((c = accept_until(b->fd, &b->stop)) >= 0) {
        struct blocker_conn *bc = malloc(sizeof *bc);
        if (!bc || b->nconn == BLOCKER_CONNS) {
            free(bc);
            close(c);
            continue;
        }
        bc->b = b;
        bc->fd = c;
        if (pthread_create(&b->conn_th[b->nconn], NULL, blocker_conn, bc) != 0) {
            free(bc);
            close(c);
            continue;
        }
        b->nconn++;
    }
    for (int i = 0; i < b->nconn; i++)
        pthread_join(b->conn_th[i], NULL);
    return NULL;
}

static int blocker_start(struct blocker *b, int bad_from, int bad_to, int fail_from)
{
    memset(b, 0, sizeof *b);
    if ((b->fd = loopback_listen(&b->port)) < 0)
        return -1;
    b->bad_from = bad_from;
    b->bad_to = bad_to;
    b->fail_from = fail_from;
    atomic_init(&b->stop, false);
    atomic_init(&b->served, 0);
    if (pthread_create(&b->th, NULL, blocker_serve, b) != 0) {
        close(b->fd);
        return -1;
    }
    return 0;
}

static void blocker_stop(struct blocker *b)
{
    atomic_store(&b->stop, true);
    pthread_join(b->th, NULL);
    close(b->fd);
}

struct taker {
    int calls;
    int fail_at; /* the callback fails on this call (from 1; 0: never) */
    bool bad_bytes;
};

static int batch_check(void *ud, size_t i, uint8_t *data, size_t len)
{
    (void)i;
    struct taker *t = ud;
    t->calls++;
    if (len != sizeof test_block || memcmp(data, test_block, len) != 0)
        t->bad_bytes = true;
    free(data);
    return t->calls == t->fail_at ? -EIO : 0;
}

/* Batches large enough for the hand-over's thread: every block given, and verified first; a
 * wrong block stops the batch and sets its gateway aside; the callback's error stops it and is
 * returned, with no call after it. */
static void test_batch_handover(void)
{
    struct blocker b;
    if (blocker_start(&b, 0, 0, 0) < 0) {
        fprintf(stderr, "test_batch_handover: no loopback server, skipped\n");
        return;
    }
    char url[64], st[1024], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", b.port);
    const char *urls[] = {url};
    struct gw_config cfg = {.urls = urls, .n_urls = 1, .timeout_ms = 5000};
    struct cid cs[24];
    for (int i = 0; i < 24; i++)
        CHECK_EQ_INT(cid_parse(test_cid, sizeof test_cid - 1, &cs[i]), 0);

    struct gw *g = NULL;
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    struct taker t = {0};
    CHECK_EQ_INT(gw_blocks(g, cs, 24, 8, batch_check, &t), 24);
    CHECK_EQ_INT(t.calls, 24);
    CHECK(!t.bad_bytes);
    CHECK(gw_stats(g, st, sizeof st) > 0);
    CHECK(strstr(st, " ok=24 ") != NULL);
    CHECK(strstr(st, "gw_calls_ok 24\n") != NULL);

    /* The callback fails on its 5th block: that error, and no 6th call. */
    t = (struct taker){.fail_at = 5};
    CHECK_EQ_INT(gw_blocks(g, cs, 24, 8, batch_check, &t), -EIO);
    CHECK_EQ_INT(t.calls, 5);
    gw_free(g);
    blocker_stop(&b);

    /* Wrong answers: never given; the gateway judged bad once (however many wrong answers
     * were in flight or queued), set aside for its full time even when its next answers
     * fail, and the batch ends. The 6th wrong; every one from the 3rd; the 1st, then 500s. */
    const int faults[][3] = {{6, 6, 0}, {3, 1 << 30, 0}, {1, 1, 8}};
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        if (blocker_start(&b, faults[f][0], faults[f][1], faults[f][2]) < 0)
            return;
        snprintf(url, sizeof url, "http://127.0.0.1:%u", b.port);
        CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
        t = (struct taker){0};
        int rc = gw_blocks(g, cs, 24, 8, batch_check, &t);
        CHECK(rc >= 0 && rc < 24);
        CHECK_EQ_INT(rc, t.calls);
        CHECK(!t.bad_bytes);
        CHECK(gw_stats(g, st, sizeof st) > 0);
        CHECK(strstr(st, "gw_bad_blocks 1\n") != NULL);
        CHECK(strstr(st, " bad=1 ") != NULL);
        const char *as = strstr(st, "aside_ms=");
        CHECK(as && strtol(as + 9, NULL, 10) > 50000); /* GW_BAD_BLOCK_MS: 60 s */
        t = (struct taker){0};
        CHECK_EQ_INT(gw_blocks(g, cs, 24, 8, batch_check, &t), -ETIMEDOUT); /* set aside */
        CHECK_EQ_INT(t.calls, 0);
        gw_free(g);
        blocker_stop(&b);
    }
}

static double secs_since(struct timespec t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

/* Progress counts in verified blocks, not bytes: a gateway that never stops sending, yet never
 * sends a block, costs each call about its timeout (1 s here), and is set aside. */
static void test_trickle(void)
{
    struct trickler t;
    if (trickler_start(&t) < 0) {
        fprintf(stderr, "test_trickle: no loopback server, skipped\n");
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", t.port);
    const char *urls[] = {url};
    struct gw_config cfg = {.urls = urls, .n_urls = 1, .timeout_ms = 1000};
    char err[256], st[1024];
    struct cid c;
    CHECK_EQ_INT(cid_parse(test_cid, sizeof test_cid - 1, &c), 0);
    struct timespec t0;
    int got = 0;

    /* A CAR: it sent a byte every 50 ms, never a block: given up at the timeout (before, it
     * streamed for as long as bytes came: until its header was whole, then -EIO). */
    struct gw *g = NULL;
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(gw_fetch_range(g, &c, 0, 3, 1u << 20, car_take, &got), -ETIMEDOUT);
    double s = secs_since(t0);
    CHECK(s >= 0.9 && s < 2.0);
    CHECK_EQ_INT(got, 0);
    CHECK(gw_stats(g, st, sizeof st) > 0);
    CHECK(strstr(st, "failed=1 ") != NULL); /* set aside, as for a stall */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(gw_fetch_range(g, &c, 0, 3, 1u << 20, car_take, &got), -ETIMEDOUT);
    CHECK(secs_since(t0) < 0.5); /* at once: the gateway is set aside */
    gw_free(g);

    /* A batch of blocks: each request within the timeout. */
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    struct cid cs[3] = {c, c, c};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(gw_blocks(g, cs, 3, 8, batch_take, &got), 0);
    s = secs_since(t0);
    CHECK(s >= 0.9 && s < 2.0);
    CHECK_EQ_INT(got, 0);
    gw_free(g);

    /* One block: the whole call within the timeout. */
    CHECK_EQ_INT(gw_new(&cfg, &g, err, sizeof err), 0);
    uint8_t *d = NULL;
    size_t n = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(gw_block(g, &c, &d, &n), -ETIMEDOUT);
    s = secs_since(t0);
    CHECK(s >= 0.9 && s < 2.0);
    CHECK(d == NULL);
    gw_free(g);
    trickler_stop(&t);
}

/* Recency for test_evict: block i was used at i + 1 (the higher, the more recent). */
static struct cid ev_cids[8];
static uint64_t ev_rank(void *ud, uint64_t key)
{
    (void)ud;
    for (int i = 0; i < 8; i++)
        if (blockstore_key(&ev_cids[i]) == key)
            return (uint64_t)i + 1;
    return 0;
}

/* Fetched copies are evicted least recent first, down to the target; never a block in keep,
 * nor a block put as the store's own (blockstore_put). */
static void test_evict(void)
{
    char dir[] = "/tmp/test_gateway.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct blockstore *bs = NULL;
    char err[256];
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    if (!bs)
        return;
    static uint8_t blk[8][64 << 10];
    for (int i = 0; i < 8; i++) {
        memset(blk[i], 'a' + i, sizeof blk[i]);
        CHECK_EQ_INT(block_cid(1, CID_CODEC_RAW, blk[i], sizeof blk[i], &ev_cids[i]), 0);
    }
    /* 0..5 fetched (6 x 64 KiB), 6 the store's own, 7 fetched and kept (a name uses it). */
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(blockstore_put_cache(bs, &ev_cids[i], blk[i], sizeof blk[i]), 1);
    CHECK_EQ_INT(blockstore_put_cache(bs, &ev_cids[0], blk[0], sizeof blk[0]), 0); /* there */
    CHECK_EQ_INT(blockstore_put(bs, &ev_cids[6], blk[6], sizeof blk[6]), 0);
    CHECK_EQ_INT(blockstore_put_cache(bs, &ev_cids[7], blk[7], sizeof blk[7]), 1);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    char path[512];
    struct stat st;
    CHECK_EQ_INT(blockstore_path(bs, &ev_cids[0], path, sizeof path), 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == BLOCKSTORE_CACHE_MODE);
    uint64_t used = 0, n = 0;
    CHECK_EQ_INT(blockstore_usage(bs, &used, &n), 0);
    CHECK_EQ_INT((int)n, 8);
    struct blockstore_keyset keep = {0};
    CHECK_EQ_INT(blockstore_keyset_add(&keep, blockstore_key(&ev_cids[7])), 1);
    /* Room for 5 of the 8: 6 and 7 stay, so 3 of the fetched ones (the most recent: 3, 4, 5). */
    uint64_t per = used / 8, target = 5 * per;
    struct blockstore_evict_stats es;
    CHECK_EQ_INT(blockstore_evict(bs, &keep, target, ev_rank, NULL, &es), 0);
    CHECK_EQ_INT((int)es.removed, 3);
    CHECK(es.left_bytes <= target);
    for (int i = 0; i < 8; i++) {
        uint8_t *d = NULL;
        size_t len = 0;
        int want = i < 3 ? -ENOENT : 0;
        CHECK_EQ_INT(blockstore_get(bs, &ev_cids[i], &d, &len), want);
        free(d);
    }
    /* Under the target: nothing more goes. */
    CHECK_EQ_INT(blockstore_evict(bs, &keep, target, ev_rank, NULL, &es), 0);
    CHECK_EQ_INT((int)es.removed, 0);
    /* A target of 0: every fetched copy not kept goes, the store's own block stays. */
    CHECK_EQ_INT(blockstore_evict(bs, &keep, 0, NULL, NULL, &es), 0);
    CHECK_EQ_INT((int)es.removed, 3);
    CHECK(blockstore_has(bs, &ev_cids[6]));
    CHECK(blockstore_has(bs, &ev_cids[7]));
    blockstore_keyset_free(&keep);
    blockstore_close(bs);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_urls();
    test_retry_after();
    test_verify();
    test_identity();
    test_config();
    test_dead_gateway();
    test_dead_batch_and_car();
    test_trickle();
    test_batch_handover();
    test_evict();
    curl_global_cleanup();
    printf("test_gateway: %d checks, %d failures\n", unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

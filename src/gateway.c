/* gateway.c - verified blocks from HTTP trustless gateways (see gateway.h for the rules).
 *
 * One gw_block call runs its requests on a curl multi handle taken from a small pool: a multi
 * keeps its connections alive, so the next call on it reuses them (no new TCP or TLS handshake
 * per block). Inside a call the gateways are raced with a hedge delay, every wait bounded by
 * the call's deadline.
 */
#include "config.h"

#include "gateway.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "car.h"
#include "clock.h"
#include "ipns.h"
#include "log.h"
#include "sha256.h"

#define GW_USER_AGENT "ipfsfs/" PACKAGE_VERSION
#define GW_URL_MAX 1024u
/* A pool keeps at most this many idle multi handles (and their connections). */
#define GW_POOL_KEEP 16u
/* ... easy handles, and block buffers: the pages of a buffer (or of an easy handle's receive
 * buffer) made and freed for every block would be mapped afresh each time (buffers this size
 * are mmap'ed), and the first touch of a fresh page costs ~20 us on some VMs: a third of the
 * CPU of a read, before these were kept. */
#define GW_EASY_KEEP 32u
#define GW_BUF_KEEP 16u
/* Hedge delay: HEDGE_FACTOR times a gateway's average answer time, within these bounds; for a
 * gateway with no answer yet, HEDGE_UNKNOWN_MS. */
#define HEDGE_FACTOR 4
#define HEDGE_MIN_MS 150u
#define HEDGE_MAX_MS 2000u
#define HEDGE_UNKNOWN_MS 1000u
/* First backoff after a failure; it doubles while failures follow each other. */
#define BACKOFF_FIRST_MS 1000u
/* A gateway whose last request went a whole timeout without an answer (a black hole, or a
 * dead host whose connections are not refused) is on probation: once every other gateway
 * asked has answered "not found", it gets this long, not the rest of the timeout. */
#define PROBATION_MS 2000u
/* The header value kept for Retry-After. */
#define RETRY_AFTER_MAX 64u

enum why_aside { ASIDE_NONE, ASIDE_LIMITED, ASIDE_FAILED, ASIDE_BAD };

struct gw_host {
    char url[GW_URL_MAX]; /* without trailing slash; constant after gw_new */
    /* Guarded by gw.lock: */
    double avg_ms;             /* moving average of verified answer times; 0: none yet */
    struct timespec aside_until; /* not asked before this (CLOCK_MONOTONIC); 0: available */
    enum why_aside aside_why;
    unsigned backoff_ms;       /* the next backoff after a failure */
    bool stalled;              /* on probation: its last request got no answer at all */
    uint64_t ok, not_found, limited, failed, bad, bytes;
};

struct gw {
    struct gw_host hosts[GW_MAX]; /* n of them; urls constant, the rest under lock */
    size_t n;
    unsigned timeout_ms;
    char *proxy, *cacert;
    /* lock guards every host's counters and backoff state, the multi pool (pool, npool), and
     * the totals below. Held only to copy or set them: never across a transfer. */
    pthread_mutex_t lock;
    CURLM *pool[GW_POOL_KEEP];
    size_t npool;
    CURL *easy[GW_EASY_KEEP]; /* idle easy handles: each keeps its receive buffer */
    size_t neasy;
    uint8_t *bufs[GW_BUF_KEEP]; /* idle block buffers (GW_MAX_BLOCK bytes, malloc'd) */
    size_t nbufs;
    uint64_t calls, call_ok, call_fail, bad_total;
};

/* ---- pure helpers ---------------------------------------------------------------------- */

int gw_normalize_url(const char *url, char *out, size_t outlen)
{
    size_t n = url ? strlen(url) : 0;
    while (n > 0 && url[n - 1] == '/')
        n--;
    size_t scheme;
    if (n > 7 && strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (n > 8 && strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return -EINVAL;
    if (n >= outlen || n >= GW_URL_MAX || url[scheme] == '/')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#' || ch == '\\')
            return -EINVAL;
    }
    memcpy(out, url, n);
    out[n] = '\0';
    /* And one curl takes: a port past 65535 or a host it cannot parse would otherwise only
     * show at the first request, as a gateway set aside. */
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, out, 0);
    char *host = NULL, *port = NULL;
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    bool ok = uc == CURLUE_OK && host && host[0];
    /* Port 0 parses, and never answers. */
    if (ok && curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port)
        ok = strtoul(port, NULL, 10) != 0;
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok ? 0 : -EINVAL;
}

long gw_retry_after_ms(const char *value, time_t now)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end != '\0')
            return -1;
        if (errno == ERANGE || s >= GW_MAX_BACKOFF_MS / 1000u)
            return GW_MAX_BACKOFF_MS;
        return (long)s * 1000;
    }
    /* An HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT" (curl reads the three forms HTTP allows). */
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    if (t <= now)
        return 0;
    if ((uint64_t)(t - now) >= GW_MAX_BACKOFF_MS / 1000u)
        return GW_MAX_BACKOFF_MS;
    return (long)(t - now) * 1000;
}

/* The digest of c's multihash: after its code and length varints. */
static int mh_digest(const struct cid *c, const uint8_t **d, size_t *n)
{
    uint64_t code, dlen;
    size_t a = varint_decode(c->mh, c->mh_len, &code);
    if (!a)
        return -EINVAL;
    size_t b = varint_decode(c->mh + a, c->mh_len - a, &dlen);
    if (!b || dlen != c->mh_len - a - b)
        return -EINVAL;
    *d = c->mh + a + b;
    *n = (size_t)dlen;
    return 0;
}

int gw_verify(const struct cid *c, const uint8_t *data, size_t len)
{
    const uint8_t *dig;
    size_t dn;
    if (mh_digest(c, &dig, &dn) < 0)
        return -EIO;
    if (c->mh_code == MH_IDENTITY) /* the digest is the data itself */
        return dn == len && (len == 0 || memcmp(dig, data, len) == 0) ? 0 : -EIO;
    if (c->mh_code != MH_SHA2_256)
        return -ENOTSUP;
    uint8_t d[SHA256_LEN];
    if (dn != SHA256_LEN || sha256_digest(data, len, d) < 0)
        return -EIO;
    return memcmp(dig, d, SHA256_LEN) == 0 ? 0 : -EIO;
}

/* ---- time -------------------------------------------------------------------------------- */

static struct timespec add_ms(struct timespec t, uint64_t ms)
{
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* a - b in ms (negative when a is earlier). */
static int64_t diff_ms(struct timespec a, struct timespec b)
{
    return (int64_t)(a.tv_sec - b.tv_sec) * 1000 + (a.tv_nsec - b.tv_nsec) / 1000000L;
}

static bool is_set(struct timespec t)
{
    return t.tv_sec != 0 || t.tv_nsec != 0;
}

/* ---- progress: counted in verified blocks, not bytes (gateway.h) -------------------------- */

/* A transfer that sends a byte now and then is not making progress: only verified blocks
 * count. It is given up when none came within the timeout since the last one (or since it
 * began), or when its verified bytes fall behind GW_MAX_BLOCK per timeout. */
struct progress {
    struct timespec t0;   /* when it began */
    struct timespec last; /* when its last verified block came (t0: none yet) */
    uint64_t bytes;       /* verified bytes so far */
};

static void progress_init(struct progress *p, struct timespec t0)
{
    p->t0 = p->last = t0;
    p->bytes = 0;
}

static void progress_block(struct progress *p, size_t len)
{
    p->last = clock_mono();
    p->bytes += len;
}

/* Milliseconds before p is too slow under timeout_ms (<= 0: give it up). */
static int64_t progress_left_ms(const struct progress *p, struct timespec now,
                                unsigned timeout_ms)
{
    int64_t gap = (int64_t)timeout_ms - diff_ms(now, p->last);
    double budget = (double)timeout_ms * (1.0 + (double)p->bytes / (double)GW_MAX_BLOCK);
    int64_t pace = (budget > 9e15 ? (int64_t)9e15 : (int64_t)budget) - diff_ms(now, p->t0);
    return gap < pace ? gap : pace;
}

/* ---- the pool ------------------------------------------------------------------------------ */

int gw_new(const struct gw_config *cfg, struct gw **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->n_urls) {
        snprintf(err, errlen, "no gateway given");
        return -EINVAL;
    }
    if (cfg->n_urls > GW_MAX) {
        snprintf(err, errlen, "too many gateways (%zu; at most %u)", cfg->n_urls, GW_MAX);
        return -EINVAL;
    }
    struct gw *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_urls; i++) {
        if (gw_normalize_url(cfg->urls[i], g->hosts[i].url, sizeof g->hosts[i].url) < 0) {
            snprintf(err, errlen, "invalid gateway URL '%s' (want http:// or https://, a "
                                  "host, a port up to 65535, no query)", cfg->urls[i]);
            free(g);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(g->hosts[j].url, g->hosts[i].url) == 0) {
                snprintf(err, errlen, "gateway %s given twice", g->hosts[i].url);
                free(g);
                return -EINVAL;
            }
        }
        g->hosts[i].backoff_ms = BACKOFF_FIRST_MS;
    }
    g->n = cfg->n_urls;
    g->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000u;
    if ((cfg->proxy && !(g->proxy = strdup(cfg->proxy))) ||
        (cfg->cacert && !(g->cacert = strdup(cfg->cacert)))) {
        free(g->proxy);
        free(g);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&g->lock, NULL);
    *out = g;
    return 0;
}

void gw_free(struct gw *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->npool; i++)
        curl_multi_cleanup(g->pool[i]);
    for (size_t i = 0; i < g->neasy; i++)
        curl_easy_cleanup(g->easy[i]);
    for (size_t i = 0; i < g->nbufs; i++)
        free(g->bufs[i]);
    pthread_mutex_destroy(&g->lock);
    free(g->proxy);
    free(g->cacert);
    free(g);
}

static CURL *easy_get(struct gw *g)
{
    pthread_mutex_lock(&g->lock);
    CURL *e = g->neasy ? g->easy[--g->neasy] : NULL;
    pthread_mutex_unlock(&g->lock);
    return e ? e : curl_easy_init();
}

/* Keep e (not in any multi) for a later request, or clean it up. */
static void easy_put(struct gw *g, CURL *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&g->lock);
    if (g->neasy < GW_EASY_KEEP) {
        g->easy[g->neasy++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&g->lock);
    if (e)
        curl_easy_cleanup(e);
}

static uint8_t *buf_get(struct gw *g)
{
    pthread_mutex_lock(&g->lock);
    uint8_t *b = g->nbufs ? g->bufs[--g->nbufs] : NULL;
    pthread_mutex_unlock(&g->lock);
    return b ? b : malloc(GW_MAX_BLOCK);
}

void gw_buf_release(void *ud, uint8_t *data)
{
    struct gw *g = ud;
    if (!data)
        return;
    pthread_mutex_lock(&g->lock);
    if (g->nbufs < GW_BUF_KEEP) {
        g->bufs[g->nbufs++] = data;
        data = NULL;
    }
    pthread_mutex_unlock(&g->lock);
    free(data);
}

static CURLM *multi_get(struct gw *g)
{
    pthread_mutex_lock(&g->lock);
    CURLM *m = g->npool ? g->pool[--g->npool] : NULL;
    pthread_mutex_unlock(&g->lock);
    return m ? m : curl_multi_init();
}

static void multi_put(struct gw *g, CURLM *m)
{
    pthread_mutex_lock(&g->lock);
    if (g->npool < GW_POOL_KEEP) {
        g->pool[g->npool++] = m;
        m = NULL;
    }
    pthread_mutex_unlock(&g->lock);
    if (m)
        curl_multi_cleanup(m);
}

/* ---- one request ----------------------------------------------------------------------- */

/* What one gw call asks every gateway, and how it checks an answer. */
struct request {
    char path[CID_STR_MAX + 64]; /* after the gateway's URL: "/ipfs/CID?format=raw" */
    const char *accept;          /* the Accept header's value */
    size_t max;                  /* longest answer taken */
    /* 0: the answer is the one asked for; -ESTALE: right but older than wanted (no penalty,
     * the next gateway is asked); -ENOTSUP: cannot be checked; else wrong bytes. */
    int (*verify)(void *ud, const uint8_t *data, size_t len);
    bool verify_later; /* judge leaves a 200 answer unverified and unrecorded: the caller's */
    void *ud;
    const char *what; /* for the log: "block CID", "IPNS record of NAME" */
    bool car;         /* a CAR, streamed to the call's callback (gw_car), not kept */
    bool *none_has;   /* if set, run sets it: every gateway was asked and said "not found" */
};

static size_t on_car(char *p, size_t size, size_t nmemb, void *ud);

struct attempt {
    struct gw *g;
    size_t host;
    CURL *e;
    struct curl_slist *hdrs;
    uint8_t *buf;
    size_t len, cap;
    bool too_big;
    size_t max;    /* the request's */
    size_t expect; /* Content-Length, if given and within max */
    char retry_after[RETRY_AFTER_MAX];
    struct timespec t0;
    bool running;
    const char *bad_why; /* OUT_BAD: what was wrong, for the log (NULL: bytes or size) */
    /* A CAR answer (gw_car), streamed through a verifying reader instead of kept in buf: */
    struct car_stream *cs;  /* the call's shared state; NULL for a whole-answer request */
    struct car_reader car;
    int car_err;            /* the reader's error (bytes that do not verify, malformed) */
    int cb_err;             /* the caller's callback's */
    uint64_t car_blocks;    /* blocks this attempt gave the callback */
    struct timespec last;   /* when its last bytes came */
    bool got;               /* anything came: a header or a byte of the body */
    size_t idx;             /* its index in the call's attempts */
    bool dropped;           /* cut because another attempt owns the stream */
    bool probation;         /* asked while set aside for failing (run): a failure keeps its
                             * time aside as it was, an answer ends it */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    if (n > a->max - a->len) {
        a->too_big = true;
        return 0; /* abort: CURLE_WRITE_ERROR */
    }
    if (a->cap == 0 && a->max == GW_MAX_BLOCK) {
        /* A block: a kept buffer of the largest size, its pages touched before. */
        if (!(a->buf = buf_get(a->g)))
            return 0;
        a->cap = GW_MAX_BLOCK;
    }
    if (a->len + n > a->cap) {
        /* The first time: room for the whole answer when its length is known (a block is
         * one allocation, no regrowing), else for a default chunk. */
        size_t cap = a->cap ? a->cap : a->expect ? a->expect : 256u << 10;
        while (cap < a->len + n)
            cap *= 2;
        if (cap > a->max)
            cap = a->max;
        uint8_t *b = realloc(a->buf, cap);
        if (!b)
            return 0;
        a->buf = b;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, p, n);
    a->len += n;
    a->last = clock_mono();
    a->got = true;
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    a->got = true;
    static const char clen[] = "content-length:";
    if (n > sizeof clen - 1 && strncasecmp(p, clen, sizeof clen - 1) == 0) {
        char v[32];
        size_t k = n - (sizeof clen - 1);
        if (k < sizeof v) {
            memcpy(v, p + sizeof clen - 1, k);
            v[k] = '\0';
            char *end;
            unsigned long long x = strtoull(v, &end, 10);
            if (end != v && x > 0 && x <= a->max)
                a->expect = (size_t)x;
        }
    }
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        size_t v = n - (sizeof name - 1);
        if (v >= sizeof a->retry_after)
            v = sizeof a->retry_after - 1;
        memcpy(a->retry_after, p + sizeof name - 1, v);
        a->retry_after[v] = '\0';
        char *cr = strpbrk(a->retry_after, "\r\n");
        if (cr)
            *cr = '\0';
    }
    return n;
}

static int attempt_start_on(struct gw *g, CURLM *m, struct attempt *a, size_t host,
                            const struct request *req, struct timespec deadline, CURL *reuse);

static int attempt_start(struct gw *g, CURLM *m, struct attempt *a, size_t host,
                         const struct request *req, struct timespec deadline)
{
    return attempt_start_on(g, m, a, host, req, deadline, NULL);
}

/* Start an attempt; on reuse (an easy handle of an earlier attempt, taken over: cleaned up here
 * on failure) when given, which keeps its receive buffer. */
static int attempt_start_on(struct gw *g, CURLM *m, struct attempt *a, size_t host,
                            const struct request *req, struct timespec deadline, CURL *reuse)
{
    memset(a, 0, sizeof *a);
    a->g = g;
    a->host = host;
    a->max = req->max;
    int64_t left = diff_ms(deadline, clock_mono());
    char url[GW_URL_MAX + sizeof ((struct request *)0)->path];
    int un = snprintf(url, sizeof url, "%s%s", g->hosts[host].url, req->path);
    if (left < 1 || un < 0 || (size_t)un >= sizeof url) {
        easy_put(g, reuse);
        return left < 1 ? -ETIMEDOUT : -ENAMETOOLONG;
    }
    a->e = reuse ? reuse : easy_get(g);
    char accept[128];
    snprintf(accept, sizeof accept, "Accept: %s", req->accept);
    a->hdrs = curl_slist_append(NULL, accept);
    if (!a->e || !a->hdrs) {
        easy_put(g, a->e);
        curl_slist_free_all(a->hdrs);
        a->e = NULL;
        a->hdrs = NULL;
        return -ENOMEM;
    }
    CURL *e = a->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, GW_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* ipfs.io redirects block requests to trustless-gateway.link: follow (a few hops, http(s)
     * only). Whatever answers, the bytes are checked against the CID. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* Under glibc's mmap threshold (128 KiB here, main.c), so that the buffer curl makes for
     * each transfer reuses heap pages instead of mapping fresh ones (see GW_EASY_KEEP). */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
    /* A CAR streams for as long as it makes progress (gw_car watches that), within left. */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(left < 10000 ? left : 10000));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, req->car ? on_car : on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(e, CURLOPT_PRIVATE, a);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max);
    curl_easy_setopt(e, CURLOPT_PROXY, g->proxy ? g->proxy : "");
    /* A proxy's CONNECT answer is not the gateway's (attempt.got). */
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    if (!g->proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (g->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, g->cacert);
    a->t0 = clock_mono();
    a->last = a->t0;
    if (curl_multi_add_handle(m, e) != CURLM_OK) {
        easy_put(g, e);
        curl_slist_free_all(a->hdrs);
        a->e = NULL;
        a->hdrs = NULL;
        return -ENOMEM;
    }
    a->running = true;
    return 0;
}

static void attempt_end(CURLM *m, struct attempt *a)
{
    if (a->cs)
        car_reader_free(&a->car);
    a->cs = NULL;
    if (a->e) {
        if (a->running)
            curl_multi_remove_handle(m, a->e);
        easy_put(a->g, a->e);
    }
    curl_slist_free_all(a->hdrs);
    if (a->buf && a->cap == GW_MAX_BLOCK)
        gw_buf_release(a->g, a->buf);
    else
        free(a->buf);
    a->e = NULL;
    a->hdrs = NULL;
    a->buf = NULL;
    a->running = false;
}

/* The next attempt of m that ended (taken out of m, no longer running), and its result in *cc;
 * NULL when no other has ended. After curl_multi_perform. */
static struct attempt *attempt_done(CURLM *m, CURLcode *cc)
{
    CURLMsg *msg;
    int q;
    while ((msg = curl_multi_info_read(m, &q))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct attempt *a = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
        if (!a || !a->running)
            continue;
        *cc = msg->data.result;
        curl_multi_remove_handle(m, a->e);
        a->running = false;
        return a;
    }
    return NULL;
}

/* ---- the gateways' records (gw.lock held) ---------------------------------------------- */

/* Set h aside for ms (< 0: its next backoff, which then doubles). Returns the ms used. */
static long set_aside_locked(struct gw_host *h, enum why_aside why, long ms)
{
    if (ms < 0) {
        ms = h->backoff_ms;
        h->backoff_ms = h->backoff_ms >= GW_MAX_BACKOFF_MS / 2 ? GW_MAX_BACKOFF_MS
                                                                : h->backoff_ms * 2;
    }
    if ((unsigned long)ms > GW_MAX_BACKOFF_MS)
        ms = GW_MAX_BACKOFF_MS;
    struct timespec until = add_ms(clock_mono(), (uint64_t)ms);
    if (h->aside_why == ASIDE_BAD && why != ASIDE_BAD && diff_ms(h->aside_until, until) > 0)
        return diff_ms(h->aside_until, clock_mono()); /* a liar's time is not cut short */
    h->aside_until = until;
    h->aside_why = why;
    return ms;
}

/* The order to ask the gateways in: those not set aside, fastest first (unknown ones first of
 * all). Returns how many; *wait_ms: when none is available, how long until a rate-limited one
 * comes back (-1: none will within a reasonable time). */
static size_t order_locked(struct gw *g, size_t *order, long *wait_ms)
{
    struct timespec now = clock_mono();
    size_t k = 0;
    long wait = -1;
    for (size_t i = 0; i < g->n; i++) {
        struct gw_host *h = &g->hosts[i];
        if (is_set(h->aside_until)) {
            int64_t left = diff_ms(h->aside_until, now);
            if (left > 0) {
                if (h->aside_why == ASIDE_LIMITED && (wait < 0 || left < wait))
                    wait = (long)left;
                continue;
            }
            h->aside_until = (struct timespec){0};
            h->aside_why = ASIDE_NONE;
        }
        /* Insertion sort by average answer time (0, unknown, first). */
        size_t j = k++;
        while (j > 0 && g->hosts[order[j - 1]].avg_ms > h->avg_ms) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    *wait_ms = wait;
    return k;
}

static unsigned hedge_ms_locked(const struct gw_host *h)
{
    if (h->avg_ms <= 0)
        return HEDGE_UNKNOWN_MS;
    double ms = h->avg_ms * HEDGE_FACTOR;
    if (ms < HEDGE_MIN_MS)
        return HEDGE_MIN_MS;
    if (ms > HEDGE_MAX_MS)
        return HEDGE_MAX_MS;
    return (unsigned)ms;
}

enum outcome { OUT_OK, OUT_NOT_FOUND, OUT_LIMITED, OUT_FAILED, OUT_BAD, OUT_UNCHECKABLE };

static void record(struct gw *g, struct attempt *a, enum outcome out, long status, CURLcode cc,
                   const char *cidstr);

/* Whether an error answer's body is boxo's routing.ErrNotFound ("routing: not found"): what
 * Kubo's gateway (0.43) answers, with HTTP 500, for an IPNS name nobody published. An answer,
 * not a failing gateway: it must not set the gateway aside. */
static bool routing_not_found(const struct attempt *a)
{
    static const char msg[] = "routing: not found";
    size_t n = a->len < 4096 ? a->len : 4096; /* an error text, possibly wrapped */
    return a->buf && memmem(a->buf, n, msg, sizeof msg - 1) != NULL;
}

/* Judge a finished attempt, and record it against its gateway. */
static enum outcome judge(struct gw *g, struct attempt *a, CURLcode cc,
                          const struct request *req)
{
    const char *cidstr = req->what;
    long status = 0;
    curl_easy_getinfo(a->e, CURLINFO_RESPONSE_CODE, &status);
    enum outcome out;
    int vr = 0;
    if (a->too_big || cc == CURLE_FILESIZE_EXCEEDED)
        out = OUT_BAD;
    else if (cc != CURLE_OK)
        out = OUT_FAILED;
    else if (status == 200 && req->verify_later)
        return OUT_OK; /* verified, and recorded, by the caller (gw_blocks' hand-over) */
    else if (status == 200)
        out = (vr = req->verify(req->ud, a->buf, a->len)) == 0 ? OUT_OK
              : vr == -ENOTSUP                                     ? OUT_UNCHECKABLE
              : vr == -ESTALE                                      ? OUT_NOT_FOUND
                                                                   : OUT_BAD;
    else if (status == 404 || status == 410 || status == 451) /* missing, or denylisted */
        out = OUT_NOT_FOUND;
    else if (status >= 500 && routing_not_found(a))
        out = OUT_NOT_FOUND; /* Kubo's gateway: HTTP 500 for an IPNS name with no record */
    else if (status == 429 || status == 503 || status == 504)
        out = OUT_LIMITED;
    else
        out = OUT_FAILED;
    record(g, a, out, status, cc, cidstr);
    return out;
}

/* Record a judged attempt against its gateway (counters, backoff), and log it. */
static void record(struct gw *g, struct attempt *a, enum outcome out, long status, CURLcode cc,
                   const char *cidstr)
{
    struct gw_host *h = &g->hosts[a->host];
    long ra = out == OUT_LIMITED ? gw_retry_after_ms(a->retry_after, time(NULL)) : -1;
    double ms = (double)diff_ms(clock_mono(), a->t0);
    pthread_mutex_lock(&g->lock);
    if (out == OUT_FAILED && cc == CURLE_OPERATION_TIMEDOUT && !a->got)
        h->stalled = true; /* curl's own timeout (connect, at most 10 s): nothing came */
    else if (out != OUT_FAILED || a->got)
        h->stalled = false; /* it answers */
    if (a->probation && (out == OUT_OK || out == OUT_NOT_FOUND) &&
        h->aside_why == ASIDE_FAILED) {
        h->aside_until = (struct timespec){0}; /* it answers: back in the race */
        h->aside_why = ASIDE_NONE;
    }
    switch (out) {
    case OUT_OK:
        h->ok++;
        h->bytes += a->len;
        h->avg_ms = h->avg_ms > 0 ? 0.8 * h->avg_ms + 0.2 * ms : ms;
        h->backoff_ms = BACKOFF_FIRST_MS;
        break;
    case OUT_NOT_FOUND:
        h->not_found++;
        break;
    case OUT_LIMITED:
        h->limited++;
        ra = set_aside_locked(h, ASIDE_LIMITED, ra);
        break;
    case OUT_FAILED:
        h->failed++;
        if (!a->probation) /* its time aside runs out as it was: not extended, not doubled */
            set_aside_locked(h, ASIDE_FAILED, -1);
        break;
    case OUT_BAD:
        h->bad++;
        g->bad_total++;
        set_aside_locked(h, ASIDE_BAD, GW_BAD_BLOCK_MS);
        break;
    case OUT_UNCHECKABLE:
        break;
    }
    pthread_mutex_unlock(&g->lock);

    switch (out) {
    case OUT_OK:
    case OUT_NOT_FOUND:
    case OUT_UNCHECKABLE:
        break;
    case OUT_LIMITED:
        log_warn("gateway %s: HTTP %ld for %s: set aside for %ld ms", h->url, status, cidstr, ra);
        break;
    case OUT_FAILED:
        if (cc != CURLE_OK)
            log_warn("gateway %s: %s for %s: set aside", h->url, curl_easy_strerror(cc), cidstr);
        else
            log_warn("gateway %s: HTTP %ld for %s: set aside", h->url, status, cidstr);
        break;
    case OUT_BAD:
        log_err("gateway %s: %s for %s: refused, gateway set aside for %u s", h->url,
                a->bad_why       ? a->bad_why
                : a->too_big     ? "an answer too big"
                                 : "bytes that do not verify",
                cidstr, GW_BAD_BLOCK_MS / 1000u);
        break;
    }
}

/* Mark a gateway that did not answer before the deadline (it stalls: set it aside). */
static void record_stalled(struct gw *g, struct attempt *a, const char *cidstr)
{
    struct gw_host *h = &g->hosts[a->host];
    pthread_mutex_lock(&g->lock);
    h->failed++;
    h->stalled = !a->got; /* on probation only if nothing came at all */
    if (!a->probation)
        set_aside_locked(h, ASIDE_FAILED, -1);
    pthread_mutex_unlock(&g->lock);
    log_warn("gateway %s: no answer for %s in time: set aside", h->url, cidstr);
}

/* A gateway still running when another one won: if it was late by its own hedge delay, count
 * that time as an answer time, so that a gateway that stalls sorts behind those that answer
 * (and costs a hedge delay once, not on every block). */
static void record_late(struct gw *g, struct attempt *a)
{
    struct gw_host *h = &g->hosts[a->host];
    double ms = (double)diff_ms(clock_mono(), a->t0);
    pthread_mutex_lock(&g->lock);
    if (ms >= hedge_ms_locked(h))
        h->avg_ms = h->avg_ms > 0 ? 0.8 * h->avg_ms + 0.2 * ms : ms;
    pthread_mutex_unlock(&g->lock);
}

/* How long a streaming answer may pause, with no bytes, before its gateway counts as paused:
 * twice the gateway's hedge delay, within half of --timeout (the hedge delay grows with a
 * gateway's lateness; the wait for it must not), and 1 s at least (with a --timeout of 2 s or
 * less, the request's own deadline then comes first: a pause is no less likely from a gateway
 * that answers, and the single blocks after it would ask the same one). */
static int64_t pause_ms(const struct gw *g, unsigned hedge_ms)
{
    int64_t ms = 2 * (int64_t)hedge_ms;
    if (ms > (int64_t)g->timeout_ms / 2)
        ms = (int64_t)g->timeout_ms / 2;
    return ms < 1000 ? 1000 : ms;
}

/* ---- gw_block -------------------------------------------------------------------------- */

static int run(struct gw *g, const struct request *req, uint8_t **data, size_t *len);

static int verify_block(void *ud, const uint8_t *data, size_t len)
{
    return gw_verify(ud, data, len);
}

int gw_block(struct gw *g, const struct cid *c, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (c->mh_code == MH_IDENTITY) {
        /* No request: the data is in the CID. */
        const uint8_t *dig;
        size_t n;
        if (mh_digest(c, &dig, &n) < 0)
            return -EIO;
        uint8_t *d = malloc(n ? n : 1);
        if (!d)
            return -ENOMEM;
        if (n)
            memcpy(d, dig, n);
        *data = d;
        *len = n;
        return 0;
    }
    if (c->mh_code != MH_SHA2_256)
        return -ENOTSUP;
    char cidstr[CID_STR_MAX], what[CID_STR_MAX + 8];
    if (cid_format(c, cidstr, sizeof cidstr) < 0)
        return -EINVAL;
    snprintf(what, sizeof what, "block %s", cidstr);
    struct request req = {.accept = "application/vnd.ipld.raw", .max = GW_MAX_BLOCK,
                          .verify = verify_block, .ud = (void *)c, .what = what};
    snprintf(req.path, sizeof req.path, "/ipfs/%s?format=raw", cidstr);
    return run(g, &req, data, len);
}

/* The calling thread's read bound (gw_read_cap). */
static __thread bool cap_on;
static __thread struct timespec cap_at;

void gw_read_cap(void *ud, bool on)
{
    struct gw *g = ud;
    cap_on = on;
    if (on)
        cap_at = add_ms(clock_mono(), g->timeout_ms);
}

/* d, or the read's bound if that comes first. */
static struct timespec capped(struct timespec d)
{
    return cap_on && diff_ms(d, cap_at) > 0 ? cap_at : d;
}

/* Ask the gateways (raced, failed over, every wait within the timeout) until one answers req
 * with bytes it verifies. */
static int run(struct gw *g, const struct request *req, uint8_t **data, size_t *len)
{
    struct timespec deadline = capped(add_ms(clock_mono(), g->timeout_ms));
    size_t order[GW_MAX];
    size_t norder;
    long wait_ms;
    pthread_mutex_lock(&g->lock);
    g->calls++;
    pthread_mutex_unlock(&g->lock);
    for (;;) {
        pthread_mutex_lock(&g->lock);
        norder = order_locked(g, order, &wait_ms);
        pthread_mutex_unlock(&g->lock);
        if (norder > 0)
            break;
        /* Every gateway is set aside: wait for a rate-limited one if it is back in time. */
        if (wait_ms < 0 || wait_ms >= diff_ms(deadline, clock_mono())) {
            log_debug("%s: every gateway is set aside", req->what);
            /* One of them for wrong bytes: EIO, as the call that caught it said, not a
             * timeout that invites a retry. */
            bool liar = false;
            pthread_mutex_lock(&g->lock);
            for (size_t i = 0; i < g->n; i++)
                if (g->hosts[i].aside_why == ASIDE_BAD && is_set(g->hosts[i].aside_until))
                    liar = true;
            /* Else those set aside for failing are asked all the same, for PROBATION_MS: one
             * CID a gateway did not find in time says little of the rest, and with one
             * gateway (or all of them failing) setting it aside would fail reads of content
             * it has; a black hole costs PROBATION_MS a read, not --timeout. */
            for (size_t i = 0; i < g->n && !liar; i++)
                if (g->hosts[i].aside_why == ASIDE_FAILED)
                    order[norder++] = i;
            if (norder == 0)
                g->call_fail++;
            pthread_mutex_unlock(&g->lock);
            if (norder > 0) {
                struct timespec soon = add_ms(clock_mono(), PROBATION_MS);
                if (diff_ms(deadline, soon) > 0)
                    deadline = soon;
                break;
            }
            return liar ? -EIO : -ETIMEDOUT;
        }
        struct timespec ts = {.tv_sec = wait_ms / 1000, .tv_nsec = (wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }

    CURLM *m = multi_get(g);
    if (!m)
        return -ENOMEM;
    struct attempt at[GW_MAX];
    bool suspect[GW_MAX]; /* at[i]'s gateway is on probation (see PROBATION_MS) */
    size_t started = 0, running = 0, said_no = 0, ended = 0;
    bool start_failed = false; /* a gateway could not be asked (no time left, no memory) */
    int rc = -ETIMEDOUT;
    bool any_bad = false, won = false;
    struct timespec next_hedge = {0};
    bool probation = false; /* every gateway was aside: those failing are asked anyway */
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < norder && !probation; i++)
        probation = g->hosts[order[i]].aside_why == ASIDE_FAILED &&
                    is_set(g->hosts[order[i]].aside_until);
    pthread_mutex_unlock(&g->lock);

    while (!won) {
        struct timespec now = clock_mono();
        /* Start the next gateway: at first, when none is running (the last one failed), or
         * when the hedge delay passed. */
        if (started < norder && (running == 0 || diff_ms(now, next_hedge) >= 0)) {
            int src = attempt_start(g, m, &at[started], order[started], req, deadline);
            at[started].probation = probation;
            if (src == 0) {
                pthread_mutex_lock(&g->lock);
                next_hedge = add_ms(now, hedge_ms_locked(&g->hosts[order[started]]));
                suspect[started] = g->hosts[order[started]].stalled;
                pthread_mutex_unlock(&g->lock);
                running++;
            } else {
                start_failed = true;
                if (src != -ETIMEDOUT)
                    rc = src;
            }
            started++;
            continue;
        }
        if (running == 0)
            break; /* every gateway was asked and answered no */
        if (diff_ms(deadline, now) <= 0)
            break;

        int still = 0;
        curl_multi_perform(m, &still);
        struct attempt *a;
        CURLcode cc;
        while ((a = attempt_done(m, &cc))) {
            running--;
            ended++;
            enum outcome out = judge(g, a, cc, req);
            if (out == OUT_OK && !won) {
                *data = a->buf;
                *len = a->len;
                a->buf = NULL;
                won = true;
                rc = 0;
            } else if (out == OUT_BAD) {
                any_bad = true;
            } else if (out == OUT_NOT_FOUND) {
                said_no++;
            }
        }
        if (won || (running == 0 && started >= norder))
            break;
        if (running == 0)
            continue; /* fail over at once */
        int64_t poll = diff_ms(deadline, clock_mono());
        if (started < norder) {
            int64_t h = diff_ms(next_hedge, clock_mono());
            if (h < poll)
                poll = h;
        } else if (said_no > 0 && said_no == ended && !start_failed) {
            /* Every other gateway said "not found": a gateway on probation that has sent
             * nothing yet gets PROBATION_MS, not the whole timeout (a black hole would cost a
             * full timeout on every read of content nobody has). */
            int64_t left = -1;
            for (size_t i = 0; i < started && left != INT64_MAX; i++) {
                if (!at[i].running)
                    continue;
                if (!suspect[i] || at[i].got) {
                    left = INT64_MAX; /* one that may still answer: wait as usual */
                    break;
                }
                int64_t l = diff_ms(add_ms(at[i].t0, PROBATION_MS), clock_mono());
                if (l > left)
                    left = l;
            }
            if (left != INT64_MAX && left <= 0)
                break; /* recorded as stalled below */
            if (left != INT64_MAX && left < poll)
                poll = left;
        }
        if (poll > 0)
            curl_multi_poll(m, NULL, 0, (int)(poll > 1000 ? 1000 : poll), NULL);
    }
    for (size_t i = 0; i < started; i++) {
        if (at[i].running && !won)
            record_stalled(g, &at[i], req->what);
        else if (at[i].running)
            record_late(g, &at[i]);
        attempt_end(m, &at[i]);
    }
    multi_put(g, m);
    if (!won && rc == -ETIMEDOUT && any_bad)
        rc = -EIO;
    if (req->none_has) /* every gateway, none set aside, was asked and said so */
        *req->none_has = !won && norder == g->n && started == norder && said_no == started &&
                         started > 0;
    pthread_mutex_lock(&g->lock);
    if (won)
        g->call_ok++;
    else
        g->call_fail++;
    pthread_mutex_unlock(&g->lock);
    if (!won)
        log_debug("%s: no gateway gave it: %s", req->what, strerror(-rc));
    return rc;
}

int gw_fetch(void *ud, const struct cid *c, uint8_t **data, size_t *len)
{
    return gw_block(ud, c, data, len);
}

int gw_stats(struct gw *g, char *buf, size_t len)
{
    size_t off = 0;
    pthread_mutex_lock(&g->lock);
    int n = snprintf(buf, len,
                     "gw_calls %" PRIu64 "\ngw_calls_ok %" PRIu64 "\ngw_calls_failed %" PRIu64
                     "\ngw_bad_blocks %" PRIu64 "\n",
                     g->calls, g->call_ok, g->call_fail, g->bad_total);
    if (n > 0)
        off = (size_t)n;
    struct timespec now = clock_mono();
    for (size_t i = 0; i < g->n && off < len; i++) {
        const struct gw_host *h = &g->hosts[i];
        int64_t aside = is_set(h->aside_until) ? diff_ms(h->aside_until, now) : 0;
        n = snprintf(buf + off, len - off,
                     "gateway %s ok=%" PRIu64 " not_found=%" PRIu64 " limited=%" PRIu64
                     " failed=%" PRIu64 " bad=%" PRIu64 " bytes=%" PRIu64
                     " avg_ms=%.1f aside_ms=%" PRId64 "\n",
                     h->url, h->ok, h->not_found, h->limited, h->failed, h->bad, h->bytes,
                     h->avg_ms, aside > 0 ? aside : 0);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    pthread_mutex_unlock(&g->lock);
    return (int)off;
}

int gw_stats_cb(void *ud, char *buf, size_t len)
{
    return gw_stats(ud, buf, len);
}

/* ---- IPNS records ------------------------------------------------------------------------ */

struct ipns_check {
    const struct cid *name;
    int64_t now_ns;
    uint64_t min_seq;
    struct ipns_record *out;
};

static int verify_record(void *ud, const uint8_t *data, size_t len)
{
    struct ipns_check *k = ud;
    struct ipns_record r;
    int rc = ipns_verify(k->name, data, len, k->now_ns, &r);
    if (rc == -ETIME)
        return -ESTALE; /* an old record this gateway kept: not a lie */
    if (rc < 0)
        return rc == -ENOTSUP ? -ENOTSUP : -EBADMSG;
    if (r.sequence < k->min_seq)
        return -ESTALE;
    *k->out = r;
    return 0;
}

int gw_ipns_record(struct gw *g, const char *spelled, const struct cid *name, int64_t now_ns,
                   uint64_t min_seq, struct ipns_record *out)
{
    char ns[CID_STR_MAX], what[CID_STR_MAX + 32];
    if (spelled && strlen(spelled) < sizeof ns && strspn(spelled, "abcdefghijklmnopqrstuvwxyz"
                                                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                  "0123456789") ==
                                                      strlen(spelled))
        memcpy(ns, spelled, strlen(spelled) + 1);
    else if (cid_format(name, ns, sizeof ns) < 0)
        return -EINVAL;
    snprintf(what, sizeof what, "the IPNS record of %s", ns);
    struct ipns_check k = {.name = name, .now_ns = now_ns, .min_seq = min_seq, .out = out};
    bool none_has = false;
    struct request req = {.accept = "application/vnd.ipfs.ipns-record", .max = IPNS_MAX_RECORD,
                          .verify = verify_record, .ud = &k, .what = what,
                          .none_has = &none_has};
    snprintf(req.path, sizeof req.path, "/ipns/%s?format=ipns-record", ns);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = run(g, &req, &data, &len);
    free(data);
    return rc == -ETIMEDOUT && none_has ? -ENOENT : rc;
}

/* ---- CARs ------------------------------------------------------------------------------- */

/* One gw_car call: its attempts run in the caller's thread (one multi handle), so no lock. The
 * first attempt whose 200 answer brings bytes owns the stream; every other one is then
 * dropped (a stream cannot be merged with another). */
struct car_stream {
    car_block_cb cb;
    void *ud;
    long owner;           /* index of the attempt that owns the stream; -1: none yet */
    struct progress prog; /* the call's, in the owner's verified blocks */
};

static int car_block(void *ud, const struct cid *c, const uint8_t *block, size_t len)
{
    struct attempt *a = ud;
    /* The first attempt to bring a verified block owns the stream (not the first to send a
     * byte: a gateway that trickles must not keep a faster one out). */
    if (a->cs->owner >= 0 && a->cs->owner != (long)a->idx) {
        a->dropped = true;
        return -ECANCELED;
    }
    a->cs->owner = (long)a->idx;
    int rc = a->cs->cb(a->cs->ud, c, block, len);
    if (rc < 0) {
        a->cb_err = rc;
    } else {
        a->car_blocks++;
        progress_block(&a->cs->prog, len);
    }
    return rc;
}

static size_t on_car(char *p, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(a->e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        /* An error page: judged by its status, its body read no further than max. */
        if (n > a->max - a->len) {
            a->too_big = true;
            return 0;
        }
        a->len += n;
        return n;
    }
    if (a->cs->owner >= 0 && a->cs->owner != (long)a->idx) {
        a->dropped = true;
        return 0; /* another gateway streams already: drop this one */
    }
    if (n > a->max - a->len) {
        a->too_big = true;
        return 0;
    }
    a->len += n;
    a->last = clock_mono();
    int rc = car_reader_feed(&a->car, p, n, car_block, a);
    if (rc < 0) {
        if (!a->cb_err && !a->dropped)
            a->car_err = rc;
        return 0; /* abort: CURLE_WRITE_ERROR */
    }
    return n;
}

/* Judge a finished (or given up) CAR attempt, and record it against its gateway. */
static enum outcome judge_car(struct gw *g, struct attempt *a, CURLcode cc, const char *what)
{
    long status = 0;
    curl_easy_getinfo(a->e, CURLINFO_RESPONSE_CODE, &status);
    enum outcome out;
    if (a->cb_err == -EBADMSG) {
        a->bad_why = "a block not asked for";
        out = OUT_BAD;
    } else if (a->cb_err) {
        out = OUT_UNCHECKABLE; /* the caller stopped: not the gateway's doing */
    } else if (a->car_err == -ENOTSUP) {
        out = OUT_UNCHECKABLE;
    } else if (a->car_err == -EPROTO &&
               (car_reader_nblocks(&a->car) > 0 || car_reader_version(&a->car) > 0)) {
        /* A header and verified blocks (or none), then something that is no block: Kubo
         * ends a CAR it cannot complete (a block it lacks, the root too) with "[Gateway
         * Error: CAR stream truncated, response is incomplete]" after its 200. Cut short, as
         * a transfer cut off is: no lie (every block that came verified), and the rest is
         * asked for block by block. */
        out = OUT_FAILED;
    } else if (a->car_err) {
        a->bad_why = a->car_err == -EBADMSG ? "a block that does not verify"
                     : a->car_err == -EFBIG ? "a block too big"
                                            : "a malformed CAR";
        out = OUT_BAD;
    } else if (a->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        out = OUT_BAD;
    } else if (cc != CURLE_OK) {
        out = OUT_FAILED; /* cut, or timed out: what came verified is the caller's */
    } else if (status == 200) {
        int frc = car_reader_finish(&a->car);
        if (frc == 0) {
            out = OUT_OK;
        } else if (a->len == 0 || car_reader_nblocks(&a->car) == 0) {
            a->bad_why = "a malformed CAR";
            out = OUT_BAD;
        } else {
            out = OUT_FAILED; /* ended inside a block: cut short */
        }
    } else if (status == 404 || status == 410 || status == 451) {
        out = OUT_NOT_FOUND;
    } else if (status == 429 || status == 503 || status == 504) {
        out = OUT_LIMITED;
    } else {
        out = OUT_FAILED;
    }
    record(g, a, out, status, cc, what);
    return out;
}

int gw_car(struct gw *g, const char *path, size_t max, car_block_cb cb, void *ud)
{
    struct request req = {.accept = "application/vnd.ipld.car; version=1; order=dfs; dups=y",
                          .max = max, .what = path, .car = true};
    if (strlen(path) >= sizeof req.path)
        return -ENAMETOOLONG;
    memcpy(req.path, path, strlen(path) + 1);
    struct timespec start = clock_mono();
    /* As long as verified blocks keep coming (the progress rule: a stream of many MiB may take
     * longer than --timeout), within a generous cap. */
    uint64_t cap_ms = (uint64_t)g->timeout_ms * 16u;
    struct timespec deadline = add_ms(start, cap_ms > 120000u ? cap_ms : 120000u);
    size_t order[GW_MAX];
    size_t norder;
    long wait_ms;
    pthread_mutex_lock(&g->lock);
    g->calls++;
    norder = order_locked(g, order, &wait_ms);
    pthread_mutex_unlock(&g->lock);
    if (norder == 0) {
        pthread_mutex_lock(&g->lock);
        g->call_fail++;
        pthread_mutex_unlock(&g->lock);
        return -ETIMEDOUT; /* no waiting for a rate-limited one: the caller asks blocks */
    }
    CURLM *m = multi_get(g);
    if (!m)
        return -ENOMEM;
    struct car_stream cs = {.cb = cb, .ud = ud, .owner = -1};
    progress_init(&cs.prog, start);
    struct attempt at[GW_MAX];
    size_t started = 0, running = 0;
    int rc = -ETIMEDOUT;
    bool any_bad = false, done = false, paused = false;
    struct timespec next_hedge = {0};
    int64_t stall_ms = HEDGE_MAX_MS;
    bool cap_cut = false; /* the loop ended at the read's bound, not at this call's own */

    while (!done) {
        struct timespec now = clock_mono();
        if (cs.owner < 0 && started < norder && (running == 0 || diff_ms(now, next_hedge) >= 0)) {
            int src = attempt_start(g, m, &at[started], order[started], &req, deadline);
            if (src == 0) {
                at[started].cs = &cs;
                at[started].idx = started;
                car_reader_init(&at[started].car, GW_MAX_BLOCK);
                pthread_mutex_lock(&g->lock);
                unsigned hm = hedge_ms_locked(&g->hosts[order[started]]);
                pthread_mutex_unlock(&g->lock);
                next_hedge = add_ms(now, hm);
                running++;
            } else if (src != -ETIMEDOUT) {
                rc = src;
            }
            started++;
            continue;
        }
        if (running == 0)
            break;
        int64_t left = progress_left_ms(&cs.prog, now, g->timeout_ms);
        bool by_cap = false;
        if (cs.owner < 0 && cap_on && diff_ms(cap_at, now) < left) {
            left = diff_ms(cap_at, now); /* no block yet: within the read's bound */
            by_cap = true;
        }
        if (left <= 0 || diff_ms(deadline, now) <= 0) {
            cap_cut = by_cap && left <= 0;
            /* No verified block for the timeout, or too few for the time: too slow (recorded
             * as stalled below). */
            rc = cs.owner >= 0 && at[cs.owner].car_blocks ? -EAGAIN : -ETIMEDOUT;
            break;
        }
        if (cs.owner >= 0) {
            struct attempt *o = &at[cs.owner];
            pthread_mutex_lock(&g->lock);
            stall_ms = pause_ms(g, hedge_ms_locked(&g->hosts[o->host]));
            pthread_mutex_unlock(&g->lock);
            if (o->running && diff_ms(now, o->last) >= stall_ms) {
                rc = o->car_blocks ? -EAGAIN : -ETIMEDOUT;
                paused = true;
                break; /* it paused: recorded as late below, the caller asks block by block */
            }
        }

        int still = 0;
        curl_multi_perform(m, &still);
        struct attempt *a;
        CURLcode cc;
        while ((a = attempt_done(m, &cc))) {
            running--;
            if (a->dropped) {
                record_late(g, a); /* another gateway streams */
                continue;
            }
            enum outcome out = judge_car(g, a, cc, req.what);
            if (a->cb_err && a->cb_err != -EBADMSG) {
                rc = a->cb_err; /* the caller stopped */
                done = true;
            } else if ((long)a->idx == cs.owner || (cs.owner < 0 && out == OUT_OK)) {
                /* The owner's end (or a CAR that ended cleanly with no block: nothing more
                 * to have from another). */
                rc = out == OUT_OK          ? 0
                     : out == OUT_BAD       ? -EIO
                     : out == OUT_UNCHECKABLE ? -ENOTSUP
                     : a->car_blocks        ? -EAGAIN
                                            : -ETIMEDOUT;
                done = true;
            } else if (out == OUT_BAD) {
                any_bad = true;
            }
        }
        if (done || (running == 0 && started >= norder))
            break;
        if (running == 0)
            continue; /* the next gateway at once */
        int64_t poll = progress_left_ms(&cs.prog, clock_mono(), g->timeout_ms);
        if (cs.owner >= 0 && stall_ms < poll)
            poll = stall_ms;
        if (cs.owner < 0 && started < norder) {
            int64_t h = diff_ms(next_hedge, clock_mono());
            if (h < poll)
                poll = h;
        }
        if (poll > 0)
            curl_multi_poll(m, NULL, 0, (int)(poll > 250 ? 250 : poll), NULL);
    }
    struct timespec end = clock_mono();
    for (size_t i = 0; i < started; i++) {
        /* Stalled: a whole --timeout with no progress. One the read's bound cut shorter (it
         * began late in the read, after a batch or another gateway) is only late: setting it
         * aside took the one good gateway away from the single blocks that follow. */
        if (at[i].running && !paused && ((long)i == cs.owner || cs.owner < 0) &&
            !(cap_cut && diff_ms(end, at[i].t0) < (int64_t)g->timeout_ms))
            record_stalled(g, &at[i], req.what);
        else if (at[i].running)
            record_late(g, &at[i]);
        attempt_end(m, &at[i]);
    }
    multi_put(g, m);
    if (rc == -ETIMEDOUT && any_bad)
        rc = -EIO;
    pthread_mutex_lock(&g->lock);
    if (rc == 0)
        g->call_ok++;
    else
        g->call_fail++;
    pthread_mutex_unlock(&g->lock);
    if (rc < 0)
        log_debug("%s: CAR: %s", req.what, strerror(-rc));
    return rc;
}

int gw_fetch_range(void *ud, const struct cid *root, uint64_t from, uint64_t to, size_t max,
                   car_block_cb cb, void *cbud)
{
    char cs[CID_STR_MAX], path[CID_STR_MAX + 96];
    if (root->mh_code != MH_SHA2_256)
        return -ENOTSUP;
    if (cid_format(root, cs, sizeof cs) < 0)
        return -EINVAL;
    snprintf(path, sizeof path,
             "/ipfs/%s?format=car&dag-scope=entity&entity-bytes=%" PRIu64 ":%" PRIu64, cs, from,
             to);
    return gw_car(ud, path, max, cb, cbud);
}

/* ---- many blocks at once ------------------------------------------------------------------ */

/* Requests of one gw_blocks call at most. */
#define GW_BATCH_MAX 16u

/* Blocks received and not yet handed over, at most (each up to GW_MAX_BLOCK): with the
 * requests in flight (GW_BATCH_MAX at most) and the one being handed over, within the buffers
 * the gateway keeps for reuse (GW_BUF_KEEP) at the default 8 requests. */
#define HAND_MAX 4u
/* From this many blocks in a call, the hand-over has a thread of its own. */
#define HAND_THREAD_MIN 4u

/* A gw_blocks call's hand-over. The network loop (the calling thread) queues each answer that
 * came whole with HTTP 200; the hand-over verifies it, records it against its gateway, and
 * gives it to the caller's callback (which stores the block and passes its bytes on to the
 * reader). With a thread of its own, the loop reads answers and makes the next requests while
 * a block is hashed and stored, where before it did neither: a cold 256 MiB read through
 * Kubo's gateway on loopback took 1.19 s instead of 1.25 s (medians of 12). Without one (few
 * blocks, or no thread), the loop hands each block over itself. */
struct hand_item {
    size_t idx; /* the caller's index */
    uint8_t *buf;
    size_t len;
    size_t host;
    struct timespec t0, queued; /* the request's start; when it was queued */
    char what[CID_STR_MAX + 8];
};

struct hand {
    struct gw *g;
    const struct cid *cids;
    int (*cb)(void *ud, size_t i, uint8_t *data, size_t len);
    void *ud;
    bool threaded;
    pthread_t thread;
    /* lock guards the rest; cond: an item queued or taken, an item done, or closed. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct hand_item q[HAND_MAX];
    size_t head, count;
    bool closed; /* the loop queues nothing more */
    int rc;      /* the callback's first error: the rest is dropped */
    bool bad;    /* a block did not verify: its gateway is set aside, the call stops */
    int given;   /* blocks the callback took */
};

/* Verify, record and give one block (the hand-over's thread, or the loop's without one). */
static void hand_one(struct hand *hd, struct hand_item *it)
{
    const struct cid *c = &hd->cids[it->idx];
    pthread_mutex_lock(&hd->lock);
    bool drop = hd->rc < 0, judged = hd->bad;
    pthread_mutex_unlock(&hd->lock);
    if (drop) {
        gw_buf_release(hd->g, it->buf);
        return;
    }
    int vr = gw_verify(c, it->buf, it->len);
    enum outcome out = vr == 0 ? OUT_OK : vr == -ENOTSUP ? OUT_UNCHECKABLE : OUT_BAD;
    if (!judged) {
        /* The gateway's time: the request's, less its wait in the queue. Once a block was
         * wrong the gateway is set aside and judged: the rest (good blocks still given) is
         * not recorded, as the loop drops its other requests unjudged. */
        int64_t waited = diff_ms(clock_mono(), it->queued);
        struct attempt fa = {.g = hd->g, .host = it->host, .len = it->len,
                             .t0 = add_ms(it->t0, waited > 0 ? (uint64_t)waited : 0)};
        record(hd->g, &fa, out, 200, CURLE_OK, it->what);
    }
    int crc = 0;
    if (out == OUT_OK)
        crc = hd->cb(hd->ud, it->idx, it->buf, it->len);
    else
        gw_buf_release(hd->g, it->buf);
    pthread_mutex_lock(&hd->lock);
    if (out != OUT_OK)
        hd->bad = true;
    else if (crc < 0 && hd->rc == 0)
        hd->rc = crc;
    else if (crc >= 0)
        hd->given++;
    pthread_mutex_unlock(&hd->lock);
}

static void *hand_main(void *arg)
{
    struct hand *hd = arg;
    pthread_mutex_lock(&hd->lock);
    for (;;) {
        while (hd->count == 0 && !hd->closed)
            pthread_cond_wait(&hd->cond, &hd->lock);
        if (hd->count == 0)
            break; /* closed, and nothing left */
        struct hand_item it = hd->q[hd->head];
        hd->head = (hd->head + 1) % HAND_MAX;
        hd->count--;
        pthread_cond_broadcast(&hd->cond); /* room for the loop */
        pthread_mutex_unlock(&hd->lock);
        hand_one(hd, &it);
        pthread_mutex_lock(&hd->lock);
        pthread_cond_broadcast(&hd->cond); /* bad or rc may have changed */
    }
    pthread_mutex_unlock(&hd->lock);
    return NULL;
}

/* Queue a received block (the loop's thread); without a thread, hand it over at once. */
static void hand_push(struct hand *hd, const struct hand_item *it)
{
    if (!hd->threaded) {
        struct hand_item copy = *it;
        hand_one(hd, &copy);
        return;
    }
    pthread_mutex_lock(&hd->lock);
    while (hd->count == HAND_MAX && hd->rc == 0)
        pthread_cond_wait(&hd->cond, &hd->lock);
    bool drop = hd->rc < 0;
    if (!drop) {
        hd->q[(hd->head + hd->count) % HAND_MAX] = *it;
        hd->count++;
        pthread_cond_broadcast(&hd->cond);
    }
    pthread_mutex_unlock(&hd->lock);
    if (drop)
        gw_buf_release(hd->g, it->buf);
}

/* What the loop needs to know: stop (the callback failed), cancel (a block did not verify). */
static void hand_state(struct hand *hd, bool *stop, bool *cancel)
{
    pthread_mutex_lock(&hd->lock);
    if (hd->rc < 0)
        *stop = true;
    if (hd->bad)
        *stop = *cancel = true;
    pthread_mutex_unlock(&hd->lock);
}

struct batch_slot {
    struct attempt at;
    struct request req;
    size_t idx;  /* the block it asks for */
    bool busy;
    char what[CID_STR_MAX + 8]; /* "block CID", for the log */
    CURL *spare; /* the easy handle of its last request, kept for the next (its buffers) */
};

int gw_blocks(struct gw *g, const struct cid *cids, size_t n, unsigned parallel,
              int (*cb)(void *ud, size_t i, uint8_t *data, size_t len), void *ud)
{
    if (n == 0)
        return 0;
    if (parallel == 0)
        parallel = 1;
    if (parallel > GW_BATCH_MAX)
        parallel = GW_BATCH_MAX;
    size_t order[GW_MAX];
    long wait_ms;
    pthread_mutex_lock(&g->lock);
    size_t norder = order_locked(g, order, &wait_ms);
    pthread_mutex_unlock(&g->lock);
    if (norder == 0)
        return -ETIMEDOUT;
    size_t host = order[0];
    struct batch_slot *sl = calloc(parallel, sizeof *sl);
    CURLM *m = sl ? multi_get(g) : NULL;
    if (!m) {
        free(sl);
        return -ENOMEM;
    }
    struct hand hd = {.g = g, .cids = cids, .cb = cb, .ud = ud};
    pthread_mutex_init(&hd.lock, NULL);
    pthread_cond_init(&hd.cond, NULL);
    hd.threaded = n >= HAND_THREAD_MIN && parallel > 1 &&
                  pthread_create(&hd.thread, NULL, hand_main, &hd) == 0;
    size_t next = 0, inflight = 0, asked = 0;
    int rc = 0;
    bool stop = false, cancel = false;
    for (;;) {
        hand_state(&hd, &stop, &cancel);
        struct timespec now = clock_mono();
        /* Fill the free slots, in order. */
        for (unsigned k = 0; k < parallel && !stop && next < n; k++) {
            struct batch_slot *b = &sl[k];
            if (b->busy)
                continue;
            const struct cid *c = &cids[next];
            char cidstr[CID_STR_MAX];
            if (c->mh_code != MH_SHA2_256 || cid_format(c, cidstr, sizeof cidstr) < 0) {
                next++; /* not for a gateway: left to the caller */
                continue;
            }
            /* Verified and recorded by the hand-over (see judge). */
            b->req = (struct request){.accept = "application/vnd.ipld.raw", .max = GW_MAX_BLOCK,
                                      .verify = verify_block, .verify_later = true,
                                      .ud = (void *)c, .what = b->what};
            snprintf(b->what, sizeof b->what, "block %s", cidstr);
            snprintf(b->req.path, sizeof b->req.path, "/ipfs/%s?format=raw", cidstr);
            CURL *reuse = b->spare;
            b->spare = NULL;
            /* Each request within the timeout (the progress rule, gateway.h): a gateway that
             * trickles is cut there, judged failed and set aside. */
            int src = attempt_start_on(g, m, &b->at, host, &b->req,
                                       add_ms(now, g->timeout_ms), reuse);
            if (src < 0) {
                attempt_end(m, &b->at);
                stop = true;
                if (src != -ETIMEDOUT)
                    rc = src;
                break;
            }
            b->idx = next++;
            b->busy = true;
            inflight++;
            asked++;
        }
        if (inflight == 0)
            break;
        /* A request with no bytes for twice the gateway's hedge delay (at least 1 s): the
         * gateway pauses. Stop the batch and sort the gateway behind the others; what the batch
         * did not get is the caller's to ask, block by block, where only a full --timeout sets
         * a gateway aside (a pause under load is not a dead gateway). */
        pthread_mutex_lock(&g->lock);
        int64_t stall_ms = pause_ms(g, hedge_ms_locked(&g->hosts[host]));
        pthread_mutex_unlock(&g->lock);
        /* With other gateways to ask, one whose block is not whole within twice that (within
         * a third of --timeout; at least 2 s, or half of a --timeout under 4 s), bytes coming
         * or not, is left the same way: a gateway that trickles otherwise held the read until
         * its --timeout, with no time left for the others. Not more for a gateway that was
         * late before: the later it had been, the longer a batch already begun on it waited
         * (its hedge delay grows with its lateness), past --timeout at last (ETIMEDOUT in CI,
         * on a loaded machine). */
        int64_t slow_ms = INT64_MAX;
        if (g->n > 1) {
            int64_t half = (int64_t)g->timeout_ms / 2, floor = half < 2000 ? half : 2000;
            slow_ms = 2 * stall_ms;
            if (slow_ms > (int64_t)g->timeout_ms / 3)
                slow_ms = (int64_t)g->timeout_ms / 3;
            if (slow_ms < floor)
                slow_ms = floor;
        }
        bool stalled = false;
        unsigned late = 0;
        for (unsigned k = 0; k < parallel; k++)
            if (sl[k].busy && (diff_ms(now, sl[k].at.last) >= stall_ms ||
                               diff_ms(now, sl[k].at.t0) >= slow_ms)) {
                stalled = true;
                late = k;
                break;
            }
        if (stalled) {
            record_late(g, &sl[late].at);
            log_info("gateway %s: %s not whole in %lld ms: the rest block by block",
                     g->hosts[host].url, sl[late].req.what,
                     (long long)diff_ms(now, sl[late].at.t0));
            break;
        }
        int still = 0;
        curl_multi_perform(m, &still);
        struct attempt *a;
        CURLcode cc;
        while ((a = attempt_done(m, &cc))) {
            struct batch_slot *b = (struct batch_slot *)a; /* at is its first member */
            inflight--;
            b->busy = false;
            hand_state(&hd, &stop, &cancel);
            if (cancel) {
                attempt_end(m, a); /* done as well, but not judged: see below */
                continue;
            }
            enum outcome out = judge(g, a, cc, &b->req);
            if (out == OUT_OK) {
                struct hand_item it = {.idx = b->idx, .buf = a->buf, .len = a->len,
                                       .host = host, .t0 = a->t0, .queued = clock_mono()};
                memcpy(it.what, b->what, sizeof it.what);
                a->buf = NULL;
                hand_push(&hd, &it);
            } else if (out != OUT_NOT_FOUND) {
                stop = cancel = true; /* set aside (or unusable): the rest goes elsewhere */
            }
            /* Keep the handle (and its buffer) for the slot's next request. */
            b->spare = a->e;
            a->e = NULL;
            attempt_end(m, a);
        }
        hand_state(&hd, &stop, &cancel);
        if (cancel) {
            /* The gateway is set aside once: its other requests are dropped unjudged (each
             * would count a failure and double its backoff). */
            for (unsigned k = 0; k < parallel; k++)
                if (sl[k].busy) {
                    attempt_end(m, &sl[k].at);
                    sl[k].busy = false;
                    inflight--;
                }
            break;
        }
        if (inflight == 0 && (stop || next >= n))
            break;
        /* A slot is free and a block waits for it: fill it now. Waiting first would leave the
         * slot idle until another transfer stirred, and with none left in flight (all ended
         * in one pass, as when the sink held this thread) the whole 100 ms. */
        if (inflight < parallel && !stop && next < n)
            continue;
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (unsigned k = 0; k < parallel; k++) {
        if (sl[k].busy)
            attempt_end(m, &sl[k].at);
        easy_put(g, sl[k].spare);
    }
    multi_put(g, m);
    free(sl);
    if (hd.threaded) {
        pthread_mutex_lock(&hd.lock);
        hd.closed = true;
        pthread_cond_broadcast(&hd.cond);
        pthread_mutex_unlock(&hd.lock);
        pthread_join(hd.thread, NULL);
    }
    pthread_cond_destroy(&hd.cond);
    pthread_mutex_destroy(&hd.lock);
    if (rc == 0 && hd.rc < 0)
        rc = hd.rc;
    /* Counted as blocks asked, as gw_block counts them (one call, one block). */
    size_t given = hd.given > 0 ? (size_t)hd.given : 0;
    pthread_mutex_lock(&g->lock);
    g->calls += asked;
    g->call_ok += given;
    g->call_fail += asked > given ? asked - given : 0;
    pthread_mutex_unlock(&g->lock);
    return rc < 0 ? rc : hd.given;
}

int gw_fetch_many(void *ud, const struct cid *cids, size_t n, unsigned parallel,
                  int (*cb)(void *ud, size_t i, uint8_t *data, size_t len), void *cbud)
{
    return gw_blocks(ud, cids, n, parallel, cb, cbud);
}

/* rpc.c - see rpc.h. */
#include "config.h"

#include "rpc.h"

#include "clock.h"
#include "log.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <linux/sockios.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>

#define RPC_DEFAULT_MAX_BODY (16u << 20)
#define RPC_USER_AGENT "ipfsfs/" PACKAGE_VERSION
/* Curl's own limit is the node's deadline plus this much, so the node normally answers first
 * with its own message ("context deadline exceeded") and we only cut connections that hang. */
#define RPC_GRACE_MS 500u
/* How often a waiting streamed call gives its sink a heartbeat (curl's idle progress calls come
 * about once a second, so that is the real granularity). */
#define RPC_BEAT_MS 250u
#define RPC_DEFAULT_MAX_WAITS 16u
/* curl's receive buffer: for long transfers, and for the others (see rpc_call). */
#define RPC_BIG_BUFFER (256L * 1024)
#define RPC_SMALL_BUFFER (64L * 1024)

/* How long a call's key is remembered after the node's own deadline passed on it (see
 * missed[] in struct rpc), and how many keys are. */
#define RPC_MISS_KEEP_MS 2000u
#define RPC_MISS_SLOTS 16u

struct rpc {
    char *base_url;
    char *unix_path;
    long ipresolve;
    unsigned timeout_ms;
    char *auth_header; /* "Authorization: ..." or NULL; never logged */
    char *cacert;
    char *proxy; /* NULL: none; never from the environment. May carry credentials: never logged */
    unsigned max_waits, max_waits_per_key; /* immutable */

    /* wait_lock protects waits and wait_slots[]: the calls counted against max_waits (see
     * rpc.h), by key; a slot with n == 0 is free. There are max_waits slots, so a call that
     * fits under max_waits always finds one. */
    pthread_mutex_t wait_lock;
    unsigned waits;
    struct wait_slot {
        uint64_t key;
        unsigned n;
    } *wait_slots;
    /* wait_lock also protects missed[] and missed_next: the keys (miss_key: the command and
     * every argument) of calls the node answered,
     * after waiting at least half their deadline, with its own deadline passing ("context
     * deadline exceeded": a live node that looked for the content all that time), until
     * monotonic ms until_ms (see RPC_MISS_KEEP_MS). */
    struct {
        uint64_t key, until_ms;
    } missed[RPC_MISS_SLOTS];
    unsigned missed_next;

    /* pool_lock protects pool[] and npool: idle easy handles ready for reuse, each with its
     * live keep-alive connection. A handle is used by one thread at a time (taken out). */
    pthread_mutex_t pool_lock;
    CURL **pool;
    size_t npool, pool_cap;

    /* Monotonic ms until which the node may be hung ("down mode"), 0: it is not. Set by a
     * call that got no answer at all (not even a status line) within its deadline, and by a
     * liveness check (node_check) that got none. Such a call may just have waited on content
     * the node is still looking for (Kubo sends no status line until it has it), which says
     * nothing of other content, so in down mode each call first checks: a live node answers
     * within milliseconds and the call gets its full deadline; a silent one fails the call
     * after the check (RPC_PROBE_MS). Calls that come while one checks wait for its
     * answer. So one hung node costs a program one --timeout, not one per retry of the
     * kernel, and any answer ends down mode. Stores race benignly: a wrong "down" costs the
     * next call one quick check, a wrong "up" one more --timeout. */
    _Atomic uint64_t down_until;
    /* Monotonic ms by which every call ends, in flight or new (rpc_end_by: an unmount's
     * --unmount-wait); 0: none. */
    _Atomic uint64_t end_at;
    _Atomic uint64_t up_moved_ms; /* rpc_upload_moved_ms */
    /* check_lock protects check_running, check_gen and check_alive: at most one node_check
     * in flight; each one that ends bumps check_gen, sets check_alive (its answer) and
     * broadcasts check_done (a CLOCK_MONOTONIC cond) to the calls waiting for it. */
    pthread_mutex_t check_lock;
    pthread_cond_t check_done;
    bool check_running, check_alive;
    uint64_t check_gen;
    _Atomic uint64_t n_requests, n_errors, n_bytes_in, n_bytes_out, n_waits_refused;
    _Atomic int64_t n_in_flight;
};

/* Per-transfer state, on the caller's stack. */
struct xfer {
    rpc_sink_fn sink;
    void *ud;
    int sink_err;
    bool ok_status;      /* status 200: body goes to the sink; else it is collected as error */
    long status;
    char errbody[RPC_MAX_ERROR_BODY + 1]; /* first bytes of an error body */
    size_t errlen;
    bool is_json;
    char stream_error[1024];
    bool has_stream_error;
    bool status_known;
    CURL *h;
    const struct rpc_upload *upload;
    int upload_err;
    struct rpc *r;
    uint64_t start_ms;
    bool check;        /* node_check's call (see do_call) */
    bool answered;     /* the response's headers are complete */
    uint64_t wait_key;  /* the call's first argument, hashed: what max_waits_per_key counts */
    bool waiting;      /* counted against max_waits (see wait_enter) */
    bool busy;         /* refused: too many calls wait already */
    /* Progress for long transfers (stall_ms): the clock restarts each RPC_PROGRESS_BYTES moved
     * (mark: the bytes moved at that time; an upload's, as the other end took them: see
     * unsent_bytes), and time spent in the sink is added back. */
    unsigned stall_ms;
    curl_off_t mark;
    uint64_t last_move, last_beat;
    bool stalled;
    bool ended;        /* cut at end_at (rpc_end_by) */
    bool bytes;        /* rpc_call_opts.bytes */
    curl_socket_t fd;  /* a long upload's connection (on_sockopt), or CURL_SOCKET_BAD */
};

/* How long a call or a liveness check that got no answer puts the node in down mode (see
 * down_until). */
#define RPC_DOWN_MS 2000u
/* The liveness check's deadline, and the deadline of calls in down mode. "version" answers
 * at once from a live node: it has nothing to look up. */
#define RPC_PROBE_MS 1000u

/* FNV-1a of the call's first argument (for "cat", "ls", "block/stat"...: the CID or path), else
 * of the command. */
static uint64_t call_key(const char *cmd, const struct rpc_arg *args, size_t nargs)
{
    const char *s = nargs > 0 && args[0].value ? args[0].value : cmd;
    uint64_t h = 0xcbf29ce484222325u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* The missed[] key of a call: its command and every argument (a cat of one range says nothing
 * of another; flags are no keys of their own). */
static uint64_t miss_key(const char *cmd, const struct rpc_arg *args, size_t nargs)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const char *s = cmd; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    for (size_t i = 0; i < nargs; i++) {
        const char *parts[] = {"&", args[i].key, "=", args[i].value ? args[i].value : ""};
        for (size_t j = 0; j < 4; j++)
            for (const char *s = parts[j]; s && *s; s++)
                h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    }
    return h;
}

/* Whether a call with key just ended in the node's own deadline (see missed[]). */
static bool missed_lately(struct rpc *r, uint64_t key)
{
    uint64_t now = clock_mono_ms();
    bool hit = false;
    pthread_mutex_lock(&r->wait_lock);
    for (unsigned i = 0; i < RPC_MISS_SLOTS && !hit; i++)
        hit = r->missed[i].until_ms > now && r->missed[i].key == key;
    pthread_mutex_unlock(&r->wait_lock);
    return hit;
}

static void note_missed(struct rpc *r, uint64_t key)
{
    pthread_mutex_lock(&r->wait_lock);
    unsigned slot = r->missed_next;
    for (unsigned i = 0; i < RPC_MISS_SLOTS; i++)
        if (r->missed[i].key == key && r->missed[i].until_ms) {
            slot = i; /* renewed in place */
            break;
        }
    if (slot == r->missed_next)
        r->missed_next = (r->missed_next + 1) % RPC_MISS_SLOTS;
    r->missed[slot].key = key;
    r->missed[slot].until_ms = clock_mono_ms() + RPC_MISS_KEEP_MS;
    pthread_mutex_unlock(&r->wait_lock);
}

/* Count a call that waits on the node; -EAGAIN when max_waits (or max_waits_per_key for its
 * key) are waiting already. */
static int wait_enter(struct rpc *r, uint64_t key)
{
    struct wait_slot *free_slot = NULL, *slot = NULL;
    int rc = -EAGAIN;

    pthread_mutex_lock(&r->wait_lock);
    if (r->waits >= r->max_waits)
        goto out;
    for (unsigned i = 0; i < r->max_waits; i++) {
        if (r->wait_slots[i].n && r->wait_slots[i].key == key)
            slot = &r->wait_slots[i];
        else if (!r->wait_slots[i].n && !free_slot)
            free_slot = &r->wait_slots[i];
    }
    if (slot && slot->n >= r->max_waits_per_key)
        goto out;
    if (!slot) {
        slot = free_slot; /* there is one: fewer than max_waits calls hold slots */
        slot->key = key;
    }
    slot->n++;
    r->waits++;
    rc = 0;
out:
    pthread_mutex_unlock(&r->wait_lock);
    if (rc < 0)
        atomic_fetch_add(&r->n_waits_refused, 1);
    return rc;
}

static void wait_leave(struct rpc *r, uint64_t key)
{
    pthread_mutex_lock(&r->wait_lock);
    for (unsigned i = 0; i < r->max_waits; i++) {
        if (r->wait_slots[i].n && r->wait_slots[i].key == key) {
            r->wait_slots[i].n--;
            r->waits--;
            break;
        }
    }
    pthread_mutex_unlock(&r->wait_lock);
}

/* Hand bytes (or a heartbeat: len 0) to the sink; the time it takes is not the node's. */
static int call_sink(struct xfer *x, const char *data, size_t len)
{
    uint64_t t0 = x->stall_ms ? clock_mono_ms() : 0;
    int rc = x->sink(x->ud, data, len);

    if (x->stall_ms)
        x->last_move += clock_mono_ms() - t0;
    return rc;
}

/* Called by curl during the transfer (about once a second when nothing moves). Counts a call
 * that waits on the node against max_waits, and bounds streamed calls (stall_ms): curl's
 * low-speed limit averages over its window and overshoots by seconds, and a byte now and then
 * would satisfy it for ever. */
/* Bytes handed to the transfer's socket that the other end has not taken yet (SIOCOUTQ), or 0
 * if that cannot be told. An upload's last bytes are handed over long before they reach the
 * node on a slow link or through a proxy (the kernel's send queue holds several MiB), and the
 * node answers only after them: counted as moved when the other end takes them, not when curl
 * writes them, a push draining at 500 KB/s is progress, not a stall. */
static curl_off_t unsent_bytes(const struct xfer *x)
{
    int n = 0;
    if (x->fd == CURL_SOCKET_BAD || ioctl(x->fd, SIOCOUTQ, &n) < 0 || n < 0)
        return 0;
    return n;
}

/* The socket of an upload's own connection (see do_call): curl tells it only after the
 * transfer (CURLINFO_ACTIVESOCKET), so it is taken when curl makes it. */
static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    struct xfer *x = ud;
    (void)purpose;
    x->fd = fd;
    return CURL_SOCKOPT_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct xfer *x = ud;
    uint64_t now = clock_mono_ms();
    (void)dltotal;
    (void)ultotal;

    uint64_t end = atomic_load(&x->r->end_at);
    if (end && now >= end) {
        x->ended = true;
        return 1;
    }

    /* An upload waits for its own bytes to go first: only calls without one count. Nor
     * does the liveness check: it ends within RPC_PROBE_MS anyway, and a refusal would read
     * as an answer. */
    if (!x->answered && !x->waiting && !x->upload && !x->check &&
        now - x->start_ms >= RPC_WAIT_MS) {
        if (wait_enter(x->r, x->wait_key) < 0) {
            x->busy = true;
            return 1; /* abort: CURLE_ABORTED_BY_CALLBACK */
        }
        x->waiting = true;
    }
    if (!x->stall_ms)
        return 0;
    curl_off_t moved = dlnow + ulnow;
    if (x->upload && ulnow > 0) {
        curl_off_t q = unsent_bytes(x);
        moved -= q < ulnow ? q : ulnow;
    }
    if (moved - x->mark >= (curl_off_t)RPC_PROGRESS_BYTES) {
        x->mark = moved;
        x->last_move = now;
        if (x->upload)
            atomic_store(&x->r->up_moved_ms, now);
    } else if (now > x->last_move && now - x->last_move > x->stall_ms) {
        x->stalled = true;
        return 1;
    }
    if ((!x->status_known || x->ok_status) && now - x->last_beat >= RPC_BEAT_MS) {
        x->last_beat = now;
        int rc = call_sink(x, "", 0);
        if (rc < 0) {
            x->sink_err = rc;
            return 1;
        }
    }
    return 0;
}

int rpc_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void rpc_global_cleanup(void)
{
    curl_global_cleanup();
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

char *rpc_auth_header(const char *secret)
{
    char *hdr = NULL;
    if (strncasecmp(secret, "basic:", 6) == 0) {
        const char *v = secret + 6;
        if (strchr(v, ':')) {
            char *b64 = base64_encode(v, strlen(v));
            if (!b64)
                return NULL;
            if (asprintf(&hdr, "Authorization: Basic %s", b64) < 0)
                hdr = NULL;
            explicit_bzero(b64, strlen(b64)); /* the password, barely disguised */
            free(b64);
        } else if (asprintf(&hdr, "Authorization: Basic %s", v) < 0) {
            hdr = NULL;
        }
    } else {
        const char *v = strncasecmp(secret, "bearer:", 7) == 0 ? secret + 7 : secret;
        if (asprintf(&hdr, "Authorization: Bearer %s", v) < 0)
            hdr = NULL;
    }
    return hdr;
}

int rpc_new(const struct rpc_config *cfg, struct rpc **out)
{
    struct rpc *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->base_url = strdup(cfg->endpoint->base_url);
    r->unix_path = cfg->endpoint->unix_path ? strdup(cfg->endpoint->unix_path) : NULL;
    r->ipresolve = cfg->endpoint->ip_family == 4   ? CURL_IPRESOLVE_V4
                   : cfg->endpoint->ip_family == 6 ? CURL_IPRESOLVE_V6
                                                   : CURL_IPRESOLVE_WHATEVER;
    r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    r->auth_header = cfg->auth ? rpc_auth_header(cfg->auth) : NULL;
    r->cacert = cfg->cacert ? strdup(cfg->cacert) : NULL;
    r->proxy = cfg->proxy ? strdup(cfg->proxy) : NULL;
    r->pool_cap = cfg->pool_size ? cfg->pool_size : 16;
    r->pool = calloc(r->pool_cap, sizeof *r->pool);
    r->max_waits = cfg->max_waits ? cfg->max_waits : RPC_DEFAULT_MAX_WAITS;
    r->max_waits_per_key = cfg->max_waits_per_key ? cfg->max_waits_per_key : r->max_waits / 4;
    if (r->max_waits_per_key < 1)
        r->max_waits_per_key = 1;
    if (r->max_waits_per_key > r->max_waits)
        r->max_waits_per_key = r->max_waits;
    r->wait_slots = calloc(r->max_waits, sizeof *r->wait_slots);
    if (!r->base_url || (cfg->endpoint->unix_path && !r->unix_path) || (cfg->auth && !r->auth_header) ||
        (cfg->cacert && !r->cacert) || (cfg->proxy && !r->proxy) || !r->pool || !r->wait_slots) {
        rpc_free(r);
        return -ENOMEM;
    }
    pthread_mutex_init(&r->pool_lock, NULL);
    pthread_mutex_init(&r->wait_lock, NULL);
    pthread_mutex_init(&r->check_lock, NULL);
    (void)cond_init_monotonic(&r->check_done); /* node_check's waits */
    if (cfg->auth && !cfg->allow_plain_auth && !api_endpoint_private(cfg->endpoint)) {
        /* Anyone on the path could read the secret, and use it. */
        log_err("refusing to send the API secret over plain http to %s, which is not a loopback "
                "address: use https (/tls/http or /https in the multiaddr), or allow it with "
                "--api-auth-insecure",
                r->base_url);
        rpc_free(r);
        return -EPERM;
    }
    if (cfg->auth && !api_endpoint_private(cfg->endpoint))
        log_warn("the API secret goes over plain http to %s: anyone on the way can read it",
                 r->base_url);
    *out = r;
    return 0;
}

void rpc_free(struct rpc *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->npool; i++)
        curl_easy_cleanup(r->pool[i]);
    free(r->pool);
    if (r->auth_header) {
        /* The secret should not linger in freed memory. */
        explicit_bzero(r->auth_header, strlen(r->auth_header));
        free(r->auth_header);
    }
    free(r->base_url);
    free(r->unix_path);
    free(r->cacert);
    if (r->proxy) {
        explicit_bzero(r->proxy, strlen(r->proxy)); /* it may hold a password */
        free(r->proxy);
    }
    if (r->pool && r->wait_slots) {
        pthread_mutex_destroy(&r->pool_lock);
        pthread_mutex_destroy(&r->wait_lock);
        pthread_mutex_destroy(&r->check_lock);
        pthread_cond_destroy(&r->check_done);
    }
    free(r->wait_slots);
    free(r);
}

static CURL *handle_get(struct rpc *r)
{
    CURL *h = NULL;
    pthread_mutex_lock(&r->pool_lock);
    if (r->npool > 0)
        h = r->pool[--r->npool];
    pthread_mutex_unlock(&r->pool_lock);
    if (!h)
        h = curl_easy_init();
    return h;
}

static void handle_put(struct rpc *r, CURL *h, bool reusable)
{
    if (reusable) {
        pthread_mutex_lock(&r->pool_lock);
        if (r->npool < r->pool_cap) {
            r->pool[r->npool++] = h;
            h = NULL;
        }
        pthread_mutex_unlock(&r->pool_lock);
    }
    if (h)
        curl_easy_cleanup(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    atomic_fetch_add(&x->r->n_bytes_in, n);
    if (!x->status_known) {
        /* Headers are complete once the body starts: only a 200 body is content. */
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
        x->ok_status = x->status == 200;
        x->status_known = true;
    }
    if (x->ok_status && x->bytes && x->is_json) {
        x->sink_err = -EPROTO;
        return 0; /* not the content's bytes: aborts the transfer */
    }
    if (x->ok_status) {
        /* A sink may wait (a streaming prefetch waits for its reader to catch up): that time
         * is ours, not the node's, and call_sink does not count it. */
        int rc = call_sink(x, ptr, n);
        if (rc < 0) {
            x->sink_err = rc;
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        }
        return n;
    }
    /* An error body: its first RPC_MAX_ERROR_BODY bytes are the message; a longer (or endless)
     * one is cut there, so it costs neither memory nor time. */
    size_t room = RPC_MAX_ERROR_BODY - x->errlen;
    size_t take = n < room ? n : room;
    memcpy(x->errbody + x->errlen, ptr, take);
    x->errlen += take;
    x->errbody[x->errlen] = '\0';
    return x->errlen < RPC_MAX_ERROR_BODY ? n : 0;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i]))
        i++;
    if (i)
        memmove(s, s + i, n - i + 1);
}

/* Headers, and (after the body) the chunked trailers, where a late stream error arrives. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (e.g. after 100 Continue): reset per-response state. */
        x->is_json = false;
        return n;
    }
    if (!x->answered && (n <= 2 && (buf[0] == '\r' || buf[0] == '\n'))) {
        /* The end of a response's headers: the node answered (a 1xx is no answer). */
        long status = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200) {
            x->answered = true;
            if (x->waiting) {
                wait_leave(x->r, x->wait_key);
                x->waiting = false;
            }
        }
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon)
        return n;
    size_t klen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
    if (klen == 12 && strncasecmp(buf, "Content-Type", 12) == 0) {
        char ct[128];
        size_t c = vlen < sizeof ct - 1 ? vlen : sizeof ct - 1;
        memcpy(ct, v, c);
        ct[c] = '\0';
        trim(ct);
        x->is_json = strncasecmp(ct, "application/json", 16) == 0;
    } else if (klen == 14 && strncasecmp(buf, "X-Stream-Error", 14) == 0) {
        size_t c = vlen < sizeof x->stream_error - 1 ? vlen : sizeof x->stream_error - 1;
        memcpy(x->stream_error, v, c);
        x->stream_error[c] = '\0';
        trim(x->stream_error);
        if (x->stream_error[0])
            x->has_stream_error = true;
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    ssize_t n = x->upload->source(x->upload->ud, buf, size * nitems);
    if (n < 0) {
        x->upload_err = (int)n;
        return CURL_READFUNC_ABORT;
    }
    atomic_fetch_add(&x->r->n_bytes_out, (uint64_t)n);
    return (size_t)n;
}

static int build_url(struct rpc *r, CURL *h, const char *cmd, const struct rpc_arg *args,
                     size_t nargs, unsigned node_timeout_ms, char **out)
{
    size_t cap = strlen(r->base_url) + strlen(cmd) + 64;
    char **esc = calloc(nargs ? nargs : 1, sizeof *esc);
    if (!esc)
        return -ENOMEM;
    int rc = -ENOMEM;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].value) {
            esc[i] = curl_easy_escape(h, args[i].value, (int)strlen(args[i].value));
            if (!esc[i])
                goto out;
        }
        cap += strlen(args[i].key) + (esc[i] ? strlen(esc[i]) : 4) + 2;
    }
    char *url = malloc(cap);
    if (!url)
        goto out;
    size_t o = (size_t)snprintf(url, cap, "%s/api/v0/%s", r->base_url, cmd);
    char sep = '?';
    for (size_t i = 0; i < nargs; i++) {
        o += (size_t)snprintf(url + o, cap - o, "%c%s=%s", sep, args[i].key,
                              esc[i] ? esc[i] : "true");
        sep = '&';
    }
    if (node_timeout_ms)
        snprintf(url + o, cap - o, "%ctimeout=%ums", sep, node_timeout_ms);
    *out = url;
    rc = 0;
out:
    for (size_t i = 0; i < nargs; i++)
        curl_free(esc[i]);
    free(esc);
    return rc;
}

int rpc_classify_error(const char *msg)
{
    static const struct {
        const char *needle;
        int err;
    } table[] = {
        {"context deadline exceeded", -ETIMEDOUT},
        /* An offline Kubo lacks the block ("block was not found locally (offline)"): the
         * content is unreachable, as when an online node does not find it in time. Not
         * ENOENT: the CID may well exist, and the kernel caches ENOENT inside directories. */
        {"not found locally", -ETIMEDOUT},
        /* The same, for a file whose root it has but not every leaf (cat on an offline Kubo,
         * as its answer or its X-Stream-Error trailer). */
        {"failed to fetch all nodes", -ETIMEDOUT},
        {"request timed out", -ETIMEDOUT},
        {"timed out", -ETIMEDOUT},
        {"no link named", -ENOENT},
        {"file does not exist", -ENOENT},
        {"does not exist", -ENOENT},
        {"not found", -ENOENT},
        {"no such file", -ENOENT},
        {"is a directory", -EISDIR},
        {"not a directory", -ENOTDIR},
        {"already has entry by that name", -EEXIST},
        {"file already exists", -EEXIST},
        {"directory not empty", -ENOTEMPTY},
        {"no space left", -ENOSPC},
        {"invalid path", -EINVAL},
        {"invalid cid", -EINVAL},
    };
    if (!msg)
        return -EIO;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasestr(msg, table[i].needle))
            return table[i].err;
    return -EIO;
}

void rpc_error_message(const char *body, size_t len, bool is_json, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (is_json || (len > 0 && body[0] == '{')) {
        json_error_t jerr;
        json_t *j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr);
        if (j) {
            const char *m = json_string_value(json_object_get(j, "Message"));
            if (!m)
                m = json_string_value(json_object_get(j, "message"));
            if (!m)
                m = json_string_value(json_object_get(j, "error"));
            if (m) {
                /* The node's words go to logs and errors: keep them printable, one line. */
                snprintf(out, outlen, "%s", m);
                for (char *p = out; *p; p++)
                    if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
            }
            json_decref(j);
            if (m)
                return;
        }
    }
    size_t n = len < outlen - 1 ? len : outlen - 1;
    /* Keep it printable: the body may be anything. */
    for (size_t i = 0; i < n; i++)
        out[i] = isprint((unsigned char)body[i]) ? body[i] : ' ';
    out[n] = '\0';
    trim(out);
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen,
                                                        const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}

static bool node_check(struct rpc *r);

/* One call (see rpc_call). With check, it is node_check's: a total deadline of RPC_PROBE_MS
 * (no grace: the node is not told a deadline of its own to answer by), no down mode either
 * way (no check of its own: no recursion), not counted against max_waits. It is a request
 * to the node like any other for the stats: requests and, unanswered, errors count what went
 * over the wire. *status gets the HTTP status (0: no answer at all). */
static int do_call(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
                   const struct rpc_call_opts *opts, bool check, rpc_sink_fn sink, void *ud,
                   char *err, size_t errlen, long *status)
{
    static const struct rpc_call_opts defaults;
    if (!opts)
        opts = &defaults;
    if (err && errlen)
        err[0] = '\0';
    *status = 0;
    unsigned timeout = opts->timeout_ms ? opts->timeout_ms : r->timeout_ms;
    unsigned spent = 0; /* on the check: taken off this call's bounds */
    uint64_t key = call_key(cmd, args, nargs), mkey = miss_key(cmd, args, nargs);
    uint64_t end = atomic_load(&r->end_at), now = clock_mono_ms();
    if (end && now >= end) {
        set_err(err, errlen, "not asked: the unmount stopped waiting for the node "
                "(--unmount-wait, or a second signal)");
        return -ETIMEDOUT;
    }
    if (end && end - now < timeout)
        timeout = (unsigned)(end - now);
    if (!check && missed_lately(r, mkey)) {
        set_err(err, errlen, "the node looked for it for the whole timeout moments ago and did "
                "not find it (asked again after %u ms)", RPC_MISS_KEEP_MS);
        return -ETIMEDOUT;
    }
    if (check) {
        timeout = RPC_PROBE_MS;
    } else if (clock_mono_ms() < atomic_load(&r->down_until)) {
        /* Down mode: ask first whether the node answers at all (a live one answers within
         * milliseconds, and this call then gets what is left of its deadline). */
        uint64_t t0 = clock_mono_ms();
        if (!node_check(r)) {
            set_err(err, errlen, "the node does not answer (not even \"version\" within %u ms)",
                    RPC_PROBE_MS);
            return -ETIMEDOUT;
        }
        spent = (unsigned)(clock_mono_ms() - t0);
        timeout = timeout > spent ? timeout - spent : 1;
    }
    CURL *h = handle_get(r);
    if (!h)
        return -ENOMEM;
    char *url = NULL;
    struct curl_slist *hdrs = NULL;
    struct xfer x = {.sink = sink,
                     .ud = ud,
                     .r = r,
                     .upload = opts->upload,
                     .h = h,
                     .check = check,
                     .start_ms = clock_mono_ms(),
                     .wait_key = key,
                     .fd = CURL_SOCKET_BAD,
                     .bytes = opts->bytes};
    /* Long transfers are bounded by stalls, not by a total time: the node's own deadline
     * would cut them, so it is not sent then. */
    int rc = build_url(r, h, cmd, args, nargs,
                       check || opts->no_node_timeout || opts->stall_ms ? 0 : timeout, &url);
    if (rc < 0) {
        handle_put(r, h, false);
        return rc;
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, RPC_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_IPRESOLVE, r->ipresolve);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    /* Larger reads from the socket: a 256 MiB cat took ~33,000 poll+recv calls at 16 KiB.
     * curl allocates this buffer for every transfer: long ones (streamed reads, uploads) get
     * 256 KiB; the others stay below glibc's mmap threshold (128 KiB, main.c), or each call
     * would map and unmap fresh pages (measured: one mmap + munmap per 4 KiB random read). */
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, opts->stall_ms ? RPC_BIG_BUFFER : RPC_SMALL_BUFFER);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout < 10000 ? timeout : 10000));
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
    if (opts->stall_ms) {
        x.stall_ms = opts->stall_ms > spent ? opts->stall_ms - spent : 1;
        x.last_move = x.last_beat = x.start_ms;
        if (opts->upload) {
            /* A connection of its own, whose socket on_sockopt sees made: its send queue
             * tells what the other end took (unsent_bytes). One connect per push. */
            curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
            curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
            curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, &x);
        }
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout + (check ? 0 : RPC_GRACE_MS)));
    }
    /* Never a proxy from the environment (http_proxy, ALL_PROXY...): it would see the
     * Authorization header and every CID read. "" turns curl's own lookup off. */
    curl_easy_setopt(h, CURLOPT_PROXY, r->proxy ? r->proxy : "");
    if (!r->proxy)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (r->unix_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, r->unix_path);
    if (r->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->cacert);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    /* No "Expect: 100-continue" round trip on uploads. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (r->auth_header)
        hdrs = curl_slist_append(hdrs, r->auth_header);
    if (opts->upload) {
        char ct[256];
        snprintf(ct, sizeof ct, "Content-Type: %s", opts->upload->content_type);
        hdrs = curl_slist_append(hdrs, ct);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &x);
        if (opts->upload->length >= 0)
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)opts->upload->length);
        else
            hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (!hdrs) {
        rc = -ENOMEM;
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    atomic_fetch_add(&r->n_requests, 1);
    atomic_fetch_add(&r->n_in_flight, 1);
    CURLcode cc = curl_easy_perform(h);
    atomic_fetch_sub(&r->n_in_flight, 1);
    if (x.waiting)
        wait_leave(r, x.wait_key);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x.status);
    *status = x.status;
    if (x.status != 0 && !check && atomic_load(&r->down_until) != 0)
        atomic_store(&r->down_until, 0); /* it answers again: full deadlines */

    if (cc != CURLE_OK && x.sink_err < 0) {
        rc = x.sink_err;
        if (rc == -EMSGSIZE) {
            /* An answer past its bound (an endless body, a block larger than any): not a
             * valid reply, which programs see as EIO (man page, ERRORS). */
            rc = -EIO;
            set_err(err, errlen, "answer longer than any valid one: refused");
        } else if (rc == -EPROTO) {
            rc = -EIO;
            set_err(err, errlen, "answered JSON where the content's bytes were asked for");
        } else {
            set_err(err, errlen, "aborted by reader");
        }
        goto out;
    }
    if (cc != CURLE_OK && x.upload_err < 0) {
        rc = x.upload_err;
        set_err(err, errlen, "upload source failed");
        goto out;
    }
    if (x.busy) {
        rc = -EAGAIN;
        set_err(err, errlen, "%u requests are waiting on the node already (%u for this one): not "
                "waiting for another", r->max_waits, r->max_waits_per_key);
        goto out;
    }
    if (x.ended) {
        rc = -ETIMEDOUT;
        set_err(err, errlen, "cut: the unmount stopped waiting for the node (--unmount-wait, "
                "or a second signal)");
        goto out;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT || x.stalled) {
        rc = -ETIMEDOUT;
        /* No answer at all: the node may be hung, or still looking for this content (a
         * trickle answers, slowly). The next call's check tells them apart (this one is
         * over: checking now would only make it later). */
        if (x.status == 0 && !check)
            atomic_store(&r->down_until, clock_mono_ms() + RPC_DOWN_MS);
        if (x.stalled)
            set_err(err, errlen, "the node sent less than %u KiB in %u ms", RPC_PROGRESS_BYTES >> 10,
                    x.stall_ms);
        else
            set_err(err, errlen, "no answer from the node within the timeout (%s)",
                    curl_easy_strerror(cc));
        goto out;
    }
    if (cc != CURLE_OK && x.status == 0) {
        rc = -EIO;
        set_err(err, errlen, "cannot reach the node: %s", curl_easy_strerror(cc));
        goto out;
    }
    if (x.status != 200) {
        char msg[1024];
        rpc_error_message(x.errbody, x.errlen, x.is_json, msg, sizeof msg);
        rc = rpc_classify_error(msg);
        if (x.status == 401 || x.status == 403)
            rc = -EACCES;
        else if (x.status == 404 && !x.is_json && rc == -ENOENT)
            rc = -EOPNOTSUPP; /* "404 page not found": unknown command */
        set_err(err, errlen, "node answered HTTP %ld: %s", x.status,
                msg[0] ? msg : "(no message)");
        /* A live node looked for it until its deadline: the calls queued behind this one for
         * the same content (the kernel runs the lookups of one name one at a time) fail at
         * once instead of one --timeout each. Not after a quick "not found locally": that
         * content may be added any moment. */
        if (rc == -ETIMEDOUT && !check && strcasestr(msg, "deadline exceeded") &&
            clock_mono_ms() - x.start_ms >= timeout / 2)
            note_missed(r, mkey);
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = -EIO;
        set_err(err, errlen, "transfer failed: %s", curl_easy_strerror(cc));
        goto out;
    }
    if (x.has_stream_error) {
        char msg[1024];
        rpc_error_message(x.stream_error, strlen(x.stream_error), x.stream_error[0] == '{', msg,
                          sizeof msg);
        rc = rpc_classify_error(msg);
        set_err(err, errlen, "node reported an error after starting the answer: %s", msg);
        goto out;
    }
    rc = 0;
out:
    /* A sink that cancels (a reader that no longer needs the rest) is no error of the node. */
    if (rc < 0 && !(rc == -ECANCELED && x.sink_err == -ECANCELED))
        atomic_fetch_add(&r->n_errors, 1);
    curl_slist_free_all(hdrs);
    free(url);
    /* A handle whose transfer was cut may hold a half-read connection; curl closes those
     * itself, so the handle stays reusable. */
    handle_put(r, h, true);
    return rc;
}

static int discard_sink(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    return 0;
}

/* Whether the node answers at all: POST version, within RPC_PROBE_MS, the same way as every
 * call (endpoint, unix socket, proxy, auth header). Any answer (even 401 or 500) is a live
 * node: down mode ends. No answer in time: down mode for RPC_DOWN_MS. A failure to connect
 * is no hang (calls fail at once then, with EIO): down mode ends too. Returns true when the
 * node answered (or is not hung), false when it did not. One check at a time: a call that
 * finds one running waits for its answer (a little over RPC_PROBE_MS at most: else false). */
static bool node_check(struct rpc *r)
{
    pthread_mutex_lock(&r->check_lock);
    if (r->check_running) {
        uint64_t gen = r->check_gen;
        struct timespec until = clock_mono_after(RPC_PROBE_MS + RPC_GRACE_MS);
        int e = 0;
        while (r->check_gen == gen && e != ETIMEDOUT)
            e = pthread_cond_timedwait(&r->check_done, &r->check_lock, &until);
        bool alive = r->check_gen != gen && r->check_alive;
        pthread_mutex_unlock(&r->check_lock);
        return alive;
    }
    r->check_running = true;
    pthread_mutex_unlock(&r->check_lock);
    long status = 0;
    char err[256];
    int rc = do_call(r, "version", NULL, 0, NULL, true, discard_sink, NULL, err, sizeof err,
                     &status);
    bool hung = rc == -ETIMEDOUT && status == 0;
    atomic_store(&r->down_until, hung ? clock_mono_ms() + RPC_DOWN_MS : 0);
    pthread_mutex_lock(&r->check_lock);
    r->check_running = false;
    r->check_alive = !hung;
    r->check_gen++;
    pthread_cond_broadcast(&r->check_done);
    pthread_mutex_unlock(&r->check_lock);
    if (hung)
        log_debug("rpc: the node answers nothing, not even version (%s): taken as hung for "
                  "%u ms", err, RPC_DOWN_MS);
    return !hung;
}

uint64_t rpc_upload_moved_ms(struct rpc *r)
{
    return atomic_load(&r->up_moved_ms);
}

void rpc_end_by(struct rpc *r, uint64_t mono_ms)
{
    atomic_store(&r->end_at, mono_ms ? mono_ms : 1);
}

int rpc_call(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
             const struct rpc_call_opts *opts, rpc_sink_fn sink, void *ud, char *err,
             size_t errlen)
{
    long status;
    return do_call(r, cmd, args, nargs, opts, false, sink, ud, err, errlen, &status);
}

static int buf_sink(void *ud, const char *data, size_t len)
{
    struct rpc_buf *b = ud;
    if (len == 0)
        return 0; /* a heartbeat */
    size_t max = b->max ? b->max : RPC_DEFAULT_MAX_BODY;
    if (b->len + len > max)
        return -EMSGSIZE;
    char *p = realloc(b->data, b->len + len + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p + b->len, data, len);
    b->data = p;
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int rpc_call_buf(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
                 const struct rpc_call_opts *opts, struct rpc_buf *buf, char *err, size_t errlen)
{
    buf->data = NULL;
    buf->len = 0;
    int rc = rpc_call(r, cmd, args, nargs, opts, buf_sink, buf, err, errlen);
    if (rc == 0 && !buf->data) {
        buf->data = strdup("");
        if (!buf->data)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        free(buf->data);
        buf->data = NULL;
        buf->len = 0;
    }
    return rc;
}

void rpc_get_stats(struct rpc *r, struct rpc_stats *out)
{
    out->requests = atomic_load(&r->n_requests);
    out->errors = atomic_load(&r->n_errors);
    out->bytes_in = atomic_load(&r->n_bytes_in);
    out->bytes_out = atomic_load(&r->n_bytes_out);
    out->in_flight = atomic_load(&r->n_in_flight);
    pthread_mutex_lock(&r->wait_lock);
    out->waiting = r->waits;
    pthread_mutex_unlock(&r->wait_lock);
    out->waits_refused = atomic_load(&r->n_waits_refused);
}

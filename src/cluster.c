/* cluster.c - see cluster.h.
 *
 * Each request is one short libcurl call with its own easy handle: pins happen once per push and
 * status questions once per getxattr or fsync, so there is nothing to pool. Calls come from the
 * sync engine's thread (pin, tick) and from FUSE threads (status, wait) at once.
 */
#include "config.h"

#include "cluster.h"

#include "clock.h"
#include "log.h"
#include "multiaddr.h"
#include "rpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define OWED_MAX 256u              /* unpins kept to try again; past that the oldest is left */
#define OWED_RETRY_MIN_MS 5000u    /* the first retry of a failed unpin, doubling ... */
#define OWED_RETRY_MAX_MS 300000u  /* ... up to this */
#define OWED_BATCH 8u              /* unpins tried per tick */
#define MAX_REPLY (4u << 20) /* a status names every peer: 4 MiB is thousands of them */
#define WAIT_STEP_MS 250u
#define STATUS_MAX_MS 5000u /* a status question (getxattr) waits at most this long */
#define WAIT_OWN_MAX 64u     /* the folders' own pins cluster_wait waits for, at most */
#define STATUS_KEEP_MS 1000u /* and its answer is kept this long (see st_cid) */
#define USER_AGENT "ipfsfs/" PACKAGE_VERSION

struct cluster {
    char *url;     /* without a trailing slash; may hold user:password: never logged */
    char *display; /* url without the credentials */
    char *auth_header; /* "Authorization: ..." (cluster_config.auth) or NULL: never logged */
    bool has_creds;    /* auth_header, or user:password@ in url */
    int rmin, rmax;
    unsigned timeout_ms;
    char *pin_base;   /* the pins' name: the root's; a top name's is "BASE/NAME" */
    char *state_path; /* NULL: none */

    /* lock guards everything below. Only the pinning thread (the sync engine's) changes them,
     * under the lock; others read under it. */
    pthread_mutex_t lock;
    bool have_root;
    struct cid root;     /* the names' root pinned last */
    bool have_retired;
    struct cid retired;  /* the root before it, unpinned once root is pinned widely enough */
    struct top {
        char *name;     /* "tree", or "a/b" for a folder with factors of its own */
        struct cid cid;
        int rmin, rmax; /* its factors (0: the mount's) */
    } *tops;             /* the names pinned on their own, sorted by name */
    size_t ntops;
    struct owed {
        struct cid cid;
        char *name; /* its pin's top name, NULL: a root */
    } *owed;        /* unpins that failed, tried again from cluster_tick, oldest first */
    size_t nowed;
    uint64_t owed_next_ms;    /* no retry before this (monotonic ms) */
    unsigned owed_backoff_ms; /* the wait after the last failed retry (0: none failed) */
    uint64_t pins, unpins, failures;
    /* One line (cluster_one_line): a cluster's error text may hold line breaks, which would
     * split user.ipfs.pins and the "cluster_error" line of the stats. */
    char last_error[512];
    bool failing; /* the last pin, or a name of the last round, failed (last_error) */
    /* The last status asked (cluster_status), its answer kept STATUS_KEEP_MS: getfattr asks
     * twice (the size, then the value), and a cluster API that does not answer must cost it
     * one wait, not two. Any thread writes these, under the lock. */
    struct cid st_cid;
    uint64_t st_at; /* monotonic ms; 0: none */
    int st_rc;
    struct cluster_status st_last;
    char st_err[256];
};

/* ---- HTTP ---- */

struct reply {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t k = size * n;
    if (r->len + k > MAX_REPLY) {
        r->too_big = true;
        return 0;
    }
    char *d = realloc(r->data, r->len + k + 1);
    if (!d)
        return 0;
    memcpy(d + r->len, p, k);
    r->len += k;
    d[r->len] = 0;
    r->data = d;
    return k;
}

struct probe {
    bool cluster;
};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct probe *pr = ud;
    size_t k = size * n;
    static const char h[] = "server: ipfs-cluster";
    if (k >= sizeof h - 1 && strncasecmp(p, h, sizeof h - 1) == 0)
        pr->cluster = true;
    return k;
}

/* method url, with the header line auth (NULL: none): 0 with the body in *out (the caller
 * frees out->data) and the status in *status, or -errno with a reason in err. */
static int http(const char *method, const char *url, const char *auth, unsigned timeout_ms,
                struct probe *pr, struct reply *out, long *status, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = auth ? curl_slist_append(NULL, auth) : NULL;
    if (!h || (auth && !hdrs)) {
        curl_easy_cleanup(h);
        curl_slist_free_all(hdrs);
        return -ENOMEM;
    }
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never the environment's */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (pr) {
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, pr);
    }
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (cc == CURLE_OK)
        return 0;
    int rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
             : out->too_big                  ? -EFBIG
             : cc == CURLE_COULDNT_CONNECT   ? -ECONNREFUSED
                                             : -EIO;
    snprintf(err, errlen, "the cluster's API: %s",
             out->too_big ? "reply too large" : curl_easy_strerror(cc));
    free(out->data);
    out->data = NULL;
    return rc;
}

/* The message of the cluster's error body ({"code":N,"message":"..."}), or NULL; it lives in
 * *j (json_decref it). */
static const char *reply_message(const struct reply *r, json_t **j)
{
    *j = r->data ? json_loadb(r->data, r->len, 0, NULL) : NULL;
    return *j ? json_string_value(json_object_get(*j, "message")) : NULL;
}

/* The cluster's error message, else the start of the body. */
static void reply_error(const struct reply *r, long status, const char *what, char *err,
                        size_t errlen)
{
    json_t *j;
    const char *m = reply_message(r, &j);
    snprintf(err, errlen, "the cluster refused %s (HTTP %ld): %.*s", what, status,
             m ? 150 : (int)(r->len < 150 ? r->len : 150), m ? m : r->data ? r->data : "");
    json_decref(j);
}

/* A 401 or 403: the credentials, or their absence, are the problem, not the request. */
static void auth_error(const struct cluster *c, const struct reply *r, long status, char *err,
                       size_t errlen)
{
    json_t *j;
    const char *m = reply_message(r, &j);
    if (c->has_creds)
        snprintf(err, errlen, "the cluster at %s refused the credentials given (HTTP %ld%s%.100s)",
                 c->display, status, m ? ": " : "", m ? m : "");
    else
        snprintf(err, errlen, "the cluster at %s wants credentials (HTTP %ld) and none were "
                 "given: --cluster-auth-file=FILE or IPFSFS_CLUSTER_AUTH", c->display, status);
    json_decref(j);
}

/* method on /pins/CID?query: 0 (2xx, with the parsed body in *j if j), -ENOENT (404), or
 * -errno with err. */
static int call(struct cluster *c, const char *method, const char *path, const struct cid *cid,
                const char *query, json_t **j, char *err, size_t errlen)
{
    char s[CID_STR_MAX], url[2048];
    if (cid_format(cid, s, sizeof s) < 0)
        return -EINVAL;
    snprintf(url, sizeof url, "%s/%s/%s%s%s", c->url, path, s, query && *query ? "?" : "",
             query ? query : "");
    struct reply r;
    long status = 0;
    int rc = http(method, url, c->auth_header, c->timeout_ms, NULL, &r, &status, err, errlen);
    if (rc < 0)
        return rc;
    if (status == 404) {
        rc = -ENOENT;
        reply_error(&r, status, path, err, errlen);
    } else if (status == 401 || status == 403) {
        rc = -EACCES;
        auth_error(c, &r, status, err, errlen);
    } else if (status < 200 || status > 299) {
        rc = status >= 500 ? -EIO : -EINVAL;
        char what[CID_STR_MAX + 64];
        snprintf(what, sizeof what, "%s /%s/%s", method, path, s);
        reply_error(&r, status, what, err, errlen);
    } else if (j) {
        *j = r.data ? json_loadb(r.data, r.len, 0, NULL) : NULL;
        if (!*j) {
            snprintf(err, errlen, "the cluster's API answered /%s/%s with no JSON", path, s);
            rc = -EPROTO;
        }
    }
    free(r.data);
    return rc;
}

int cluster_probe_proxy(const char *base_url, unsigned timeout_ms)
{
    char url[1024], err[256];
    snprintf(url, sizeof url, "%s/api/v0/pin/update", base_url);
    struct probe pr = {0};
    struct reply r;
    long status = 0;
    /* no credentials: the proxy is Kubo's API, whose secret is not the cluster's */
    int rc = http("POST", url, NULL, timeout_ms, &pr, &r, &status, err, sizeof err);
    if (rc < 0)
        return rc;
    free(r.data);
    return pr.cluster ? 1 : 0;
}

/* ---- state: the root, the retired root, then "CID NAME" per top name (NAME URL-escaped) ---- */

static void save_state_locked(struct cluster *c)
{
    if (!c->state_path)
        return;
    char a[CID_STR_MAX] = "", b[CID_STR_MAX] = "", tmp[PATH_MAX + 8];
    if (c->have_root)
        cid_format(&c->root, a, sizeof a);
    if (c->have_retired)
        cid_format(&c->retired, b, sizeof b);
    snprintf(tmp, sizeof tmp, "%s.tmp", c->state_path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        goto fail;
    fprintf(f, "%s\n%s\n", a, b);
    for (size_t i = 0; i < c->ntops; i++) {
        char s[CID_STR_MAX];
        char *e = curl_easy_escape(NULL, c->tops[i].name, 0);
        if (e && cid_format(&c->tops[i].cid, s, sizeof s) >= 0)
            fprintf(f, "%s %d %d %s\n", s, c->tops[i].rmin, c->tops[i].rmax, e);
        curl_free(e);
    }
    /* Older versions skip these lines ("unpin" is no CID). */
    for (size_t i = 0; i < c->nowed; i++) {
        char s[CID_STR_MAX];
        if (cid_format(&c->owed[i].cid, s, sizeof s) < 0)
            continue;
        char *e = c->owed[i].name ? curl_easy_escape(NULL, c->owed[i].name, 0) : NULL;
        if (!c->owed[i].name)
            fprintf(f, "unpin %s\n", s);
        else if (e)
            fprintf(f, "unpin %s %s\n", s, e);
        curl_free(e);
    }
    if (fflush(f) != 0 || fdatasync(fileno(f)) < 0) {
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0 || rename(tmp, c->state_path) < 0)
        goto fail;
    return;
fail:
    /* Only a stale pin is at stake: the names themselves are elsewhere. */
    log_warn("cannot record the cluster's pins in %s: %s", c->state_path, strerror(errno));
    unlink(tmp);
}

static int top_cmp(const void *a, const void *b)
{
    return strcmp(((const struct top *)a)->name, ((const struct top *)b)->name);
}

static void tops_free(struct top *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].name);
    free(t);
}

static void owed_free(struct owed *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(o[i].name);
    free(o);
}

/* Note cid (with its pin's top name, NULL: a root) as an unpin to try again. Replaces an entry
 * of the same CID; past OWED_MAX the oldest is given up (left pinned, logged). */
static void owed_add_locked(struct cluster *c, const struct cid *cid, const char *name)
{
    char *nm = name ? strdup(name) : NULL;
    if (name && !nm)
        return;
    for (size_t i = 0; i < c->nowed; i++)
        if (cid_equal(&c->owed[i].cid, cid)) {
            free(c->owed[i].name);
            c->owed[i].name = nm;
            return;
        }
    if (c->nowed == OWED_MAX) {
        char s[CID_STR_MAX] = "?";
        cid_format(&c->owed[0].cid, s, sizeof s);
        log_warn("too many unpins waiting for the cluster at %s: %s stays pinned", c->display, s);
        free(c->owed[0].name);
        memmove(c->owed, c->owed + 1, --c->nowed * sizeof *c->owed);
    }
    struct owed *o = realloc(c->owed, (c->nowed + 1) * sizeof *o);
    if (!o) {
        free(nm);
        return;
    }
    c->owed = o;
    o[c->nowed].cid = *cid;
    o[c->nowed++].name = nm;
    /* It just failed: not again in this round's tick. */
    uint64_t next = clock_mono_ms() + OWED_RETRY_MIN_MS;
    if (c->owed_next_ms < next)
        c->owed_next_ms = next;
}

/* Move the unpin owed for cid to the end of the list (it failed: the others go first next
 * time, so one that always fails cannot hold them up). */
static void owed_rotate_locked(struct cluster *c, const struct cid *cid)
{
    for (size_t i = 0; i + 1 < c->nowed; i++)
        if (cid_equal(&c->owed[i].cid, cid)) {
            struct owed o = c->owed[i];
            memmove(c->owed + i, c->owed + i + 1, (c->nowed - i - 1) * sizeof *c->owed);
            c->owed[c->nowed - 1] = o;
            return;
        }
}

/* Forget the unpins owed for cid (pinned again, or done). Whether there was one. */
static bool owed_drop_locked(struct cluster *c, const struct cid *cid)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nowed; i++) {
        if (cid_equal(&c->owed[i].cid, cid))
            free(c->owed[i].name);
        else
            c->owed[k++] = c->owed[i];
    }
    bool had = k != c->nowed;
    c->nowed = k;
    return had;
}

static void load_state(struct cluster *c)
{
    FILE *f = c->state_path ? fopen(c->state_path, "re") : NULL;
    if (!f)
        return;
    char line[4096 + CID_STR_MAX];
    char a[CID_STR_MAX + 2] = "", b[CID_STR_MAX + 2] = "";
    if (fgets(a, sizeof a, f) && fgets(b, sizeof b, f)) {
        a[strcspn(a, "\n")] = 0;
        b[strcspn(b, "\n")] = 0;
    }
    c->have_root = *a && cid_parse(a, strlen(a), &c->root) == 0;
    c->have_retired = *b && cid_parse(b, strlen(b), &c->retired) == 0;
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        struct cid cid;
        if (strncmp(line, "unpin ", 6) == 0) { /* "unpin CID [NAME]" */
            char *p = line + 6, *sp = strchr(p, ' ');
            size_t k = sp ? (size_t)(sp - p) : strlen(p);
            if (cid_parse(p, k, &cid) < 0)
                continue;
            int len = 0;
            char *name = sp ? curl_easy_unescape(NULL, sp + 1, 0, &len) : NULL;
            if (!sp || (name && len > 0 && !memchr(name, 0, (size_t)len)))
                owed_add_locked(c, &cid, name);
            curl_free(name);
            continue;
        }
        char *sp = strchr(line, ' ');
        int lo = 0, hi = 0, off = 0;
        if (!sp || cid_parse(line, (size_t)(sp - line), &cid) < 0 ||
            sscanf(sp + 1, "%d %d %n", &lo, &hi, &off) != 2 || off <= 0 || lo < -1 ||
            hi < -1 || lo > 10000 || hi > 10000)
            continue;
        int len = 0;
        char *name = curl_easy_unescape(NULL, sp + 1 + off, 0, &len);
        if (name && c->ntops == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct top *t = realloc(c->tops, nc * sizeof *t);
            if (t) {
                c->tops = t;
                cap = nc;
            }
        }
        if (name && c->ntops < cap && len > 0 && (c->tops[c->ntops].name = strdup(name))) {
            c->tops[c->ntops].rmin = lo;
            c->tops[c->ntops].rmax = hi;
            c->tops[c->ntops++].cid = cid;
        }
        curl_free(name);
    }
    fclose(f);
    c->owed_next_ms = 0; /* unpins owed from before: tried at the first tick */
    if (c->ntops > 1) /* the merge in cluster_pin_names walks them in name order */
        qsort(c->tops, c->ntops, sizeof *c->tops, top_cmp);
}

/* ---- life ---- */

int cluster_parse_replication(const char *s, int *rmin, int *rmax)
{
    /* Digits, '-' and ':' only: strtol alone also takes " 2" and "+2" (as a setfattr value
     * or an option). */
    if (strspn(s, "0123456789-:") != strlen(s))
        return -EINVAL;
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10), b = a;
    if (errno || end == s || (a < 1 && a != -1) || a > 10000)
        return -EINVAL;
    if (*end == ':') {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        if (errno || end == q || (b < 1 && b != -1) || b > 10000)
            return -EINVAL;
    } else if (*end == 0) {
        b = a; /* MIN alone: MAX as MIN (exactly that many copies) */
    }
    if (*end || (a == -1) != (b == -1) || (a != -1 && b < a))
        return -EINVAL;
    *rmin = (int)a;
    *rmax = (int)b;
    return 0;
}

int cluster_new(const struct cluster_config *cfg, struct cluster **out, char *err,
                size_t errlen)
{
    struct cluster *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    size_t n = strlen(cfg->url);
    while (n > 0 && cfg->url[n - 1] == '/')
        n--;
    c->url = strndup(cfg->url, n);
    c->display = c->url ? strdup(c->url) : NULL;
    if (c->display) { /* http://user:pw@host/... -> http://host/... */
        char *h = strstr(c->display, "://"), *at = h ? strchr(h + 3, '@') : NULL;
        char *slash = h ? strchr(h + 3, '/') : NULL;
        if (at && (!slash || at < slash))
            memmove(h + 3, at + 1, strlen(at + 1) + 1);
    }
    c->pin_base = strdup(cfg->pin_name ? cfg->pin_name : "ipfsfs");
    c->state_path = cfg->state_path ? strdup(cfg->state_path) : NULL;
    c->auth_header = cfg->auth ? rpc_auth_header(cfg->auth) : NULL;
    if (!c->url || !c->display || !c->pin_base || (cfg->state_path && !c->state_path) ||
        (cfg->auth && !c->auth_header) || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->url);
        free(c->display);
        free(c->pin_base);
        free(c->state_path);
        if (c->auth_header)
            explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
        free(c);
        return -ENOMEM;
    }
    c->has_creds = c->auth_header || strcmp(c->url, c->display) != 0;
    if (strlen(c->url) > 1024) {
        snprintf(err, errlen, "the cluster's API URL is longer than 1024 characters");
        cluster_free(c);
        return -EINVAL;
    }
    if (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0) {
        snprintf(err, errlen, "the cluster's API must be an http:// or https:// URL: %s",
                 c->display);
        cluster_free(c);
        return -EINVAL;
    }
    /* The node API's rule (rpc_new): anyone on the path could read the secret, and use it.
     * A password inside the URL (user:password@) is as much a secret as one from a file. */
    struct api_endpoint ep = {.base_url = c->display};
    if (c->has_creds && !api_endpoint_private(&ep)) {
        if (!cfg->allow_plain_auth) {
            snprintf(err, errlen, "refusing to send the cluster's credentials over plain http "
                     "to %s, which is not a loopback address: use https, or allow it with "
                     "--api-auth-insecure", c->display);
            cluster_free(c);
            return -EPERM;
        }
        log_warn("the cluster's credentials go over plain http to %s: anyone on the way can "
                 "read them", c->display);
    }
    c->rmin = cfg->rmin;
    c->rmax = cfg->rmax;
    c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    load_state(c);
    *out = c;
    return 0;
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->url);
    free(c->display);
    free(c->pin_base);
    free(c->state_path);
    if (c->auth_header) /* the secret should not linger in freed memory */
        explicit_bzero(c->auth_header, strlen(c->auth_header));
    free(c->auth_header);
    tops_free(c->tops, c->ntops);
    owed_free(c->owed, c->nowed);
    free(c);
}

/* ---- status ---- */

static int get_int(json_t *o, const char *k, int dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

int cluster_status_parse(const char *alloc, size_t alloc_len, const char *pins, size_t pins_len,
                         struct cluster_status *st)
{
    memset(st, 0, sizeof *st);
    if (alloc) {
        json_t *j = json_loadb(alloc, alloc_len, 0, NULL);
        if (!json_is_object(j)) {
            json_decref(j);
            return -EPROTO;
        }
        st->is_pin = true;
        st->rmin = get_int(j, "replication_factor_min", 0);
        st->rmax = get_int(j, "replication_factor_max", 0);
        json_decref(j);
    }
    json_t *j = json_loadb(pins, pins_len, 0, NULL);
    json_t *pm = json_object_get(j, "peer_map");
    if (!json_is_object(pm)) {
        json_decref(j);
        return -EPROTO;
    }
    const char *peer;
    json_t *p;
    json_object_foreach(pm, peer, p) {
        const char *s = json_string_value(json_object_get(p, "status"));
        st->peers++;
        if (!s)
            continue;
        if (strcmp(s, "pinned") == 0) {
            st->pinned++;
        } else if (strcmp(s, "pinning") == 0) {
            st->pinning++;
        } else if (strcmp(s, "pin_queued") == 0 || strcmp(s, "queued") == 0) {
            st->queued++;
        } else if (strcmp(s, "pin_error") == 0 || strcmp(s, "cluster_error") == 0 ||
                   strcmp(s, "unexpectedly_unpinned") == 0 || strcmp(s, "error") == 0) {
            st->failed++;
            const char *e = json_string_value(json_object_get(p, "error"));
            const char *name = json_string_value(json_object_get(p, "peername"));
            if (!st->error[0])
                snprintf(st->error, sizeof st->error, "%s: %s", name && *name ? name : peer,
                         e && *e ? e : s);
        }
    }
    json_decref(j);
    return 0;
}

/* GET path/cid: the body in *out (0), -ENOENT on 404, or -errno with err. */
static int get_raw(struct cluster *c, const char *path, const struct cid *cid, unsigned tmo,
                   struct reply *out, char *err, size_t errlen)
{
    char s[CID_STR_MAX], url[2048];
    if (cid_format(cid, s, sizeof s) < 0)
        return -EINVAL;
    snprintf(url, sizeof url, "%s/%s/%s", c->url, path, s);
    long status = 0;
    int rc = http("GET", url, c->auth_header, tmo, NULL, out, &status, err, errlen);
    if (rc < 0)
        return rc;
    if (status >= 200 && status <= 299 && out->data)
        return 0;
    rc = status == 404 ? -ENOENT : status == 401 || status == 403 ? -EACCES : -EIO;
    char what[CID_STR_MAX + 64];
    snprintf(what, sizeof what, "GET /%s/%s", path, s);
    if (rc == -EACCES)
        auth_error(c, out, status, err, errlen);
    else
        reply_error(out, status, what, err, errlen);
    free(out->data);
    out->data = NULL;
    return rc;
}

/* cluster_status, both requests within tmo ms together. */
static int status_within(struct cluster *c, const struct cid *cid, struct cluster_status *st,
                         unsigned tmo, char *err, size_t errlen)
{
    struct reply a = {0}, p = {0};
    uint64_t end = clock_mono_ms() + tmo;
    memset(st, 0, sizeof *st);
    int rc = get_raw(c, "allocations", cid, tmo, &a, err, errlen);
    if (rc == -ENOENT) /* not a cluster pin: its peers' states below say "unpinned" */
        rc = 0;
    uint64_t now = clock_mono_ms();
    if (rc == 0 && now >= end) {
        snprintf(err, errlen, "the cluster's API did not answer in time");
        rc = -ETIMEDOUT;
    }
    if (rc == 0)
        rc = get_raw(c, "pins", cid, (unsigned)(end - now), &p, err, errlen);
    if (rc == 0) {
        rc = cluster_status_parse(a.data, a.len, p.data, p.len, st);
        if (rc < 0)
            snprintf(err, errlen, "the cluster's API answered a status that is not JSON");
    }
    free(a.data);
    free(p.data);
    return rc;
}

int cluster_status(struct cluster *c, const struct cid *cid, struct cluster_status *st,
                   char *err, size_t errlen)
{
    /* Asked by getxattr (and the housekeeping): a cluster that does not answer costs a FUSE
     * thread at most STATUS_MAX_MS, not the whole --timeout (getfattr -d over a tree). */
    pthread_mutex_lock(&c->lock);
    bool kept = c->st_at && clock_mono_ms() - c->st_at < STATUS_KEEP_MS &&
                cid_equal(&c->st_cid, cid);
    int rc = c->st_rc;
    if (kept) {
        *st = c->st_last;
        snprintf(err, errlen, "%s", c->st_err);
    }
    pthread_mutex_unlock(&c->lock);
    if (kept)
        return rc;
    char e[sizeof c->st_err] = "";
    rc = status_within(c, cid, st, c->timeout_ms < STATUS_MAX_MS ? c->timeout_ms : STATUS_MAX_MS,
                       e, sizeof e);
    snprintf(err, errlen, "%s", e);
    pthread_mutex_lock(&c->lock);
    c->st_cid = *cid;
    c->st_at = clock_mono_ms();
    c->st_rc = rc;
    c->st_last = *st;
    memcpy(c->st_err, e, sizeof e);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

bool cluster_satisfied(const struct cluster_status *st)
{
    if (!st->is_pin || st->pinned == 0)
        return false;
    if (st->rmin > 0)
        return st->pinned >= (unsigned)st->rmin;
    /* every peer (or the cluster's default of it): every allocated peer has it */
    return st->pinning == 0 && st->queued == 0 && st->failed == 0;
}

int cluster_status_text(const struct cluster_status *st, char *buf, size_t len)
{
    unsigned alloc = st->pinned + st->pinning + st->queued + st->failed;
    const char *state = !st->is_pin           ? "unpinned"
                        : cluster_satisfied(st) ? "pinned"
                        : st->failed          ? "error"
                                              : "pinning";
    char f[64];
    if (st->rmin == -1 || st->rmin == 0)
        snprintf(f, sizeof f, "every peer");
    else
        snprintf(f, sizeof f, "min %d, max %d", st->rmin, st->rmax);
    int n = snprintf(buf, len, "%s: %u of %u peers hold it", state, st->pinned, alloc);
    if (n >= 0 && (size_t)n < len && st->is_pin)
        n += snprintf(buf + n, len - (size_t)n, " (%s)", f);
    if (n >= 0 && (size_t)n < len && (st->pinning || st->queued))
        n += snprintf(buf + n, len - (size_t)n, "; %u pinning, %u queued", st->pinning,
                      st->queued);
    if (n >= 0 && (size_t)n < len && st->failed)
        n += snprintf(buf + n, len - (size_t)n, "; %u failed, %s", st->failed, st->error);
    return n;
}

/* ---- pinning ---- */

/* The pin name of top name `name` (NULL: the root's) into buf. */
static void pin_name(const struct cluster *c, const char *name, char *buf, size_t len)
{
    size_t bl = strlen(c->pin_base);
    if (!name)
        snprintf(buf, len, "%s", c->pin_base);
    else /* names are at most 255 bytes; the cluster keeps what fits */
        snprintf(buf, len, "%s%s%s", c->pin_base,
                 bl && c->pin_base[bl - 1] == '/' ? "" : "/", name);
}

/* Unpin cid, if its pin still carries our pin name `name` (another mount's pin of the same
 * content stays). 0 when it is not pinned by us (any more). With owe, a failure is noted to be
 * tried again (cluster_tick), also across restarts (the state file). */
static int unpin(struct cluster *c, const struct cid *cid, const char *name, bool owe)
{
    char err[256], want[600];
    pin_name(c, name, want, sizeof want);
    json_t *j = NULL;
    int rc = call(c, "GET", "allocations", cid, NULL, &j, err, sizeof err);
    if (rc == 0) {
        const char *has = json_string_value(json_object_get(j, "name"));
        bool ours = has && strcmp(has, want) == 0;
        json_decref(j);
        if (!ours)
            return 0; /* someone else's now */
        rc = call(c, "DELETE", "pins", cid, NULL, NULL, err, sizeof err);
    }
    if (rc == -ENOENT)
        rc = 0; /* unpinned already (by hand, or by an earlier try) */
    char s[CID_STR_MAX] = "?";
    cid_format(cid, s, sizeof s);
    if (rc < 0) {
        log_info("cannot unpin %s (%s) from the cluster: %s%s", s, want, err,
                 owe ? "; tried again later" : "");
        if (owe) {
            pthread_mutex_lock(&c->lock);
            owed_add_locked(c, cid, name);
            save_state_locked(c);
            pthread_mutex_unlock(&c->lock);
        }
    } else {
        log_debug("unpinned %s (%s) from the cluster", s, want);
        pthread_mutex_lock(&c->lock);
        c->unpins++;
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}

/* POST /pins/cid with our factors and name (top name `name`, NULL: the root). */
void cluster_one_line(char *dst, size_t len, const char *src)
{
    if (len == 0)
        return;
    size_t k = 0;
    for (; src[k] && k + 1 < len; k++)
        dst[k] = (unsigned char)src[k] < 0x20 || src[k] == 0x7f ? ' ' : src[k];
    dst[k] = 0;
}

/* POST /pins/cid with the factors (0: the mount's) and our name (top name `name`, NULL: the
 * root). Never the cluster's pin-update: on a peer where the old pin is not done yet (queued,
 * pinning, or a file's first, empty version), Kubo's pin/update fails ("datastore: key not
 * found") and the cluster leaves the new pin in error until its recover interval (12 min). A
 * plain pin walks the new DAG and fetches only the blocks a peer lacks. */
static int pin(struct cluster *c, const struct cid *cid, const char *name, int rmin, int rmax,
               char *err, size_t errlen)
{
    if (!rmin) {
        rmin = c->rmin;
        rmax = c->rmax;
    }
    char nm[600], q[2048];
    pin_name(c, name, nm, sizeof nm);
    /* The cluster keeps one pin per CID. Content pinned already under another pinner's name
     * (another mount with the same folder, or a person) with factors at least ours is left
     * as it is: a POST would rename the pin ours, and our unpin would then take it from them.
     * Only ours is ever unpinned (unpin), so theirs stays theirs. */
    json_t *j = NULL;
    char e2[256];
    if (call(c, "GET", "allocations", cid, NULL, &j, e2, sizeof e2) == 0) {
        const char *has = json_string_value(json_object_get(j, "name"));
        int hmin = get_int(j, "replication_factor_min", 0);
        size_t bl = strlen(c->pin_base);
        bool other = has && !(strncmp(has, c->pin_base, bl) == 0 &&
                              (has[bl] == '\0' || has[bl] == '/' ||
                               (bl && c->pin_base[bl - 1] == '/')));
        bool enough = hmin == -1 || rmin == 0 || (rmin > 0 && hmin >= rmin);
        if (other && enough) {
            char s[CID_STR_MAX] = "?";
            cid_format(cid, s, sizeof s);
            log_info("%s is pinned through the cluster already as \"%s\" (min %d): left so, "
                     "not renamed %s", s, has, hmin, nm);
            json_decref(j);
            pthread_mutex_lock(&c->lock);
            owed_drop_locked(c, cid);
            pthread_mutex_unlock(&c->lock);
            return 0;
        }
        json_decref(j);
    }
    char *esc = curl_easy_escape(NULL, nm, 0);
    if (!esc)
        return -ENOMEM;
    int k = snprintf(q, sizeof q, "name=%s", esc);
    curl_free(esc);
    if (rmin && k > 0 && (size_t)k < sizeof q)
        snprintf(q + k, sizeof q - (size_t)k, "&replication-min=%d&replication-max=%d", rmin,
                 rmax);
    int rc = call(c, "POST", "pins", cid, q, NULL, err, errlen);
    pthread_mutex_lock(&c->lock);
    if (rc < 0) {
        /* Cleared only by a whole round that succeeds (cluster_pin_names): a pin that
         * works after another one was refused in the same round must not hide it. */
        c->failing = true;
        c->failures++;
        cluster_one_line(c->last_error, sizeof c->last_error, err);
    } else {
        c->pins++;
        owed_drop_locked(c, cid); /* pinned again: an unpin owed for it would undo this */
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int pin_root(struct cluster *c, const struct cid *root, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    bool same = c->have_root && cid_equal(&c->root, root);
    bool have_prev = c->have_root;
    struct cid prev = c->root;
    bool have_old = c->have_retired;
    struct cid old = c->retired;
    pthread_mutex_unlock(&c->lock);
    if (same)
        return 0;
    int rc = pin(c, root, NULL, 0, 0, err, errlen);
    if (rc < 0)
        return rc;
    /* Three roots in a row: the oldest goes now (the one in between covers nearly all). */
    bool drop_old = have_old && have_prev && !cid_equal(&old, root) && !cid_equal(&old, &prev);
    pthread_mutex_lock(&c->lock);
    c->root = *root;
    c->have_root = true;
    if (have_prev && !cid_equal(&prev, root)) {
        c->retired = prev;
        c->have_retired = true;
    }
    save_state_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (drop_old)
        unpin(c, &old, NULL, true);
    char s[CID_STR_MAX] = "?";
    cid_format(root, s, sizeof s);
    log_info("pinned the names' root %s through the cluster", s);
    return 0;
}

static bool used_by(const struct cluster_name *top, size_t n, const struct cid *root,
                    const struct cid *cid)
{
    if (cid_equal(cid, root))
        return true;
    for (size_t i = 0; i < n; i++)
        if (cid_equal(&top[i].cid, cid))
            return true;
    return false;
}

int cluster_pin_names(struct cluster *c, const struct cid *root, const struct cluster_name *top,
                      size_t n, char *err, size_t errlen)
{
    int rc = pin_root(c, root, err, errlen);
    if (rc < 0)
        return rc;
    /* Walk the old and the new top names together (both sorted by name). */
    struct top *nt = calloc(n + c->ntops + 1, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    size_t nn = 0, i = 0, j = 0;
    int failed = 0;
    while (i < c->ntops || j < n) {
        int cmp = i == c->ntops ? 1 : j == n ? -1 : strcmp(c->tops[i].name, top[j].name);
        const struct top *o = cmp <= 0 ? &c->tops[i] : NULL;
        const struct cluster_name *w = cmp >= 0 ? &top[j] : NULL;
        if (o && w && cid_equal(&o->cid, &w->cid) && o->rmin == w->rmin &&
            o->rmax == w->rmax) { /* unchanged (a copy: c->tops stays whole for readers) */
            nt[nn] = *o;
            if ((nt[nn].name = strdup(o->name)))
                nn++;
        } else if (w) { /* new, or changed */
            char e[256];
            /* new content, or new factors only (the same CID again) */
            bool same = o && cid_equal(&o->cid, &w->cid);
            int r = pin(c, &w->cid, w->name, w->rmin, w->rmax, e, sizeof e);
            if (r < 0) {
                if (!failed)
                    snprintf(err, errlen, "%s", e);
                failed = r;
                if (o) { /* keep the old one: tried again next time */
                    nt[nn] = *o;
                    if ((nt[nn].name = strdup(o->name)))
                        nn++;
                }
            } else {
                nt[nn].name = strdup(w->name);
                nt[nn].cid = w->cid;
                nt[nn].rmin = w->rmin;
                nt[nn].rmax = w->rmax;
                if (nt[nn].name)
                    nn++;
                if (o && !same && !used_by(top, n, root, &o->cid))
                    unpin(c, &o->cid, o->name, true);
            }
        } else if (!used_by(top, n, root, &o->cid)) { /* removed */
            unpin(c, &o->cid, o->name, true);
        }
        if (cmp <= 0)
            i++;
        if (cmp >= 0)
            j++;
    }
    pthread_mutex_lock(&c->lock);
    struct top *old = c->tops;
    size_t nold = c->ntops;
    c->tops = nt;
    c->ntops = nn;
    save_state_locked(c);
    /* One refusal fails the round, whatever pins after it took (pin() says only its own):
     * user.ipfs.pins and fsync (--replication-wait) tell it until a round succeeds (a failed
     * name is asked again in every round until then). */
    c->failing = failed != 0;
    if (failed)
        cluster_one_line(c->last_error, sizeof c->last_error, err);
    pthread_mutex_unlock(&c->lock);
    tops_free(old, nold);
    return failed;
}

bool cluster_pin_for(struct cluster *c, const char *path, struct cid *out)
{
    while (*path == '/')
        path++;
    pthread_mutex_lock(&c->lock);
    size_t best = 0;
    bool found = false;
    for (size_t i = 0; i < c->ntops; i++) { /* the deepest pinned name that holds path */
        size_t k = strlen(c->tops[i].name);
        if (k > best && strncmp(c->tops[i].name, path, k) == 0 &&
            (path[k] == 0 || path[k] == '/')) {
            *out = c->tops[i].cid;
            best = k;
            found = true;
        }
    }
    if (!found && c->have_root) {
        *out = c->root;
        found = true;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* Whether cid is pinned for the names now (the root, the one before it, a top name). */
static bool in_use_locked(const struct cluster *c, const struct cid *cid)
{
    if ((c->have_root && cid_equal(&c->root, cid)) ||
        (c->have_retired && cid_equal(&c->retired, cid)))
        return true;
    for (size_t i = 0; i < c->ntops; i++)
        if (cid_equal(&c->tops[i].cid, cid))
            return true;
    return false;
}

/* Try the owed unpins again, OWED_BATCH at a time, backing off while they fail. Only the
 * pinning thread calls it (as it does pin_root and cluster_pin_names). */
static void owed_retry(struct cluster *c)
{
    uint64_t now = clock_mono_ms();
    struct owed batch[OWED_BATCH];
    size_t nb = 0;
    pthread_mutex_lock(&c->lock);
    if (c->nowed && now >= c->owed_next_ms) {
        for (size_t i = 0; i < c->nowed && nb < OWED_BATCH; i++) {
            batch[nb].cid = c->owed[i].cid;
            batch[nb].name = c->owed[i].name ? strdup(c->owed[i].name) : NULL;
            if (!c->owed[i].name || batch[nb].name)
                nb++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (!nb)
        return;
    bool failed = false;
    size_t done = 0; /* batch[0..done) are no longer owed */
    for (; done < nb; done++) {
        pthread_mutex_lock(&c->lock);
        bool used = in_use_locked(c, &batch[done].cid);
        pthread_mutex_unlock(&c->lock);
        if (!used && unpin(c, &batch[done].cid, batch[done].name, false) < 0) {
            failed = true; /* the cluster is not answering: the rest waits too */
            break;
        }
    }
    pthread_mutex_lock(&c->lock);
    bool changed = false;
    for (size_t i = 0; i < done; i++)
        changed |= owed_drop_locked(c, &batch[i].cid);
    if (failed)
        owed_rotate_locked(c, &batch[done].cid);
    if (changed || failed)
        save_state_locked(c);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < nb; i++)
        free(batch[i].name);
    pthread_mutex_lock(&c->lock);
    if (failed) {
        unsigned b = c->owed_backoff_ms ? c->owed_backoff_ms * 2 : OWED_RETRY_MIN_MS;
        c->owed_backoff_ms = b > OWED_RETRY_MAX_MS ? OWED_RETRY_MAX_MS : b;
        c->owed_next_ms = clock_mono_ms() + c->owed_backoff_ms;
    } else {
        c->owed_backoff_ms = 0;
        c->owed_next_ms = 0;
    }
    pthread_mutex_unlock(&c->lock);
}

void cluster_tick(struct cluster *c)
{
    owed_retry(c);
    pthread_mutex_lock(&c->lock);
    bool waiting = c->have_retired && c->have_root;
    struct cid root = c->root, old = c->retired;
    pthread_mutex_unlock(&c->lock);
    if (!waiting)
        return;
    struct cluster_status st;
    char err[256];
    if (cluster_status(c, &root, &st, err, sizeof err) < 0 || !cluster_satisfied(&st))
        return;
    if (unpin(c, &old, NULL, false) < 0)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->have_retired && cid_equal(&c->retired, &old)) {
        c->have_retired = false;
        save_state_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
}

bool cluster_failing(struct cluster *c, char *why, size_t len)
{
    pthread_mutex_lock(&c->lock);
    bool f = c->failing;
    if (f)
        snprintf(why, len, "%s", c->last_error);
    pthread_mutex_unlock(&c->lock);
    return f;
}

bool cluster_root(struct cluster *c, struct cid *out)
{
    pthread_mutex_lock(&c->lock);
    bool have = c->have_root;
    if (have)
        *out = c->root;
    pthread_mutex_unlock(&c->lock);
    return have;
}

int cluster_wait(struct cluster *c, const struct cid *root, unsigned wait_ms, char *err,
                 size_t errlen)
{
    struct cid r;
    if (root)
        r = *root;
    else if (!cluster_root(c, &r)) {
        snprintf(err, errlen, "nothing has been pinned through the cluster yet");
        return -ENOENT;
    }
    /* The folders with factors of their own have pins of their own, which the root's
     * replication says nothing of (a folder at 3:3 is short of a peer while the root at 2:3
     * is satisfied): they are waited for too (the first WAIT_OWN_MAX of them). */
    struct cid own[WAIT_OWN_MAX];
    size_t nown = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->ntops && nown < WAIT_OWN_MAX; i++)
        if (c->tops[i].rmin != 0)
            own[nown++] = c->tops[i].cid;
    pthread_mutex_unlock(&c->lock);
    size_t done = 0; /* root (0), then own[done - 1]: the ones satisfied, in order */
    uint64_t end = clock_mono_ms() + wait_ms;
    for (;;) {
        struct cluster_status st;
        uint64_t now = clock_mono_ms();
        if (now >= end) {
            snprintf(err, errlen, "not replicated enough within %u s", (wait_ms + 999) / 1000);
            return -ETIMEDOUT;
        }
        /* each question within what is left of the wait */
        unsigned left = (unsigned)(end - now);
        const struct cid *q = done == 0 ? &r : &own[done - 1];
        int rc = status_within(c, q, &st, left < c->timeout_ms ? left : c->timeout_ms, err,
                               errlen);
        if (rc == 0 && cluster_satisfied(&st)) {
            if (++done > nown)
                return 0;
            continue; /* the next pin, at once */
        }
        if (clock_mono_ms() + WAIT_STEP_MS > end) {
            if (rc == 0) {
                char t[256], cs[CID_STR_MAX] = "?";
                cluster_status_text(&st, t, sizeof t);
                if (done > 0)
                    cid_format(q, cs, sizeof cs);
                snprintf(err, errlen, "not replicated enough within %u s%s%s%s: %s",
                         (wait_ms + 999) / 1000, done > 0 ? " (a folder's own pin, " : "",
                         done > 0 ? cs : "", done > 0 ? ")" : "", t);
            }
            return rc < 0 ? rc : -ETIMEDOUT;
        }
        struct timespec ts = {0, (long)WAIT_STEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

const char *cluster_display(const struct cluster *c)
{
    return c->display;
}

int cluster_stats(struct cluster *c, char *buf, size_t len)
{
    char s[CID_STR_MAX] = "none";
    pthread_mutex_lock(&c->lock);
    if (c->have_root)
        cid_format(&c->root, s, sizeof s);
    int n = snprintf(buf, len,
                     "cluster_api %s\ncluster_root %s\ncluster_pins %llu\ncluster_unpins %llu\n"
                     "cluster_unpins_owed %zu\ncluster_failures %llu\n",
                     c->display, s, (unsigned long long)c->pins, (unsigned long long)c->unpins,
                     c->nowed, (unsigned long long)c->failures);
    if (n >= 0 && (size_t)n < len && c->failing && c->last_error[0]) /* not once it is gone */
        n += snprintf(buf + n, len - (size_t)n, "cluster_error %s\n", c->last_error);
    pthread_mutex_unlock(&c->lock);
    return n;
}

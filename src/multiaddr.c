/* multiaddr.c - see multiaddr.h. */
#include "config.h"

#include "multiaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

/* Longest multiaddr we look at; the api file holds one short line. */
#define MA_MAX 1024
/* Longest component quoted in an error message. */
#define ERR_QUOTE 64
#define HOSTNAME_MAX 253
#define LABEL_MAX 63

struct ma_cursor {
    const char *p; /* next '/' or end */
    const char *end;
};

/* A component, NUL-terminated copy (components are short; longer ones are refused). */
struct ma_comp {
    char s[256];
    size_t len;
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

__attribute__((format(printf, 1, 2))) static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Next component. Returns 1 with c filled, 0 at the end (a single trailing '/' is allowed), or
 * -EINVAL for an empty or overlong component. */
static int next_comp(struct ma_cursor *cur, struct ma_comp *c)
{
    const char *start, *slash;

    if (cur->p >= cur->end)
        return 0;
    /* cur->p points at a '/' */
    start = cur->p + 1;
    if (start == cur->end)
        return 0;
    slash = memchr(start, '/', (size_t)(cur->end - start));
    if (!slash)
        slash = cur->end;
    c->len = (size_t)(slash - start);
    if (c->len == 0 || c->len >= sizeof c->s)
        return -EINVAL;
    memcpy(c->s, start, c->len);
    c->s[c->len] = '\0';
    cur->p = slash;
    return 1;
}

/* Like next_comp, with the error message for an empty or too long component. */
static int need_comp(struct ma_cursor *cur, struct ma_comp *c, char *err, size_t errlen)
{
    int r = next_comp(cur, c);
    if (r < 0)
        return fail(err, errlen, "empty or overlong component in multiaddr");
    return r;
}

static int parse_port(const char *s, unsigned *port)
{
    unsigned v = 0;

    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    if (v == 0)
        return -EINVAL;
    *port = v;
    return 0;
}

/* DNS name: [A-Za-z0-9.-], at most 253 characters, labels of 1..63 characters that do not start
 * or end with '-'; one trailing dot is allowed. */
static bool valid_hostname(const char *h, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > HOSTNAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > LABEL_MAX)
            return false;
    }
    return h[len - 1] != '-';
}

/* IPv6 zone: characters that need no escaping in a URL. */
static bool valid_zone(const char *z)
{
    if (*z == '\0')
        return false;
    for (; *z; z++) {
        char c = *z;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            return false;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* /unix/<path>: everything after "/unix/" is the path, raw ("/unix/run/ipfs.sock") or
 * percent-encoded as one component ("/unix/%2Frun%2Fipfs.sock"); both mean /run/ipfs.sock. */
static int parse_unix(const char *rest, size_t len, struct api_endpoint *out, char *err,
                      size_t errlen)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char dec[MA_MAX];
    size_t n = 0, o = 0;

    if (len == 0)
        return fail(err, errlen, "missing socket path after /unix");
    if (len > sizeof dec)
        return fail(err, errlen, "unix socket path too long");
    for (size_t i = 0; i < len; i++) {
        char c = rest[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(rest[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(rest[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return fail(err, errlen, "invalid percent-encoding in unix socket path");
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return fail(err, errlen, "NUL byte in unix socket path");
            i += 2;
        }
        dec[n++] = c;
    }
    if (dec[0] != '/')
        path[o++] = '/';
    if (o + n >= sizeof path)
        return fail(err, errlen, "unix socket path too long (%zu bytes, at most %zu)", o + n,
                    sizeof path - 1);
    memcpy(path + o, dec, n);
    path[o + n] = '\0';
    out->unix_path = strdup(path);
    out->base_url = strdup("http://localhost");
    if (!out->unix_path || !out->base_url) {
        api_endpoint_free(out);
        fail(err, errlen, "out of memory");
        return -ENOMEM;
    }
    out->ip_family = 0;
    return 0;
}

/* Protocols after /tcp/PORT whose value must be skipped rather than read as a protocol. */
static bool takes_value(const char *proto)
{
    static const char *const names[] = {"p2p", "ipfs", "sni", "http-path", "certhash"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(proto, names[i]) == 0)
            return true;
    return false;
}

int multiaddr_parse(const char *ma, struct api_endpoint *out, char *err, size_t errlen)
{
    struct ma_cursor cur;
    struct ma_comp proto, host, zone, c;
    bool have_zone = false, https = false;
    const char *s;
    size_t len;
    unsigned port;
    int r;

    if (err && errlen > 0)
        err[0] = '\0';
    zone.s[0] = '\0';
    zone.len = 0;
    if (!out)
        return fail(err, errlen, "no result buffer");
    out->base_url = NULL;
    out->unix_path = NULL;
    out->ip_family = 0;
    if (!ma)
        return fail(err, errlen, "no multiaddr given");

    s = ma;
    len = strlen(ma);
    while (len > 0 && is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len == 0)
        return fail(err, errlen, "empty multiaddr");
    if (len > MA_MAX)
        return fail(err, errlen, "multiaddr too long (%zu characters)", len);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return fail(err, errlen, "invalid character 0x%02x in multiaddr", ch);
    }
    if (s[0] != '/')
        return fail(err, errlen, "multiaddr must start with '/'");

    cur.p = s;
    cur.end = s + len;
    r = need_comp(&cur, &proto, err, errlen);
    if (r <= 0)
        return r < 0 ? r : fail(err, errlen, "empty multiaddr");

    if (strcmp(proto.s, "unix") == 0) {
        const char *rest = cur.p < cur.end ? cur.p + 1 : cur.end;
        return parse_unix(rest, (size_t)(cur.end - rest), out, err, errlen);
    }

    if (strcmp(proto.s, "ip6zone") == 0) {
        r = need_comp(&cur, &zone, err, errlen);
        if (r < 0)
            return r;
        if (r == 0)
            return fail(err, errlen, "missing zone after /ip6zone");
        if (!valid_zone(zone.s))
            return fail(err, errlen, "invalid IPv6 zone '%.64s'", zone.s);
        r = need_comp(&cur, &proto, err, errlen);
        if (r < 0)
            return r;
        if (r == 0 || strcmp(proto.s, "ip6") != 0)
            return fail(err, errlen, "/ip6zone/%.64s must be followed by /ip6/ADDRESS", zone.s);
        have_zone = true;
    }

    if (strcmp(proto.s, "ip4") == 0 || strcmp(proto.s, "dns4") == 0) {
        out->ip_family = 4;
    } else if (strcmp(proto.s, "ip6") == 0 || strcmp(proto.s, "dns6") == 0) {
        out->ip_family = 6;
    } else if (strcmp(proto.s, "dns") != 0) {
        return fail(err, errlen,
                    "unsupported protocol '%.64s' (need /ip4, /ip6, /dns, /dns4, /dns6 or /unix)",
                    proto.s);
    }

    r = need_comp(&cur, &host, err, errlen);
    if (r < 0)
        goto fail_family;
    if (r == 0) {
        r = fail(err, errlen, "missing address after /%s", proto.s);
        goto fail_family;
    }
    if (strcmp(proto.s, "ip4") == 0) {
        struct in_addr a4;
        if (inet_pton(AF_INET, host.s, &a4) != 1) {
            r = fail(err, errlen, "invalid IPv4 address '%.64s'", host.s);
            goto fail_family;
        }
    } else if (strcmp(proto.s, "ip6") == 0) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host.s, &a6) != 1) {
            r = fail(err, errlen, "invalid IPv6 address '%.64s'", host.s);
            goto fail_family;
        }
    } else if (!valid_hostname(host.s, host.len)) {
        r = fail(err, errlen, "invalid hostname '%.64s'", host.s);
        goto fail_family;
    }

    r = need_comp(&cur, &c, err, errlen);
    if (r < 0)
        goto fail_family;
    if (r == 0) {
        r = fail(err, errlen, "missing /tcp/PORT after /%s/%.64s", proto.s, host.s);
        goto fail_family;
    }
    if (strcmp(c.s, "tcp") != 0) {
        r = fail(err, errlen, "unsupported protocol '%.64s' (need /tcp/PORT)", c.s);
        goto fail_family;
    }
    r = need_comp(&cur, &c, err, errlen);
    if (r < 0)
        goto fail_family;
    if (r == 0) {
        r = fail(err, errlen, "missing port after /tcp");
        goto fail_family;
    }
    if (parse_port(c.s, &port) < 0) {
        r = fail(err, errlen, "invalid port '%.64s'", c.s);
        goto fail_family;
    }

    /* The rest: /http, /https, /tls/http, /p2p/ID ... only https or tls matter. */
    while ((r = need_comp(&cur, &c, err, errlen)) > 0) {
        if (strcmp(c.s, "https") == 0 || strcmp(c.s, "tls") == 0) {
            https = true;
        } else if (takes_value(c.s)) {
            r = need_comp(&cur, &c, err, errlen);
            if (r <= 0)
                break;
        }
    }
    if (r < 0)
        goto fail_family;

    if (strcmp(proto.s, "ip6") != 0)
        out->base_url = dup_printf("%s://%s:%u", https ? "https" : "http", host.s, port);
    else if (have_zone)
        out->base_url =
            dup_printf("%s://[%s%%25%s]:%u", https ? "https" : "http", host.s, zone.s, port);
    else
        out->base_url = dup_printf("%s://[%s]:%u", https ? "https" : "http", host.s, port);
    if (!out->base_url) {
        out->ip_family = 0;
        fail(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;

fail_family:
    out->ip_family = 0;
    return r;
}

void api_endpoint_free(struct api_endpoint *ep)
{
    if (!ep)
        return;
    free(ep->base_url);
    free(ep->unix_path);
    ep->base_url = NULL;
    ep->unix_path = NULL;
    ep->ip_family = 0;
}

/* Host of a base URL we built: "http://HOST:PORT" or "http://[V6%25ZONE]:PORT". */
static bool url_host(const char *url, char *host, size_t hostlen)
{
    const char *p = strstr(url, "://");
    size_t n;

    if (!p)
        return false;
    p += 3;
    if (*p == '[') {
        const char *e = strchr(++p, ']');
        const char *z = strstr(p, "%25");
        if (!e)
            return false;
        if (z && z < e)
            e = z; /* the zone does not change what the address is */
        n = (size_t)(e - p);
    } else {
        n = strcspn(p, ":/");
    }
    if (n == 0 || n >= hostlen)
        return false;
    memcpy(host, p, n);
    host[n] = '\0';
    return true;
}

bool api_endpoint_private(const struct api_endpoint *ep)
{
    char host[256];
    struct in_addr a4;
    struct in6_addr a6;

    if (!ep || !ep->base_url)
        return false;
    if (ep->unix_path || strncmp(ep->base_url, "https://", 8) == 0)
        return true;
    if (!url_host(ep->base_url, host, sizeof host))
        return false;
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

/* options.c - see options.h. */
#include "config.h"

#include "options.h"

#include "cluster.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define OPT(t, p) {t, offsetof(struct options, p), 1}

/* Keys of the options keep_nonopt handles itself. */
enum { KEY_GATEWAY = 1 };

/* Every long option is also accepted as -o NAME=VALUE, so fstab lines can carry it. */
static const struct fuse_opt option_table[] = {
    OPT("--api=%s", api),
    OPT("api=%s", api),
    /* Numbers are taken as text and checked by options_parse: fuse_opt's sscanf took "5s" as
     * 5, "1.5" as 1 and "-5" as 4294967291. */
    OPT("--timeout=%s", timeout_arg),
    OPT("timeout=%s", timeout_arg),
    OPT("--cache-size=%s", cache_size),
    OPT("cache-size=%s", cache_size),
    OPT("--dir-cache=%s", dir_cache),
    OPT("dir-cache=%s", dir_cache),
    OPT("--readahead=%s", readahead),
    OPT("readahead=%s", readahead),
    OPT("--log-level=%s", log_level),
    OPT("log-level=%s", log_level),
    OPT("--stats", stats),
    OPT("--mfs-root=%s", mfs_root),
    OPT("mfs-root=%s", mfs_root),
    OPT("--spool-dir=%s", spool_dir),
    OPT("spool-dir=%s", spool_dir),
    OPT("--cid-version=%s", cid_version_arg),
    OPT("cid-version=%s", cid_version_arg),
    {"--raw-leaves", offsetof(struct options, raw_leaves), 1},
    {"raw-leaves", offsetof(struct options, raw_leaves), 1},
    {"--no-raw-leaves", offsetof(struct options, raw_leaves), 0},
    {"no-raw-leaves", offsetof(struct options, raw_leaves), 0},
    OPT("--api-auth-file=%s", api_auth_file),
    OPT("api-auth-file=%s", api_auth_file),
    OPT("--cacert=%s", cacert),
    OPT("cacert=%s", cacert),
    OPT("--proxy=%s", proxy),
    OPT("proxy=%s", proxy),
    OPT("--api-auth-insecure", api_auth_insecure),
    OPT("api-auth-insecure", api_auth_insecure),
    OPT("--write-through", write_through),
    OPT("write-through", write_through),
    OPT("--store-size=%s", store_size),
    OPT("store-size=%s", store_size),
    OPT("--sync-ahead=%s", sync_ahead),
    OPT("sync-ahead=%s", sync_ahead),
    OPT("--unmount-wait=%s", unmount_wait_arg),
    OPT("unmount-wait=%s", unmount_wait_arg),
    OPT("--store=%s", store),
    OPT("store=%s", store),
    OPT("--ipns", ipns),
    OPT("ipns", ipns),
    FUSE_OPT_KEY("--gateway=", KEY_GATEWAY),
    FUSE_OPT_KEY("gateway=", KEY_GATEWAY),
    OPT("--cluster=%s", cluster),
    OPT("cluster=%s", cluster),
    OPT("--cluster-auth-file=%s", cluster_auth_file),
    OPT("cluster-auth-file=%s", cluster_auth_file),
    OPT("--replication=%s", replication),
    OPT("replication=%s", replication),
    OPT("--replication-wait", replication_wait),
    OPT("--publish=%s", publish),
    OPT("publish=%s", publish),
    OPT("replication-wait", replication_wait),
    OPT("--chunker=%s", chunker),
    OPT("chunker=%s", chunker),
    {"--pin", offsetof(struct options, no_pin), 0},
    {"pin", offsetof(struct options, no_pin), 0},
    {"--no-pin", offsetof(struct options, no_pin), 1},
    {"no-pin", offsetof(struct options, no_pin), 1},
    /* What mount(8) and fstab add that means nothing to us. (x-systemd.NAME[=VALUE]: in
     * keep_nonopt, as fuse_opt has no template for a prefix without '='.) */
    FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("comment=", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("rw", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_END,
};

/* mount.fuse3 runs "ipfsfs SOURCE MOUNTPOINT -o ...": with two plain arguments the first is the
 * source (any word, e.g. "ipfs"), which we drop. */
/* --gateway=URL (repeatable) and -o gateway=URL1,URL2: every URL, in order. */
static int add_gateways(struct options *o, const char *list)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            if (o->n_gateways >= OPTIONS_MAX_GATEWAYS) {
                fprintf(stderr, "ipfsfs: too many gateways (at most %d)\n",
                        OPTIONS_MAX_GATEWAYS);
                return -1;
            }
            char *u = strndup(p, n);
            if (!u)
                return -1;
            o->gateways[o->n_gateways++] = u;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int keep_nonopt(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct options *o = data;
    (void)outargs;
    /* systemd's fstab options (x-systemd.automount, x-systemd.requires=UNIT, ...), which
     * mount.fuse3 passes on: a fuse_opt template matches a prefix only when it ends in '='
     * ("comment=" takes comment=ANY), so "x-systemd." would match only itself. */
    if (key == FUSE_OPT_KEY_OPT && strncmp(arg, "x-systemd.", 10) == 0) {
        o->after_gateway = 0;
        return 0; /* discarded */
    }
    if (key == KEY_GATEWAY) {
        o->after_gateway = 1;
        return add_gateways(o, strchr(arg, '=') + 1) < 0 ? -1 : 0;
    }
    /* -o gateway=URL1,URL2: libfuse splits -o at commas, so URL2 comes as an option of its
     * own. A URL right after a gateway= option is the next gateway. */
    if (key == FUSE_OPT_KEY_OPT && o->after_gateway && strstr(arg, "://"))
        return add_gateways(o, arg) < 0 ? -1 : 0;
    o->after_gateway = 0;
    if (key == FUSE_OPT_KEY_OPT &&
        (strcmp(arg, "allow_other") == 0 || strcmp(arg, "allow_root") == 0))
        o->shared = 1; /* and kept for libfuse */
    if (key != FUSE_OPT_KEY_NONOPT)
        return 1;
    o->nonopts++;
    if (o->nonopts == 1) {
        o->first_nonopt = strdup(arg);
        return 0; /* held back until we know whether a second one follows */
    }
    return 1;
}

void options_print_help(const char *progname)
{
    printf("usage: %s [options] MOUNTPOINT\n"
           "\n"
           "Mount IPFS: MOUNTPOINT/<cid>/path reads any content by its CID.\n"
           "\n"
           "ipfsfs options (each also as -o NAME[=VALUE], except --stats):\n"
           "    --api=MULTIADDR        node RPC API address (default: $IPFS_PATH/api,\n"
           "                           else /ip4/127.0.0.1/tcp/5001)\n"
           "    --timeout=SECONDS      longest wait of a read(2), stat or listing on the\n"
           "                           node, 1 to 86400 (default 30)\n"
           "    --store=DIR            where names and new blocks are kept (default: a\n"
           "                           folder per node in $XDG_DATA_HOME/ipfsfs); without\n"
           "                           --api, no node at all: the store alone, offline\n"
           "    --write-through        no local store: every change waits for the node\n"
           "                           (close(2) returns once the node has the file)\n"
           "    --gateway=URL          read content the node or the store lacks from this\n"
           "                           trustless gateway, verified (repeatable; -o\n"
           "                           gateway=URL1,URL2); without --api: no node at all\n"
           "    --ipns                 mount the IPNS namespace instead, read-only:\n"
           "                           MOUNTPOINT/<name>/path for IPNS keys and DNSLink\n"
           "                           domains, resolved by the node (or --gateway)\n"
           "    --cluster=URL          IPFS Cluster REST API that pins the names' roots\n"
           "                           (default: found when --api is a cluster peer's\n"
           "                           proxy, at its host's port 9094; off: never)\n"
           "    --cluster-auth-file=FILE  read the credentials of that REST API\n"
           "                           (basic:USER:PASS, or bearer:TOKEN) from FILE; the\n"
           "                           environment variable IPFSFS_CLUSTER_AUTH also works\n"
           "    --replication=MIN[:MAX]  replication factors of those pins (default: the\n"
           "                           cluster's; -1: every peer)\n"
           "    --replication-wait     fsync(2) also waits until the cluster has the names\n"
           "                           on MIN peers (within --timeout)\n"
           "    --publish=KEY          publish the root of the names under the node's key\n"
           "                           KEY (IPNS) after each sync: /ipns/<key's name>\n"
           "    --store-size=SIZE      past this, the local store drops its copies of file\n"
           "                           blocks the node has, a gateway store its least\n"
           "                           recently used fetched blocks (default: no limit)\n"
           "    --sync-ahead=WHEN      on, off or auto (default auto): send a large file's\n"
           "                           blocks to the node while it is written; auto is on\n"
           "                           with 4 or more CPUs\n"
           "    --unmount-wait=SECONDS how long unmount waits for the node to have every\n"
           "                           change, 0 to 86400 (default 60; what is left is\n"
           "                           sent next time)\n"
           "    --api-auth-file=FILE   read the API secret (Kubo API.Authorizations form:\n"
           "                           bearer:TOKEN or basic:USER:PASS) from FILE; the\n"
           "                           environment variable IPFSFS_API_AUTH also works\n"
           "    --api-auth-insecure    allow the API secret and the cluster's credentials\n"
           "                           over plain http to an address that is not loopback\n"
           "                           (refused by default: use https)\n"
           "    --cacert=FILE          CA certificates for an https API or gateway (default:\n"
           "                           system)\n"
           "    --proxy=URL            reach the node and the gateways through this proxy\n"
           "                           (default: none; the http_proxy and ALL_PROXY\n"
           "                           variables are never used)\n"
           "    --cache-size=SIZE      chunk cache for file data (default 256M)\n"
           "    --dir-cache=SIZE       directory listing cache (default 64M)\n"
           "    --readahead=SIZE       largest readahead window per open file (default 8M)\n"
           "    --log-level=LEVEL      error, warning, info or debug (default warning)\n"
           "    --stats                print the statistics of the mount at MOUNTPOINT and\n"
           "                           exit (an action: not an -o option)\n"
           "    --mfs-root=PATH        node MFS directory shown as the root (default /)\n"
           "    --spool-dir=DIR        where written files wait to be added (default\n"
           "                           $TMPDIR, else /var/tmp)\n"
           "    --cid-version=N        CID version of added files, 0 or 1 (default: the\n"
           "                           node's)\n"
           "    --raw-leaves           add file data as raw leaves (--no-raw-leaves: dag-pb)\n"
           "    --chunker=SPEC         chunker of added files, e.g. size-262144 (default:\n"
           "                           the node's)\n"
           "    --pin, --no-pin        pin added files (default: pinned)\n"
           "\n"
           "general options:\n"
           "    -f                     stay in the foreground (log to stderr, not syslog)\n"
           "    -d                     debug output (implies -f)\n"
           "    -s                     single-threaded\n"
           "    -o OPT[,OPT...]        mount options (see fuse(8))\n"
           "    -h, --help             print this help\n"
           "    -V, --version          print the version\n"
           "\n"
           "SIZE takes a K, M, G or T suffix (powers of 1024), optionally followed by B\n"
           "or iB.\n",
           progname);
}

int parse_size(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    default:
        return -EINVAL;
    }
    if (*end) {
        end++;
        if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0)
            end += strlen(end);
        if (*end)
            return -EINVAL;
    }
    if (shift && v > (SIZE_MAX >> shift))
        return -EINVAL;
    *out = (size_t)(v << shift);
    return 0;
}

int parse_number(const char *s, long min, long max, long *out)
{
    if (!s)
        return -EINVAL;
    const char *d = *s == '-' ? s + 1 : s;
    if (!*d || strspn(d, "0123456789") != strlen(d))
        return -EINVAL; /* strtol alone takes " 5", "+5", and stops at "5s" */
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* A whole-number option: val (NULL: not given, *out stays) must be a number from min to max;
 * else a message that names the option, the value and what it takes (what). */
/* --chunker as Kubo's chunker.FromString takes it: default, buzhash, rabin, rabin-AVG,
 * rabin-MIN-AVG-MAX, size-BYTES (BYTES > 0). The sizes' own bounds are Kubo's to check (with
 * --write-through it imports) or the store's (it takes size-BYTES only, and says so). */
static bool chunker_ok(const char *c)
{
    if (strcmp(c, "default") == 0 || strcmp(c, "buzhash") == 0 || strcmp(c, "rabin") == 0)
        return true;
    const char *p;
    unsigned want;
    if (strncmp(c, "size-", 5) == 0) {
        p = c + 5;
        want = 1;
    } else if (strncmp(c, "rabin-", 6) == 0) {
        p = c + 6;
        want = 0; /* 1 or 3 */
    } else {
        return false;
    }
    unsigned n = 0;
    for (;;) {
        size_t d = strspn(p, "0123456789");
        if (d == 0 || d > 12 || strtoull(p, NULL, 10) == 0)
            return false;
        n++;
        p += d;
        if (*p == '\0')
            break;
        if (*p != '-')
            return false;
        p++;
    }
    return want ? n == want : n == 1 || n == 3;
}

static int parse_number_opt(const char *name, const char *val, long min, long max,
                            const char *what, long *out)
{
    if (!val || parse_number(val, min, max, out) == 0)
        return 0;
    fprintf(stderr, "ipfsfs: invalid %s '%s' (%s)\n", name, val, what);
    return -1;
}

static int parse_size_opt(const char *name, const char *val, size_t def, size_t min,
                          size_t *out)
{
    if (!val) {
        *out = def;
        return 0;
    }
    if (parse_size(val, out) < 0 || *out < min) {
        char least[48] = "";
        if (min && min % (1u << 20) == 0)
            snprintf(least, sizeof least, ", at least %zuM", min >> 20);
        else if (min && min % 1024 == 0)
            snprintf(least, sizeof least, ", at least %zuK", min >> 10);
        else if (min)
            snprintf(least, sizeof least, ", at least %zu bytes", min);
        fprintf(stderr, "ipfsfs: invalid %s '%s' (a size like 64M: a whole number with an "
                        "optional K, M, G or T suffix%s)\n", name, val, least);
        return -1;
    }
    return 0;
}

/* An absolute MFS path in place, cleaned as Kubo cleans it (Go's path.Clean): "//dd/",
 * "/dd/." and "/dd/../dd" are "/dd". The default store's name, and so the refusal of a
 * second mount of one folder, follow the spelling: one folder, one spelling. */
static void clean_mfs_path(char *p)
{
    size_t w = 1; /* p[0] is '/' */
    const char *r = p + 1;
    while (*r) {
        size_t n = strcspn(r, "/");
        if (n == 0 || (n == 1 && r[0] == '.')) {
            /* an empty or "." component: skipped */
        } else if (n == 2 && r[0] == '.' && r[1] == '.') {
            while (w > 1 && p[w - 1] != '/')
                w--;
            if (w > 1)
                w--; /* the '/' before the component dropped */
        } else {
            if (w > 1)
                p[w++] = '/';
            memmove(p + w, r, n);
            w += n;
        }
        r += n;
        if (*r == '/')
            r++;
    }
    p[w] = '\0';
}

int options_parse(struct fuse_args *args, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->timeout = 30;
    o->unmount_wait = 60;
    o->cid_version = -1;
    o->raw_leaves = -1;
    if (fuse_opt_parse(args, o, option_table, keep_nonopt) == -1)
        return -1;
    if (o->nonopts == 1 && o->first_nonopt) {
        /* Only a mountpoint: give it back to libfuse. */
        if (fuse_opt_add_arg(args, o->first_nonopt) != 0)
            return -1;
    } else if (o->nonopts > 2) {
        fprintf(stderr, "ipfsfs: too many arguments (expected [SOURCE] MOUNTPOINT)\n");
        return -1;
    }
    long timeout = o->timeout, unmount_wait = o->unmount_wait, cid_version = o->cid_version;
    if (parse_number_opt("--timeout", o->timeout_arg, 1, 86400,
                         "a whole number of seconds from 1 to 86400", &timeout) < 0 ||
        parse_number_opt("--unmount-wait", o->unmount_wait_arg, 0, 86400,
                         "a whole number of seconds from 0 to 86400", &unmount_wait) < 0 ||
        /* Given, 0 or 1 (not given: -1, the node's setting) */
        parse_number_opt("--cid-version", o->cid_version_arg, 0, 1, "0 or 1", &cid_version) < 0)
        return -1;
    o->timeout = (unsigned)timeout;
    o->unmount_wait = (unsigned)unmount_wait;
    o->cid_version = (int)cid_version;
    o->sync_ahead_mode = -1;
    if (o->sync_ahead) {
        if (strcmp(o->sync_ahead, "on") == 0)
            o->sync_ahead_mode = 1;
        else if (strcmp(o->sync_ahead, "off") == 0)
            o->sync_ahead_mode = 0;
        else if (strcmp(o->sync_ahead, "auto") != 0) {
            fprintf(stderr, "ipfsfs: --sync-ahead must be on, off or auto\n");
            return -1;
        }
        if (o->write_through || o->ipns || (!o->api && (o->store || o->n_gateways))) {
            fprintf(stderr, "ipfsfs: --sync-ahead is about the local-first mount's pushes to "
                            "a node: it goes with --api, not with %s\n",
                    o->write_through ? "--write-through" : o->ipns ? "--ipns"
                                                                   : "a mount without a node");
            return -1;
        }
    }
    if (o->chunker && !chunker_ok(o->chunker)) {
        fprintf(stderr, "ipfsfs: --chunker=%s: not a chunker Kubo knows (size-BYTES, rabin, "
                        "rabin-AVG, rabin-MIN-AVG-MAX, buzhash or default)\n", o->chunker);
        return -1;
    }
    if (o->write_through && o->store) {
        fprintf(stderr, "ipfsfs: --write-through keeps no local store: it cannot go with "
                        "--store\n");
        return -1;
    }
    if (o->ipns) {
        /* The options of writing (before their defaults are filled in below). */
        const char *w = o->write_through       ? "--write-through"
                        : o->mfs_root          ? "--mfs-root"
                        : o->spool_dir         ? "--spool-dir"
                        : o->cid_version_arg   ? "--cid-version"
                        : o->raw_leaves >= 0   ? (o->raw_leaves ? "--raw-leaves" : "--no-raw-leaves")
                        : o->chunker           ? "--chunker"
                        : o->no_pin            ? "--no-pin"
                                               : NULL;
        if (w) {
            fprintf(stderr, "ipfsfs: --ipns is read-only: %s is about writing, it means "
                            "nothing there\n", w);
            return -1;
        }
    }
    if (o->ipns && o->store && !o->api && !o->n_gateways) {
        fprintf(stderr, "ipfsfs: --ipns needs a node (--api) or --gateway to resolve names\n");
        return -1;
    }
    if (o->replication &&
        cluster_parse_replication(o->replication, &o->rep_min, &o->rep_max) < 0) {
        fprintf(stderr, "ipfsfs: invalid --replication '%s' (MIN or MIN:MAX, counts of peers "
                        "with MIN <= MAX, or -1 for every peer)\n", o->replication);
        return -1;
    }
    bool cluster_off = o->cluster && strcmp(o->cluster, "off") == 0;
    if ((o->replication || o->replication_wait || o->cluster_auth_file ||
         (o->cluster && !cluster_off)) &&
        (o->write_through || o->ipns || (!o->api && (o->store || o->n_gateways)))) {
        fprintf(stderr, "ipfsfs: --cluster, --cluster-auth-file, --replication and "
                        "--replication-wait pin what the local-first mount pushes to a node: "
                        "they go with --api, not with %s\n",
                o->write_through ? "--write-through" : o->ipns ? "--ipns"
                                                               : "a mount without a node");
        return -1;
    }
    if (o->publish && (o->write_through || o->ipns || (!o->api && (o->store || o->n_gateways)))) {
        fprintf(stderr, "ipfsfs: --publish publishes what the local-first mount pushes to a node "
                        "under one of its keys: it goes with --api, not with %s\n",
                o->write_through ? "--write-through" : o->ipns ? "--ipns"
                                                               : "a mount without a node");
        return -1;
    }
    if (o->publish && (!*o->publish || strlen(o->publish) > 255)) {
        fprintf(stderr, "ipfsfs: --publish needs the name of one of the node's keys "
                        "(ipfs key list)\n");
        return -1;
    }
    if ((o->replication || o->replication_wait) && cluster_off) {
        fprintf(stderr, "ipfsfs: --replication and --replication-wait need the cluster "
                        "(--cluster=off)\n");
        return -1;
    }
    if (parse_size_opt("--cache-size", o->cache_size, 256u << 20, 1u << 20, &o->cache_bytes) < 0 ||
        parse_size_opt("--dir-cache", o->dir_cache, 64u << 20, 64u << 10, &o->dircache_bytes) < 0 ||
        parse_size_opt("--readahead", o->readahead, 8u << 20, 0, &o->readahead_bytes) < 0 ||
        parse_size_opt("--store-size", o->store_size, 0, 1u << 20, &o->store_bytes) < 0)
        return -1;
    if (!o->mfs_root)
        o->mfs_root = strdup("/");
    if (!o->mfs_root || o->mfs_root[0] != '/') {
        fprintf(stderr, "ipfsfs: --mfs-root must be an absolute MFS path such as /photos\n");
        return -1;
    }
    clean_mfs_path(o->mfs_root);
    o->spool_dir_from = "--spool-dir";
    if (!o->spool_dir) {
        const char *t = getenv("TMPDIR");
        o->spool_dir = strdup(t && *t ? t : "/var/tmp");
        if (!o->spool_dir)
            return -1;
        o->spool_dir_from = t && *t ? "$TMPDIR" : "the default";
    }
    if (o->log_level && strcmp(o->log_level, "error") && strcmp(o->log_level, "warning") &&
        strcmp(o->log_level, "info") && strcmp(o->log_level, "debug")) {
        fprintf(stderr, "ipfsfs: --log-level must be error, warning, info or debug\n");
        return -1;
    }
    /* A scheme curl takes for a proxy (none: http); another (ftp://) would only fail at the
     * first request, and pass for a node that is down. */
    const char *sep = o->proxy ? strstr(o->proxy, "://") : NULL;
    if (sep) {
        static const char *const schemes[] = {"http",   "https",  "socks4",
                                               "socks4a", "socks5", "socks5h"};
        size_t n = (size_t)(sep - o->proxy);
        bool known = false;
        for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
            known |= strlen(schemes[i]) == n && strncasecmp(o->proxy, schemes[i], n) == 0;
        if (!known) {
            fprintf(stderr, "ipfsfs: invalid --proxy scheme (http://, https://, socks4://, "
                            "socks4a://, socks5:// or socks5h://)\n");
            return -1;
        }
    }
    return 0;
}

void options_free(struct options *o)
{
    free(o->api);
    free(o->cache_size);
    free(o->dir_cache);
    free(o->readahead);
    free(o->log_level);
    free(o->mfs_root);
    free(o->spool_dir);
    free(o->chunker);
    free(o->first_nonopt);
    free(o->timeout_arg);
    free(o->unmount_wait_arg);
    free(o->cid_version_arg);
    free(o->api_auth_file);
    free(o->cacert);
    free(o->store);
    free(o->cluster);
    free(o->cluster_auth_file);
    free(o->replication);
    free(o->publish);
    free(o->store_size);
    free(o->sync_ahead);
    for (size_t i = 0; i < o->n_gateways; i++)
        free(o->gateways[i]);
    if (o->proxy)
        explicit_bzero(o->proxy, strlen(o->proxy)); /* it may hold a password */
    free(o->proxy);
}

/* Refused at startup rather than found at the first write: a spool that cannot be made fails
 * that write with EIO (writer.c cannot tell the application why), and every one after it. */
int options_check_spool_dir(const struct options *o)
{
    const char *dir = o->spool_dir;
    struct stat st;
    const char *why = NULL;
    char buf[128];
    if (stat(dir, &st) != 0) {
        int e = errno;
        snprintf(buf, sizeof buf, "cannot be reached (%s)", strerror(e));
        why = e == ENOENT ? "does not exist" : e == ENOTDIR ? "is not a directory" : buf;
    } else if (!S_ISDIR(st.st_mode)) {
        why = "is not a directory";
    }
    if (!why) {
        /* Made as the writer makes a spool, so that what passes here works there. */
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/ipfsfs-spool-XXXXXX", dir);
            fd = mkostemp(path, O_CLOEXEC);
            if (fd >= 0)
                unlink(path);
        }
        if (fd < 0) {
            int e = errno;
            snprintf(buf, sizeof buf, "cannot take a file (%s)", strerror(e));
            why = e == EACCES || e == EPERM || e == EROFS ? "is not writable" : buf;
        } else {
            close(fd);
        }
    }
    if (!why)
        return 0;
    fprintf(stderr, "ipfsfs: the spool directory %s (from %s) %s: written files wait there "
                    "until they are added (give --spool-dir=DIR)\n",
            dir, o->spool_dir_from ? o->spool_dir_from : "--spool-dir", why);
    return -1;
}

static char *read_api_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    return n ? strdup(buf) : NULL;
}

char *read_secret(const char *file, const char *env)
{
    char *e = getenv(env);
    char *s = NULL;
    int saved = 0;
    if (file) {
        FILE *f = fopen(file, "r");
        saved = errno;
        if (f) {
            char buf[4096];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            saved = ferror(f) ? EIO : 0;
            fclose(f);
            buf[n] = '\0';
            while (n > 0 && isspace((unsigned char)buf[n - 1]))
                buf[--n] = '\0';
            s = n ? strdup(buf) : NULL;
            if (n && !s)
                saved = ENOMEM;
            explicit_bzero(buf, sizeof buf);
        }
    } else if (e && *e) {
        s = strdup(e);
    }
    /* Also when the file won: an unused secret is still a secret. */
    drop_secret_env(env);
    errno = saved; /* for a file: 0 when it was empty */
    return s;
}

void drop_secret_env(const char *env)
{
    /* Wipe the original (unsetenv alone leaves it), so /proc/PID/environ no longer shows it. */
    char *e = getenv(env);
    if (e)
        explicit_bzero(e, strlen(e));
    unsetenv(env);
}

char *discover_api(const char *explicit_api, const char **source)
{
    if (explicit_api) {
        *source = "--api";
        return strdup(explicit_api);
    }
    char path[4096];
    const char *ipfs_path = getenv("IPFS_PATH");
    const char *home = getenv("HOME");
    if (ipfs_path && *ipfs_path)
        snprintf(path, sizeof path, "%s/api", ipfs_path);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.ipfs/api", home);
    else
        path[0] = '\0';
    if (path[0]) {
        char *ma = read_api_file(path);
        if (ma) {
            *source = ipfs_path && *ipfs_path ? "$IPFS_PATH/api" : "~/.ipfs/api";
            return ma;
        }
    }
    *source = "the default address";
    return strdup("/ip4/127.0.0.1/tcp/5001");
}

/* main.c - ipfsfs: options, node discovery, mount, daemonize, run. */
#include "config.h"

#include "fs.h"
#include "cluster.h"
#include "gateway.h"
#include "importer.h"
#include "ipns.h"
#include "log.h"
#include "multiaddr.h"
#include "node_rpc.h"
#include "node_fallback.h"
#include "node_ipns.h"
#include "node_later.h"
#include "node_local.h"
#include "node_store.h"
#include "options.h"
#include "rpcjson.h"
#include "sync.h"

#include <ctype.h>
#include <errno.h>
#include <linux/fuse.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <stdbool.h>

/* The mount's statistics (ipfsfs --stats), read by a child process: a mount whose daemon is
 * stopped or hung never answers, and the tool one reaches for then must not hang too. After
 * timeout_s the child is killed (a FUSE request waits killably) and we say so. */
/* After the mount's loop ended (a signal, or fusermount3 -u), another SIGINT, SIGTERM or
 * SIGHUP cuts the unmount's wait for the node short (sync_set_cut_flag), not the process. */
static atomic_int teardown_signal; /* lock-free (checked below): safe in a handler */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "a signal handler stores an atomic_int");

static void on_teardown_signal(int sig)
{
    atomic_store(&teardown_signal, sig);
}

static void catch_teardown_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_teardown_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sync_set_cut_flag(&teardown_signal);
}

static int print_stats(const char *mountpoint, unsigned timeout_s)
{
    char buf[16384 + sizeof(int)];
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        fprintf(stderr, "ipfsfs: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ipfsfs: fork: %s\n", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return 1;
    }
    if (pid == 0) { /* the child: errno (0 or the failure's), then the bytes */
        close(pfd[0]);
        ssize_t n = getxattr(mountpoint, "user.ipfsfs.stats", buf + sizeof(int),
                             sizeof buf - sizeof(int) - 1);
        int err = n < 0 ? errno : 0;
        memcpy(buf, &err, sizeof err);
        size_t len = sizeof err + (n > 0 ? (size_t)n : 0);
        for (size_t off = 0; off < len;) {
            ssize_t w = write(pfd[1], buf + off, len - off);
            if (w <= 0)
                _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    close(pfd[1]);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t got = 0;
    bool timed_out = false;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = (long long)timeout_s * 1000 - ((long long)(now.tv_sec - t0.tv_sec) * 1000 +
                                                        (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int pr = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        ssize_t r = read(pfd[0], buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        fprintf(stderr,
                "ipfsfs: no statistics from %s within %u s (--timeout): its ipfsfs process "
                "does not answer (stopped or hung?)\n",
                mountpoint, timeout_s);
        return 1;
    }
    int err = EIO;
    if (got >= sizeof err)
        memcpy(&err, buf, sizeof err);
    if (got < sizeof err || err != 0) {
        fprintf(stderr, "ipfsfs: cannot read statistics of %s: %s (is it an ipfsfs mount?)\n",
                mountpoint, strerror(err));
        return 1;
    }
    fwrite(buf + sizeof err, 1, got - sizeof err, stdout);
    return 0;
}

/* Mounting over a mount hides it and confuses everyone: refuse. */
static bool already_mounted(const char *mnt)
{
    struct stat a, b;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/..", mnt);
    if (stat(mnt, &a) != 0) {
        /* A dead FUSE mount answers ENOTCONN: that is a mount point too. */
        return errno == ENOTCONN;
    }
    if (stat(parent, &b) != 0)
        return false;
    return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

/* The kernel caps a FUSE mount's readahead at 128 KiB whatever INIT asks for; the block device
 * info (bdi) of the mount can be raised by root. 1 MiB matches the largest FUSE request and
 * lets the kernel keep several requests in flight: on the test machine it brought a cold
 * sequential read from ~0.55 to ~0.95 of curl's speed. Best effort: silently skipped when
 * not permitted. */
static void tune_kernel_readahead(const char *mnt, unsigned kb)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return;
    char line[8192], dev[64] = "";
    while (fgets(line, sizeof line, f)) {
        /* id parent major:minor root mountpoint ... */
        char majmin[64], root[4096], point[4096];
        if (sscanf(line, "%*s %*s %63s %4095s %4095s", majmin, root, point) != 3)
            continue;
        /* Unescape \ooo (spaces and such) in the mount point. */
        char *w = point;
        for (const char *r = point; *r; r++) {
            if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
                *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
                r += 3;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        if (strcmp(point, mnt) == 0)
            snprintf(dev, sizeof dev, "%s", majmin);
    }
    fclose(f);
    if (!dev[0])
        return;
    char path[256];
    snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
    f = fopen(path, "w");
    if (!f) {
        log_debug("cannot raise the kernel readahead (%s): %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%u\n", kb);
    if (fclose(f) == 0)
        log_debug("kernel readahead of %s set to %u KiB", mnt, kb);
}

static enum log_level level_from(const char *s, int debug)
{
    if (debug || (s && strcmp(s, "debug") == 0))
        return LOG_LVL_DEBUG;
    if (!s || strcmp(s, "warning") == 0)
        return LOG_LVL_WARN;
    if (strcmp(s, "info") == 0)
        return LOG_LVL_INFO;
    return LOG_LVL_ERR;
}

/* The IPFS Cluster REST API this mount pins through, into buf: 1 (one), 0 (none), or -1 after a
 * message. --cluster=URL names it (off: none); else, when the API answers as a cluster peer's
 * proxy, it is the REST API on the same host, at the cluster's default port 9094. */
static int cluster_url(const struct options *o, const struct api_endpoint *ep,
                       const char *store_dir, char *buf, size_t len)
{
    bool need = o->replication || o->replication_wait;
    if (o->cluster) {
        if (strcmp(o->cluster, "off") == 0)
            return 0;
        snprintf(buf, len, "%s", o->cluster);
        return 1;
    }
    int p = ep->unix_path ? 0 : cluster_probe_proxy(ep->base_url, 3000);
    if (p < 0) {
        /* The proxy does not answer now (a boot where ipfsfs comes first): a mount that asks
         * for replication, or whose store pinned through a cluster before, keeps doing so. */
        char state[PATH_MAX + 16];
        snprintf(state, sizeof state, "%s/cluster-pins", store_dir);
        if (need || access(state, F_OK) == 0) {
            p = 1;
            fprintf(stderr, "ipfsfs: warning: %s does not answer now; taking it for a cluster "
                            "peer's proxy (pins wait until it answers)\n", ep->base_url);
        }
    }
    if (p == 1) {
        /* http://HOST:PORT -> http://HOST:9094 (HOST may be [v6]) */
        const char *h = strstr(ep->base_url, "://");
        h = h ? h + 3 : ep->base_url;
        const char *end = h[0] == '[' ? strchr(h, ']') : NULL;
        const char *colon = strrchr(end ? end : h, ':');
        size_t n = colon ? (size_t)(colon - ep->base_url) : strlen(ep->base_url);
        snprintf(buf, len, "%.*s:9094", (int)n, ep->base_url);
        return 1;
    }
    if (need) {
        fprintf(stderr, "ipfsfs: --replication and --replication-wait need IPFS Cluster: point "
                        "--api at a cluster peer's proxy (/ip4/127.0.0.1/tcp/9095), or name its "
                        "REST API with --cluster=URL\n");
        return -1;
    }
    return 0;
}

/* The store of a local-first mount, one per node and MFS directory:
 * $XDG_DATA_HOME/ipfsfs/<host_port>[--<mfs root>-<hash>], else ~/.local/share/ipfsfs/..., else (for
 * root) /var/lib/ipfsfs/... */
/* --write-through: the names live under root in the node's MFS; make it (and what is missing
 * above it) when it is not there, as a local-first mount's first push does. */
static int ensure_mfs_root(struct node *n, const char *root, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t len = strlen(root);
    if (len >= sizeof path) {
        snprintf(err, errlen, "%s", strerror(ENAMETOOLONG));
        return -ENAMETOOLONG;
    }
    for (size_t i = 2; i <= len; i++) { /* "/" itself always is */
        if (i < len && root[i] != '/')
            continue;
        memcpy(path, root, i);
        path[i] = '\0';
        if (i > 1 && path[i - 1] == '/')
            continue; /* "a//b", or a trailing slash */
        struct node_stat st;
        struct cid c;
        int rc = n->ops->mfs_stat(n, path, &st, &c);
        if (rc == 0) {
            enum node_kind kind = st.kind;
            node_stat_clear(&st);
            if (kind == NODE_DIR)
                continue;
            snprintf(err, errlen, "%.300s is not a directory on the node", path);
            return -ENOTDIR;
        }
        if (rc != -ENOENT)
            return 0; /* the node cannot tell now: each call will say what it says */
        rc = n->ops->mfs_mkdir(n, path);
        if (rc < 0) {
            snprintf(err, errlen, "cannot make %.300s on the node: %s", path, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static int default_store_dir(const char *url, const char *mfs_root, char *out, size_t len)
{
    char base[PATH_MAX], id[256];
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(base, sizeof base, "%s/ipfsfs", xdg);
    else if (home && home[0] == '/')
        snprintf(base, sizeof base, "%s/.local/share/ipfsfs", home);
    else if (geteuid() == 0)
        snprintf(base, sizeof base, "/var/lib/ipfsfs");
    else
        return -ENOENT;
    /* The node's address and the MFS path, as one safe file name. */
    const char *u = strstr(url, "://");
    u = u ? u + 3 : url;
    size_t n = 0;
    for (const char *p = u; *p && n < 120; p++)
        id[n++] = isalnum((unsigned char)*p) || *p == '.' || *p == '-' ? *p : '_';
    while (n && id[n - 1] == '_')
        n--;
    /* "/" adds nothing; "/photos/2024" adds "--photos_2024-" and a hash of the exact path
     * (so that "/a/b" and "/a_b" never share a store). */
    if (strcmp(mfs_root, "/") != 0) {
        uint32_t h = 2166136261u;
        for (const char *p = mfs_root; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        id[n++] = '-';
        id[n++] = '-';
        for (const char *p = mfs_root + 1; *p && n < 200; p++)
            id[n++] = isalnum((unsigned char)*p) || *p == '.' || *p == '-' ? *p : '_';
        n += (size_t)snprintf(id + n, sizeof id - n, "-%08x", h);
    }
    id[n] = 0;
    /* Create the parents (0700: the names are private); the store makes its own folder. */
    for (char *q = base + 1; (q = strchr(q, '/')); q++) {
        *q = 0;
        if (mkdir(base, 0700) < 0 && errno != EEXIST)
            return -errno;
        *q = '/';
    }
    if (mkdir(base, 0700) < 0 && errno != EEXIST)
        return -errno;
    int k = snprintf(out, len, "%s/%s", base, id);
    return k < 0 || (size_t)k >= len ? -ENAMETOOLONG : 0;
}

/* fuse_session_custom_io came in libfuse 3.13. */
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 13) && FUSE_VERSION < FUSE_MAKE_VERSION(3, 17)
/* libfuse before 3.17 never passes FUSE_PARALLEL_DIROPS to the kernel, whatever fs_init wants
 * (fixed by libfuse commit c9905341, "Pass FUSE_PARALLEL_DIROPS to kernel"). The kernel then
 * serializes all lookups in one directory: 24 stats of missing CIDs at the root took 5.5 s,
 * 7 s, 8.5 s, ... 40 s, one after the other. Nor does 3.14 pass FUSE_HANDLE_KILLPRIV, nor know
 * FUSE_HANDLE_KILLPRIV_V2 (fs_init says why we want them). These wrappers of the device I/O set
 * the flags in our INIT reply when the kernel offered them, as libfuse 3.17 does. The kill flag
 * v2 adds to SETATTR (FATTR_KILL_SUIDGID) reaches fs_setattr as FUSE_SET_ATTR_KILL_SUID, which
 * drops it; libfuse 3.14 ignores the ones on OPEN and WRITE. There is never a bit to kill. */
#ifndef FUSE_HANDLE_KILLPRIV_V2
#define FUSE_HANDLE_KILLPRIV_V2 (1 << 28) /* linux/fuse.h 7.33 */
#endif
#define INIT_ADDED (FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2)
static _Atomic uint64_t init_unique;  /* the INIT request being answered; 0: none */
static _Atomic uint32_t init_offered; /* of INIT_ADDED, what the kernel offered */

static ssize_t dev_read(int fd, void *buf, size_t len, void *ud)
{
    (void)ud;
    ssize_t n = read(fd, buf, len);
    if (n >= (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in))) {
        const struct fuse_in_header *in = buf;
        if (in->opcode == FUSE_INIT) {
            const struct fuse_init_in *arg = (const void *)(in + 1);
            atomic_store(&init_offered, arg->flags & INIT_ADDED);
            atomic_store(&init_unique, in->unique);
        }
    }
    return n;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *ud)
{
    (void)ud;
    uint64_t u = atomic_load(&init_unique);
    if (u && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
        iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
        const struct fuse_out_header *out = iov[0].iov_base;
        if (out->unique == u) {
            struct fuse_init_out *arg = iov[1].iov_base;
            if (out->error == 0)
                arg->flags |= atomic_load(&init_offered);
            atomic_store(&init_unique, 0);
        }
    }
    return writev(fd, iov, count);
}

static void want_parallel_dirops(struct fuse_session *se)
{
    static const struct fuse_custom_io io = {.writev = dev_writev, .read = dev_read};
    if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0)
        log_warn("libfuse %s: lookups in one directory will run one at a time",
                 fuse_pkgversion());
}
#else
static void want_parallel_dirops(struct fuse_session *se)
{
    (void)se; /* fs_init asks libfuse for it */
}
#endif

/* Whether the local-first store in dir has synced with its node before (DIR/synced). */
static bool synced_before(const char *dir, const char *url, char *was, size_t waslen)
{
    char p[PATH_MAX];
    was[0] = '\0';
    if (!dir)
        return false;
    int n = snprintf(p, sizeof p, "%s/synced", dir);
    if (n < 0 || (size_t)n >= sizeof p || access(p, F_OK) != 0)
        return false;
    /* The address it synced with (DIR/node-address, written at each mount the node answered;
     * a store made before it was kept has none: taken as this one). */
    n = snprintf(p, sizeof p, "%s/node-address", dir);
    if (n < 0 || (size_t)n >= sizeof p)
        return true;
    FILE *f = fopen(p, "r");
    if (!f)
        return true;
    bool same = fgets(was, (int)waslen, f) && (was[strcspn(was, "\n")] = '\0', 1) &&
                strcmp(was, url) == 0;
    fclose(f);
    if (same)
        was[0] = '\0';
    return same;
}

/* Write text to DIR/name whole or not at all (a temporary file renamed over it). Best effort:
 * what it keeps are hints for a later mount. */
static void store_note(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX], tmp[PATH_MAX + 8];
    int n = dir ? snprintf(p, sizeof p, "%s/%s", dir, name) : -1;
    if (n < 0 || (size_t)n >= sizeof p)
        return;
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputs(text, f);
    if (fclose(f) != 0 || rename(tmp, p) != 0)
        unlink(tmp);
}

static void node_address_save(const char *dir, const char *url)
{
    char line[1100];
    snprintf(line, sizeof line, "%s\n", url);
    store_note(dir, "node-address", line);
}

/* The node's Import settings, kept in the store (DIR/import-settings) for the mounts made while
 * the node does not answer: "cid_version raw_leaves chunker max_links hamt_estimate" (-1, "-"
 * and 0: not set; the estimate "links" or "block"; a file without it: "links"). */
static void import_settings_save(const char *dir, const struct import_config *ic)
{
    char line[128];
    snprintf(line, sizeof line, "%d %d %s %u %s\n", ic->cid_version, ic->raw_leaves,
             ic->chunker[0] ? ic->chunker : "-", ic->file_max_links,
             ic->hamt_block ? "block" : "links");
    store_note(dir, "import-settings", line);
}

static bool import_settings_load(const char *dir, struct import_config *ic)
{
    char p[PATH_MAX], ch[64], est[16] = "";
    memset(ic, 0, sizeof *ic);
    if (!dir || snprintf(p, sizeof p, "%s/import-settings", dir) >= (int)sizeof p)
        return false;
    FILE *f = fopen(p, "r");
    if (!f)
        return false;
    int n = fscanf(f, "%d %d %63s %u %15s", &ic->cid_version, &ic->raw_leaves, ch,
                   &ic->file_max_links, est);
    ic->hamt_block = n >= 5 && strcmp(est, "block") == 0;
    bool ok = n >= 3 && ic->cid_version >= -1 && ic->cid_version <= 1 && ic->raw_leaves >= -1 &&
              ic->raw_leaves <= 1;
    if (n < 4 || ic->file_max_links == 1 || ic->file_max_links > IMPORT_MAX_LINKS_CAP)
        ic->file_max_links = 0;
    fclose(f);
    if (ok && strcmp(ch, "-") != 0)
        snprintf(ic->chunker, sizeof ic->chunker, "%s", ch);
    return ok;
}

/* Local-first: this mount imports files itself, so it must make the CIDs `ipfs add` makes on the
 * node, whose Import settings may differ from Kubo's defaults (Import.CidVersion 1, a profile
 * such as unixfs-v1-2025). They become the defaults of --cid-version, --raw-leaves and
 * --chunker when those are not given, and UnixFSFileMaxLinks the importer's links per node
 * (from the store's copy when the node does not answer). A setting that changes every file's
 * CID and that the importer does not follow refuses the mount; one that changes only large
 * directories' CIDs (the HAMT settings) is warned about. -1: refuse (said). */
static int node_import_defaults(struct options *o, const struct rpc_config *rcfg, bool reachable,
                                const char *dir, struct import_config *ic, bool *from_node)
{
    char err[512];
    *from_node = false;
    struct rpc *r = NULL;
    int rc = -ENOTCONN;
    if (reachable && (rc = rpc_new(rcfg, &r)) == 0)
        rc = node_rpc_import_config(r, ic, err, sizeof err);
    else
        snprintf(err, sizeof err, "%s", strerror(-rc));
    rpc_free(r);
    if (rc < 0 && reachable && strstr(err, "Import not found")) {
        /* a config with no Import section at all: every setting is the default */
        memset(ic, 0, sizeof *ic);
        ic->cid_version = ic->raw_leaves = -1;
        rc = 0;
    }
    if (rc == 0) {
        *from_node = true;
    } else {
        bool kept = import_settings_load(dir, ic);
        if (reachable)
            fprintf(stderr, "ipfsfs: warning: cannot read the node's Import settings (%s): %s\n",
                    err, kept ? "using the ones the store kept from an earlier mount"
                              : "using Kubo's defaults");
        if (!kept)
            return 0;
    }
    /* An option given beats the node's setting, as for ipfs add. */
    if (o->cid_version >= 0 && strncmp(ic->refused, "Import.CidVersion=", 18) == 0)
        ic->refused[0] = '\0';
    struct import_opts io;
    if (!ic->refused[0] && !o->chunker && ic->chunker[0] &&
        import_opts_from(&(struct node_add_opts){.cid_version = -1, .raw_leaves = -1,
                                                 .chunker = ic->chunker},
                         &io) < 0)
        snprintf(ic->refused, sizeof ic->refused, "Import.UnixFSChunker=%.64s", ic->chunker);
    if (ic->refused[0]) {
        fprintf(stderr,
                "ipfsfs: the node's %s: files imported here could not get the CIDs `ipfs add` "
                "gives there (this mount imports them itself). Mount with --write-through "
                "(the node imports), or change that setting.\n",
                ic->refused);
        return -1;
    }
    if (ic->differs[0])
        fprintf(stderr,
                "ipfsfs: warning: the node's %s: not followed, so a directory of very many "
                "names made here may get another CID than `ipfs add -r` gives there "
                "(--write-through: the node makes them)\n",
                ic->differs);
    if (o->cid_version < 0)
        o->cid_version = ic->cid_version;
    if (o->raw_leaves < 0)
        o->raw_leaves = ic->raw_leaves;
    o->file_max_links = ic->file_max_links;
    if (!o->chunker && ic->chunker[0] && !(o->chunker = strdup(ic->chunker))) {
        fprintf(stderr, "ipfsfs: out of memory\n");
        return -1;
    }
    return 0;
}

/* Wipe and free a secret read by read_secret. */
static void free_secret(char **s)
{
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* What libfuse says while check_fuse_args runs. It writes an unknown option's message in
 * pieces ("unknown option(s): `", then each option, then "'\n"), and our log bridge would make
 * a line of each piece: gathered here, it is one. */
static char fuse_said[1024];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* libfuse's own format strings */
static void gather_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
    /* Its debug lines (-d: the library's version) come again from the session that mounts. */
    if (level > FUSE_LOG_WARNING)
        return;
    size_t n = strlen(fuse_said);
    if (n + 1 < sizeof fuse_said)
        vsnprintf(fuse_said + n, sizeof fuse_said - n, fmt, ap);
}
#pragma GCC diagnostic pop

/* The options ipfsfs does not know go to libfuse (mount options such as -o allow_other, ro,
 * default_permissions), and only fuse_session_new tells whether it knows them. The session
 * that mounts needs the filesystem, which needs the node: made that late, a typo was reported
 * after the node was contacted (or as "no IPFS node answers" when none was up) and after a new
 * store was created. So a session is made on a copy of the arguments, and dropped, before
 * anything else. 0, or -1 after a message of one line. */
static int check_fuse_args(const struct fuse_args *args)
{
    struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
    for (int i = 0; i < args->argc; i++) {
        if (fuse_opt_add_arg(&copy, args->argv[i]) != 0) {
            fuse_opt_free_args(&copy);
            fprintf(stderr, "ipfsfs: out of memory\n");
            return -1;
        }
    }
    fuse_said[0] = '\0';
    fuse_set_log_func(gather_fuse_log);
    struct fuse_session *se = fuse_session_new(&copy, &fs_ops, sizeof fs_ops, NULL);
    fuse_set_log_func(NULL); /* libfuse's own (stderr) until log_init */
    fuse_opt_free_args(&copy); /* a no-op when fuse_session_new freed it */
    if (se) {
        fuse_session_destroy(se);
        return 0;
    }
    /* "fuse: unknown option(s): `--bogus'\n" -> "unknown option(s): `--bogus'" */
    char *m = fuse_said;
    if (strncmp(m, "fuse: ", 6) == 0)
        m += 6;
    for (char *p = m; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = ' ';
    size_t n = strlen(m);
    while (n > 0 && m[n - 1] == ' ')
        m[--n] = '\0';
    fprintf(stderr, "ipfsfs: %s (ipfsfs --help lists the options)\n",
            *m ? m : "libfuse refuses the options");
    return -1;
}

/* node_later's way to reach the node once it answers. */
static int connect_rpc(void *ud, struct node **out, char *err, size_t errlen)
{
    return node_rpc_new(ud, out, err, errlen);
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts fo;
    struct options o;
    struct api_endpoint ep = {0};
    struct rpc_config rcfg = {0}; /* outlives the node: a node_later reconnects with it */
    struct node *node = NULL;
    struct gw *gw = NULL; /* outlives the node: its store's fetch hook */
    char times_path[PATH_MAX + 16] = ""; /* names' change times, in the store's folder */
    int rc;
    struct fs *fs = NULL;
    struct fuse_session *se = NULL;
    char *api = NULL;
    char *secret = NULL;
    char *cluster_secret = NULL; /* the cluster REST API's credentials */
    int ret = 1;
    bool mounted = false;
    memset(&fo, 0, sizeof fo);

    if (options_parse(&args, &o) < 0)
        goto out_args;
    const char *mfs_root = o.mfs_root;
    if (o.stats) {
        /* The mount point as given (the last argument that is no option): fuse_parse_cmdline
         * would resolve it first, and say "fuse: bad mount point" of one that is missing. */
        const char *mp = NULL;
        for (int i = 1; i < args.argc; i++) {
            if (strcmp(args.argv[i], "-o") == 0)
                i++;
            else if (args.argv[i][0] != '-')
                mp = args.argv[i];
        }
        if (mp) {
            ret = print_stats(mp, o.timeout);
            goto out_args;
        }
    }
    if (fuse_parse_cmdline(&args, &fo) != 0)
        goto out_args;
    if (fo.show_help) {
        options_print_help(argv[0]);
        printf("\nFUSE options:\n");
        fuse_lowlevel_help();
        ret = 0;
        goto out_args;
    }
    if (fo.show_version) {
        /* Ours first, then the library we run on. Not fuse_lowlevel_version(): it runs
         * fusermount3, whose output overtook ours in a pipe (stdout is buffered). */
        printf("ipfsfs %s\nlibfuse %s\n", PACKAGE_VERSION, fuse_pkgversion());
        ret = 0;
        goto out_args;
    }
    if (!fo.mountpoint) {
        fprintf(stderr, "usage: %s [options] MOUNTPOINT (try --help)\n", argv[0]);
        goto out_args;
    }
    if (o.stats) {
        ret = print_stats(fo.mountpoint, o.timeout);
        goto out_args;
    }
    /* Defaults a careful user expects: only the mounting user sees the mount (no allow_other
     * unless asked) and the kernel checks permissions (default_permissions) wherever its checks
     * can deny anything: a mount that others may enter, or that a user other than root made.
     * A mount that only root can enter needs none: root passes every check but the execution
     * of a file with no x bit, which the kernel checks without it too (and fs_access answers
     * access(2) the same way). Without it the kernel does not read a directory's attributes
     * back after each name made or removed in it: a request fewer for each file that cp -r,
     * tar or rm -rf handle. */
    char mopts[512];
    bool perms = o.shared || geteuid() != 0;
    /* The source word of mount(8)/fstab ("ipfs") names the mount in findmnt and df. */
    const char *fsname = o.nonopts == 2 && o.first_nonopt && !strpbrk(o.first_nonopt, ",\\")
                             ? o.first_nonopt
                             : "ipfsfs";
    snprintf(mopts, sizeof mopts, "-o%sfsname=%s,subtype=ipfsfs%s",
             perms ? "default_permissions," : "", fsname, o.ipns ? ",ro" : "");
    if (fuse_opt_add_arg(&args, mopts) != 0)
        goto out_args;
    if (check_fuse_args(&args) < 0)
        goto out_args;
    if (already_mounted(fo.mountpoint)) {
        fprintf(stderr, "ipfsfs: %s is already a mount point; unmount it first "
                        "(fusermount3 -u %s)\n", fo.mountpoint, fo.mountpoint);
        goto out_args;
    }
    /* libfuse mounts on a file as well, but our root is a directory: the kernel would then
     * answer EIO for the mount point itself. */
    struct stat mst;
    if (stat(fo.mountpoint, &mst) == 0 && !S_ISDIR(mst.st_mode)) {
        fprintf(stderr, "ipfsfs: %s is not a directory: mount on a directory\n", fo.mountpoint);
        goto out_args;
    }
    /* An IPNS mount is read-only: it never spools. */
    if (!o.ipns && options_check_spool_dir(&o) < 0)
        goto out_args;
    log_init(level_from(o.log_level, fo.debug), false);
    if (o.cacert && access(o.cacert, R_OK) != 0) {
        fprintf(stderr, "ipfsfs: --cacert=%s: %s\n", o.cacert, strerror(errno));
        goto out_ep;
    }
    if (o.ipns && o.api && o.store && !o.n_gateways)
        fprintf(stderr, "ipfsfs: warning: --store is not used with --ipns and --api (the node "
                        "resolves and serves: nothing is kept locally)\n");

    char err[512];
    if (rpc_global_init() < 0) {
        fprintf(stderr, "ipfsfs: cannot initialise libcurl\n");
        goto out_ep;
    }
    if (o.n_gateways) {
        struct gw_config gcfg = {
            .urls = (const char *const *)o.gateways,
            .n_urls = o.n_gateways,
            .timeout_ms = o.timeout * 1000u,
            .proxy = o.proxy,
            .cacert = o.cacert,
        };
        if (gw_new(&gcfg, &gw, err, sizeof err) < 0) {
            fprintf(stderr, "ipfsfs: %s\n", err);
            goto out_curl;
        }
    }
    if ((o.store || gw) && !o.api) {
        /* No node, no cluster: the secrets in the environment are not used, and go from
         * /proc/PID/environ as with a node. */
        drop_secret_env("IPFSFS_API_AUTH");
        drop_secret_env("IPFSFS_CLUSTER_AUTH");
        /* The embedded store: no node, no API address. With gateways, the blocks it lacks
         * are asked of them (verified) and kept. */
        struct node_store_config scfg = {
            .add = {.cid_version = o.cid_version, .raw_leaves = o.raw_leaves,
                    .chunker = o.chunker, .max_links = o.file_max_links,
                    .pin = !o.no_pin},
            .fetch = gw ? gw_fetch : NULL,
            .fetch_ud = gw,
            /* The gateways' counters (gw_*, a line per gateway) in the statistics; node_ipns
             * adds them itself. */
            .fetch_stats = gw && !o.ipns ? gw_stats_cb : NULL,
            /* What was fetched is cache, unreachable from the names: keep it (no collection
             * in a gateway mount; see the README). */
            .gc_interval_ms = gw ? UINT_MAX : 0,
            /* --store-size bounds what was fetched (least recently used goes first) */
            .cache_max_bytes = gw ? o.store_bytes : 0,
        };
        char gwdir[PATH_MAX];
        const char *dir = o.store;
        if (!dir) {
            if (default_store_dir("gateways", o.mfs_root, gwdir, sizeof gwdir) < 0) {
                fprintf(stderr, "ipfsfs: no folder for the local store (set XDG_DATA_HOME or "
                                "HOME, or give --store=DIR)\n");
                goto out_curl;
            }
            dir = gwdir;
        }
        if (node_store_new(dir, &scfg, &node, err, sizeof err) < 0) {
            fprintf(stderr, "ipfsfs: %s\n", err);
            goto out_curl;
        }
        if (!o.ipns)
            snprintf(times_path, sizeof times_path, "%s/change-times", dir);
        if (o.ipns) {
            /* Names resolved through the gateways (verified records); content as above. */
            struct node *content = node;
            node = NULL;
            struct node_ipns_config icfg = {.content = content, .gw = gw,
                                            .timeout_ms = o.timeout * 1000u};
            if (node_ipns_new(&icfg, &node) < 0) {
                fprintf(stderr, "ipfsfs: out of memory\n");
                goto out_curl;
            }
        }
    } else {
        const char *source;
        api = discover_api(o.api, &source);
        if (!api) {
            fprintf(stderr, "ipfsfs: out of memory\n");
            goto out_curl;
        }
        if (multiaddr_parse(api, &ep, err, sizeof err) < 0) {
            fprintf(stderr, "ipfsfs: invalid API address '%s' (from %s): %s\n", api, source,
                    err);
            goto out_curl;
        }
        /* The secrets must not stay visible to other users through our environment:
         * read_secret wipes the variables' values and unsets them. */
        secret = read_secret(o.api_auth_file, "IPFSFS_API_AUTH");
        int api_errno = errno;
        cluster_secret = read_secret(o.cluster_auth_file, "IPFSFS_CLUSTER_AUTH");
        int cluster_errno = errno;
        if (o.api_auth_file && !secret) {
            fprintf(stderr, "ipfsfs: cannot read the API secret from %s: %s\n",
                    o.api_auth_file, api_errno ? strerror(api_errno) : "empty file");
            goto out_curl;
        }
        if (o.cluster_auth_file && !cluster_secret) {
            fprintf(stderr, "ipfsfs: cannot read the cluster's credentials from %s: %s\n",
                    o.cluster_auth_file, cluster_errno ? strerror(cluster_errno) : "empty file");
            goto out_curl;
        }
        rcfg = (struct rpc_config){
            .endpoint = &ep,
            .timeout_ms = o.timeout * 1000u,
            .pool_size = 32,
            .auth = secret,
            .cacert = o.cacert,
            .proxy = o.proxy,
            .allow_plain_auth = o.api_auth_insecure,
        };
        /* Local-first: names and new blocks in a store, pushed to the node behind (not for
         * --write-through, nor for the read-only IPNS namespace). */
        bool local_first = !o.write_through && !o.ipns;
        char defdir[PATH_MAX];
        const char *dir = o.store;
        if (local_first && !dir) {
            if (default_store_dir(ep.base_url, o.mfs_root, defdir, sizeof defdir) < 0) {
                fprintf(stderr, "ipfsfs: no folder for the local store (set XDG_DATA_HOME or "
                                "HOME, or give --store=DIR)\n");
                goto out_curl;
            }
            dir = defdir;
        }
        /* A store in use is refused (or waited for, while the process unmounted last still
         * sends its changes) before the node is asked anything: that may take --timeout. */
        if (local_first && node_store_check_free(dir, err, sizeof err) < 0) {
            fprintf(stderr, "ipfsfs: %s\n", err);
            goto out_curl;
        }
        rc = node_rpc_new(&rcfg, &node, err, sizeof err);
        bool node_is_rpc = rc == 0; /* the node answers now */
        if (rc == 0 && local_first && !o.ipns) {
            /* The --mfs-root the names go to: a file there would fail every push. */
            struct node_stat st = {0};
            struct cid c;
            int src = node->ops->mfs_stat(node, o.mfs_root, &st, &c);
            enum node_kind kind = st.kind;
            node_stat_clear(&st);
            if ((src == 0 && kind != NODE_DIR) || src == -ENOTDIR) {
                fprintf(stderr, "ipfsfs: --mfs-root=%s: not a directory on the node\n",
                        o.mfs_root);
                node_destroy(node);
                goto out_curl;
            }
        }
        char synced_at[1024] = "";
        /* A proxy curl cannot even resolve is the options' fault, not a node that is down. */
        bool proxy_bad = rc == -ENOTCONN && o.proxy && strstr(err, "resolve proxy");
        if (rc == -ENOTCONN && local_first && !proxy_bad &&
            synced_before(dir, ep.base_url, synced_at, sizeof synced_at)) {
            /* A node this store has synced with, down for now (a restart, the boot order):
             * mount, work locally, and catch up when it answers. A node never reached
             * before is an error (a mistyped address must not look like a working mount). */
            char what[PATH_MAX + 64];
            snprintf(what, sizeof what, "the node at %s", ep.base_url);
            fprintf(stderr, "ipfsfs: warning: %s\nipfsfs: mounting anyway: names and writes "
                            "are kept in %s and sent when the node answers\n", err, dir);
            rc = node_later_new(connect_rpc, &rcfg, what, &node);
        }
        if (rc == -EACCES) {
            fprintf(stderr,
                    "ipfsfs: %s\n"
                    "ipfsfs: give the secret of the node's API.Authorizations with "
                    "--api-auth-file=FILE or IPFSFS_API_AUTH (\"bearer:TOKEN\" or "
                    "\"basic:USER:PASSWORD\")%s.\n",
                    err, secret ? "; the one given was refused" : "");
            goto out_curl;
        }
        if (proxy_bad) {
            fprintf(stderr, "ipfsfs: %s\nipfsfs: check --proxy=%s\n", err, o.proxy);
            goto out_curl;
        }
        if (rc == -ENOTCONN) {
            fprintf(stderr,
                    "ipfsfs: %s\n"
                    "ipfsfs: the API address came from %s (%s).\n"
                    "ipfsfs: start a node (for Kubo: 'ipfs daemon'), or point ipfsfs at one with "
                    "--api=MULTIADDR (or use --store=DIR alone: no node at all).\n",
                    err, source, api);
            if (synced_at[0])
                fprintf(stderr, "ipfsfs: the store %s last synced with the node at %s\n", dir,
                        synced_at);
            goto out_curl;
        }
        if (rc < 0) { /* it answered, or we would not ask it: a node to change, not start */
            fprintf(stderr, "ipfsfs: %s\n", err);
            goto out_curl;
        }
        if (gw) {
            /* The node first; content it cannot give in time is asked of the gateways, through
             * a store of its own next to the names' store (cache only: no names, never
             * collected). */
            char gwdir[PATH_MAX + 16], base[PATH_MAX];
            const char *b = dir;
            if (!b) {
                if (default_store_dir(ep.base_url, o.mfs_root, base, sizeof base) < 0) {
                    fprintf(stderr, "ipfsfs: no folder for the gateways' store (set "
                                    "XDG_DATA_HOME or HOME)\n");
                    goto out_curl;
                }
                b = base;
            }
            snprintf(gwdir, sizeof gwdir, "%s-gateways", b);
            struct node_store_config gcfg = {
                .add = {.cid_version = o.cid_version, .raw_leaves = o.raw_leaves,
                        .chunker = o.chunker, .max_links = o.file_max_links,
                    .pin = !o.no_pin},
                .fetch = gw_fetch,
                .fetch_ud = gw,
                .gc_interval_ms = UINT_MAX,
                .cache_max_bytes = o.store_bytes,
            };
            struct node *gstore = NULL;
            if (node_store_new(gwdir, &gcfg, &gstore, err, sizeof err) < 0) {
                fprintf(stderr, "ipfsfs: %s\n", err);
                node_destroy(node);
                node = NULL;
                goto out_curl;
            }
            struct node *primary = node;
            node = NULL;
            if (node_fallback_new(primary, gstore, gw_stats_cb, gw, &node) < 0) {
                fprintf(stderr, "ipfsfs: out of memory\n");
                goto out_curl;
            }
        }
        if (o.write_through && !ep.unix_path && cluster_probe_proxy(ep.base_url, 3000) == 1)
            fprintf(stderr, "ipfsfs: warning: %s is an IPFS Cluster proxy: with --write-through "
                            "nothing is pinned through the cluster (names stay in the node's "
                            "MFS only); the local-first default pins them\n", ep.base_url);
        if (o.ipns) {
            /* Names resolved by the node; content from it (and the gateways behind it). */
            struct rpc *r = NULL;
            rc = rpc_new(&rcfg, &r);
            struct node *content = node;
            node = NULL;
            struct node_ipns_config icfg = {.content = content, .rpc = r, .gw = gw,
                                            .timeout_ms = o.timeout * 1000u};
            if (rc < 0 || node_ipns_new(&icfg, &node) < 0) {
                if (rc < 0)
                    node_destroy(content);
                fprintf(stderr, "ipfsfs: cannot set up the IPNS namespace: %s\n",
                        strerror(rc < 0 ? -rc : ENOMEM));
                goto out_curl;
            }
        }
        if (o.write_through && !o.ipns && ensure_mfs_root(node, o.mfs_root, err, sizeof err) < 0) {
            fprintf(stderr, "ipfsfs: --mfs-root=%s: %s\n", o.mfs_root, err);
            node_destroy(node);
            goto out_curl;
        }
        struct import_config icfg;
        bool icfg_node = false;
        if (local_first &&
            node_import_defaults(&o, &rcfg, node_is_rpc, dir, &icfg, &icfg_node) < 0) {
            node_destroy(node);
            goto out_curl;
        }
        if (local_first) {
            struct node_store_config scfg = {
                .add = {.cid_version = o.cid_version, .raw_leaves = o.raw_leaves,
                        .chunker = o.chunker, .max_links = o.file_max_links,
                    .pin = !o.no_pin},
                .hamt_block_est = icfg.hamt_block,
                /* Pushes take committed roots: commit often, so the node follows closely
                 * (measured: cp -r of 1,000 files + sync, 1.7 s at 250 ms, 2.5 s at 1 s). */
                .commit_ms = 250,
            };
            struct node_local_config lcfg = {
                .mfs_root = o.mfs_root,
                .timeout_ms = o.timeout * 1000u,
                .unmount_wait_ms = o.unmount_wait * 1000u,
                .store_max_bytes = o.store_bytes,
                .sync_ahead = o.sync_ahead_mode,
                .wait_replication = o.replication_wait,
            };
            if (o.publish) {
                /* The key must be the node's: a typo would publish nothing, silently. */
                rc = rpc_new(&rcfg, &lcfg.publish_rpc);
                if (rc < 0) {
                    fprintf(stderr, "ipfsfs: %s\n", strerror(-rc));
                    node_destroy(node);
                    goto out_curl;
                }
                lcfg.publish_key = o.publish;
                int has = node_rpc_has_key(lcfg.publish_rpc, o.publish, err, sizeof err);
                struct cid kid;
                if (has == 0 && ipns_name_parse(o.publish, strlen(o.publish), &kid) == 0) {
                    fprintf(stderr, "ipfsfs: the node has no key with the ID %s (see ipfs key "
                                    "list -l)\n", o.publish);
                } else if (has == 0) {
                    fprintf(stderr, "ipfsfs: the node has no key named '%s' (see ipfs key list; "
                                    "make one with: ipfs key gen %s)\n", o.publish, o.publish);
                }
                if (has == 0) {
                    rpc_free(lcfg.publish_rpc);
                    node_destroy(node);
                    goto out_curl;
                }
                if (has < 0)
                    fprintf(stderr, "ipfsfs: warning: cannot check the key '%s' now (%s): "
                                    "publishing is tried after each sync\n", o.publish, err);
            }
            char curl_buf[1024], pin_name[512];
            struct cluster_config ccfg;
            int crc = cluster_url(&o, &ep, dir, curl_buf, sizeof curl_buf);
            if (crc < 0) {
                rpc_free(lcfg.publish_rpc);
                node_destroy(node);
                goto out_curl;
            }
            if (crc > 0) {
                char host[256] = "?";
                gethostname(host, sizeof host - 1);
                snprintf(pin_name, sizeof pin_name, "ipfsfs %s:%s", host, o.mfs_root);
                ccfg = (struct cluster_config){.url = curl_buf,
                                               .rmin = o.rep_min,
                                               .rmax = o.rep_max,
                                               .timeout_ms = o.timeout * 1000u,
                                               .pin_name = pin_name,
                                               .auth = cluster_secret,
                                               .allow_plain_auth = o.api_auth_insecure};
                lcfg.cluster = &ccfg;
            } else if (o.cluster_auth_file) {
                fprintf(stderr, "ipfsfs: warning: no cluster to pin through: "
                                "--cluster-auth-file is not used\n");
            }
            struct node *up = node;
            node = NULL;
            rc = node_local_new(dir, &scfg, up, &lcfg, &node, err, sizeof err);
            snprintf(times_path, sizeof times_path, "%s/change-times", dir);
            if (rc == 0 && icfg_node)
                import_settings_save(dir, &icfg);
            if (rc == 0 && node_is_rpc)
                node_address_save(dir, ep.base_url);
            bool creds = crc > 0 && cluster_secret;
            free_secret(&cluster_secret); /* the cluster keeps its own header */
            if (rc < 0) {
                fprintf(stderr, "ipfsfs: %s\n", err);
                goto out_curl;
            }
            if (crc > 0)
                fprintf(stderr, "ipfsfs: pinning the names' roots through the cluster at %s%s\n",
                        strchr(curl_buf, '@') ? "the URL given" : curl_buf,
                        creds ? " (with credentials)" : "");
            mfs_root = "/"; /* the store's root is the mount's root */
        }
    }
    /* The store's description says it fetches, not from where: name the gateways. */
    char gws[2048] = "";
    for (size_t i = 0, k = 0; gw && i < o.n_gateways && k < sizeof gws; i++) {
        char u[1024];
        if (gw_normalize_url(o.gateways[i], u, sizeof u) < 0)
            snprintf(u, sizeof u, "%s", o.gateways[i]);
        k += (size_t)snprintf(gws + k, sizeof gws - k, "%s%s", i ? ", " : "; gateways: ", u);
    }
    fprintf(stderr, "ipfsfs: using %s%s\n", node->description, gws);

    struct fs_config fcfg = {
        .cache_bytes = o.cache_bytes,
        .dircache_bytes = o.dircache_bytes,
        .readahead_bytes = o.readahead_bytes,
        .chunk_size = 256u << 10,
        .fetch_workers = 8,
        .immutable_timeout = 365.0 * 86400,
        .timeout_ms = o.timeout * 1000u,
        .read_timeout_ms = gw && o.api ? 2 * o.timeout * 1000u : 0,
        .root_timeout = 1.0,
        .mfs_root = mfs_root,
        .names_follow_content = o.ipns,
        .read_only = o.ipns,
        .shared = o.shared,
        .utf8_names = !((o.store || gw) && !o.api),
        .times_path = times_path[0] ? times_path : NULL,
        .writer = {
            .spool_dir = o.spool_dir,
            .add = {.cid_version = o.cid_version, .raw_leaves = o.raw_leaves,
                    .chunker = o.chunker, .max_links = o.file_max_links,
                    .pin = !o.no_pin},
        },
    };
    rc = fs_new(node, &fcfg, &fs);
    node = NULL; /* owned by fs now, even on failure */
    if (rc < 0) {
        fprintf(stderr, "ipfsfs: cannot set up the filesystem: %s\n", strerror(-rc));
        goto out_node;
    }
    se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, fs);
    if (!se)
        goto out_node;
    if (fuse_set_signal_handlers(se) != 0)
        goto out_session;
    if (fuse_session_mount(se, fo.mountpoint) != 0)
        goto out_signals;
    mounted = true;
    want_parallel_dirops(se);
    tune_kernel_readahead(fo.mountpoint, 1024);
    if (fuse_daemonize(fo.foreground) != 0)
        goto out_unmount;
    if (!fo.foreground)
        log_set_syslog(true);

    /* Chunk buffers (256 KiB) freed by eviction must go back to the system: glibc's per-thread
     * arenas otherwise keep them, and the process outgrows --cache-size by ~40 MiB. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    /* Threads (fetch workers) start only now: fuse_daemonize forks. */
    rc = fs_start(fs);
    if (rc < 0) {
        log_err("cannot start the filesystem: %s", strerror(-rc));
        goto out_unmount;
    }

    if (fo.singlethread) {
        ret = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        if (!lc)
            goto out_unmount;
        fuse_loop_cfg_set_clone_fd(lc, (unsigned)fo.clone_fd);
        /* Reads wait on the network: allow many workers; -o max_threads overrides. */
        fuse_loop_cfg_set_max_threads(lc, fo.max_threads != 10 ? fo.max_threads : 64);
        if (fo.max_idle_threads != UINT_MAX)
            fuse_loop_cfg_set_idle_threads(lc, fo.max_idle_threads);
        ret = fuse_session_loop_mt(se, lc);
        fuse_loop_cfg_destroy(lc);
    }
    /* The loop returns the number of the signal that ended it (SIGTERM from systemctl stop or
     * kill, SIGINT from ^C, SIGHUP): a stop that was asked for, so exit 0 as after fusermount3
     * -u. The requests in progress have been answered (a close(2) being stored completes);
     * files still open see ENOTCONN once the lazy unmount below closes the connection. */
    if (ret > 0)
        log_info("signal %d: unmounting %s", ret, fo.mountpoint);
    /* After a lazy unmount (fusermount3 -uz) whose last file closed, the kernel may tear the
     * connection down while a worker waits on /dev/fuse: that read fails with ECONNABORTED,
     * not ENODEV (libfuse says "reading device: Software caused connection abort"). The
     * mount is gone as it was asked to go: exit 0 (seen once in shutdown.sh under ASan). */
    if (ret == -ECONNABORTED)
        ret = 0;
    ret = ret >= 0 ? 0 : 1;

out_unmount:
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
    if (mounted)
        catch_teardown_signals();
out_session:
    fuse_session_destroy(se);
out_node:
    /* A mount that never happened: the node's teardown must not speak of an unmount, nor of
     * changes it did not send (none was made; a store made just now, never synced, counts as
     * unsent). What the store held before, it still holds. */
    if (!mounted)
        log_init(LOG_LVL_ERR, false);
    fs_free(fs);
    node_destroy(node);
    if (node_store_teardown_failed())
        ret = 1; /* said on stderr or in the log: the names' last changes are not stored */
out_curl:
    gw_free(gw);
    rpc_global_cleanup();
out_ep:
    api_endpoint_free(&ep);
out_args:
    free_secret(&secret);
    free_secret(&cluster_secret);
    free(api);
    free(fo.mountpoint);
    options_free(&o);
    fuse_opt_free_args(&args);
    return ret;
}

/* blockstore.c - see blockstore.h. */
#include "config.h"

#include "blockstore.h"

#include "log.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NSHARDS (32 * 32)
#define KEY_MAX ((CID_MAX_MH * 8 + 4) / 5 + 1)

struct blockstore {
    char *dir; /* DIR/blocks */
    int dirfd; /* DIR/blocks, for fsync after creating a shard directory */
    /* lock guards dirty[] and top_dirty: directories to fsync in the next blockstore_sync. */
    pthread_mutex_t lock;
    bool dirty[NSHARDS];
    bool top_dirty;
    atomic_uint_fast64_t gets, get_bytes, puts, put_bytes, dedup, corrupt;
    atomic_uint tmp_counter;
};

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* base32 upper case, no padding; returns the length. out has room for KEY_MAX bytes. */
static size_t base32_key(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
    return o;
}

static int b32_index(char ch)
{
    const char *p = strchr(b32, ch);
    return p && ch ? (int)(p - b32) : 0;
}

struct loc {
    char shard[3];
    int shard_idx;
    char key[KEY_MAX];
};

static int locate(const struct cid *c, struct loc *l)
{
    if (c->mh_len < 3 || c->mh_len > CID_MAX_MH)
        return -EINVAL;
    size_t n = base32_key(c->mh, c->mh_len, l->key);
    /* next-to-last/2: the two characters before the last one */
    l->shard[0] = l->key[n - 3];
    l->shard[1] = l->key[n - 2];
    l->shard[2] = '\0';
    l->shard_idx = b32_index(l->shard[0]) * 32 + b32_index(l->shard[1]);
    return 0;
}

int blockstore_path(const struct blockstore *bs, const struct cid *c, char *buf, size_t len)
{
    struct loc l;
    int rc = locate(c, &l);
    if (rc < 0)
        return rc;
    int n = snprintf(buf, len, "%s/%s/%s.data", bs->dir, l.shard, l.key);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int blockstore_open(const char *dir, struct blockstore **out, char *err, size_t errlen)
{
    struct blockstore *bs = calloc(1, sizeof *bs);
    int rc = -ENOMEM;
    if (!bs)
        goto fail;
    bs->dirfd = -1;
    pthread_mutex_init(&bs->lock, NULL);
    size_t n = strlen(dir) + sizeof "/blocks";
    bs->dir = malloc(n);
    if (!bs->dir)
        goto fail;
    snprintf(bs->dir, n, "%s/blocks", dir);
    if (mkdir(bs->dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", bs->dir, strerror(errno));
        goto fail;
    }
    bs->dirfd = open(bs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bs->dirfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", bs->dir, strerror(errno));
        goto fail;
    }
    /* Say how the directory is laid out, as Kubo's flatfs does (best effort). */
    int fd = openat(bs->dirfd, "SHARDING", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        static const char s[] = "/repo/flatfs/shard/v1/next-to-last/2\n";
        if (write_all(fd, (const uint8_t *)s, sizeof s - 1) < 0)
            log_warn("cannot write %s/SHARDING", bs->dir);
        close(fd);
    }
    *out = bs;
    return 0;
fail:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    blockstore_close(bs);
    return rc;
}

void blockstore_close(struct blockstore *bs)
{
    if (!bs)
        return;
    if (bs->dirfd >= 0)
        close(bs->dirfd);
    pthread_mutex_destroy(&bs->lock);
    free(bs->dir);
    free(bs);
}

static void mark_dirty(struct blockstore *bs, int shard, bool top)
{
    pthread_mutex_lock(&bs->lock);
    bs->dirty[shard] = true;
    if (top)
        bs->top_dirty = true;
    pthread_mutex_unlock(&bs->lock);
}

static int read_all(int fd, uint8_t *p, size_t n);

/* Whether path already holds exactly these bytes. Compared, not trusted: a block damaged on
 * disk (or torn by a crash) is rewritten by the next put of the same content. */
static bool same_content(const char *path, const uint8_t *data, size_t len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool same = false;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == len && (buf = malloc(len ? len : 1)) &&
        read_all(fd, buf, len) == 0)
        same = memcmp(buf, data, len) == 0;
    if (buf && !same)
        log_warn("block file %s was damaged: rewriting it", path);
    free(buf);
    close(fd);
    return same;
}

int blockstore_put(struct blockstore *bs, const struct cid *c, const uint8_t *data, size_t len)
{
    if (c->mh_code == MH_IDENTITY)
        return 0;
    if (c->mh_code != MH_SHA2_256 || len > BLOCKSTORE_MAX_BLOCK)
        return -EINVAL;
    struct loc l;
    char final[PATH_MAX], tmp[PATH_MAX], sdir[PATH_MAX];
    int rc = locate(c, &l), fd = -1;
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(sdir, sizeof sdir, "%s/%s", bs->dir, l.shard) >= sizeof sdir ||
        (size_t)snprintf(final, sizeof final, "%s/%s.data", sdir, l.key) >= sizeof final)
        return -ENAMETOOLONG;
    if (same_content(final, data, len)) {
        atomic_fetch_add(&bs->dedup, 1);
        return 0;
    }
    bool created = false;
    if (mkdirat(bs->dirfd, l.shard, 0755) == 0)
        created = true;
    else if (errno != EEXIST)
        return -errno;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%u-XXXXXX", sdir, (long)getpid(),
                         atomic_fetch_add(&bs->tmp_counter, 1)) >= sizeof tmp)
        return -ENAMETOOLONG;
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, data, len);
    if (rc == 0 && fchmod(fd, 0444) < 0)
        rc = -errno;
    /* The bytes must be on disk before the name points at them. */
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        char cs[CID_STR_MAX];
        cid_format(c, cs, sizeof cs);
        log_err("cannot store block %s in %s: %s", cs, sdir, strerror(-rc));
        return rc;
    }
    mark_dirty(bs, l.shard_idx, created);
    atomic_fetch_add(&bs->puts, 1);
    atomic_fetch_add(&bs->put_bytes, len);
    return 0;
}

int blockstore_sync(struct blockstore *bs)
{
    bool dirty[NSHARDS], top;
    pthread_mutex_lock(&bs->lock);
    memcpy(dirty, bs->dirty, sizeof dirty);
    memset(bs->dirty, 0, sizeof bs->dirty);
    top = bs->top_dirty;
    bs->top_dirty = false;
    pthread_mutex_unlock(&bs->lock);
    int rc = 0;
    for (int i = 0; i < NSHARDS; i++) {
        if (!dirty[i])
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%c%c", bs->dir, b32[i / 32], b32[i % 32]);
        int r = fsync_path(p);
        if (r < 0) {
            log_err("fsync %s: %s", p, strerror(-r));
            mark_dirty(bs, i, false);
            rc = r;
        }
    }
    if (top && fsync(bs->dirfd) < 0) {
        rc = -errno;
        log_err("fsync %s: %s", bs->dir, strerror(errno));
        pthread_mutex_lock(&bs->lock);
        bs->top_dirty = true;
        pthread_mutex_unlock(&bs->lock);
    }
    return rc;
}

bool blockstore_has(struct blockstore *bs, const struct cid *c)
{
    if (c->mh_code == MH_IDENTITY)
        return true;
    char p[PATH_MAX];
    return blockstore_path(bs, c, p, sizeof p) == 0 && access(p, F_OK) == 0;
}

/* The digest part of c's multihash. */
static int mh_digest(const struct cid *c, const uint8_t **d, size_t *n)
{
    uint64_t code, len;
    size_t a = varint_decode(c->mh, c->mh_len, &code);
    size_t b = a ? varint_decode(c->mh + a, c->mh_len - a, &len) : 0;
    if (!b || a + b + len != c->mh_len)
        return -EINVAL;
    *d = c->mh + a + b;
    *n = (size_t)len;
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* shrank under us */
        got += (size_t)r;
    }
    return 0;
}

int blockstore_get(struct blockstore *bs, const struct cid *c, uint8_t **data, size_t *len)
{
    const uint8_t *dg;
    size_t dn;
    char cs[CID_STR_MAX], p[PATH_MAX];
    uint8_t *buf = NULL;
    int fd = -1, rc = mh_digest(c, &dg, &dn);
    *data = NULL;
    *len = 0;
    if (rc < 0)
        return -EINVAL;
    if (c->mh_code == MH_IDENTITY) {
        buf = malloc(dn ? dn : 1);
        if (!buf)
            return -ENOMEM;
        memcpy(buf, dg, dn);
        *data = buf;
        *len = dn;
        return 0;
    }
    cid_format(c, cs, sizeof cs);
    if (c->mh_code != MH_SHA2_256 || dn != SHA256_LEN) {
        log_warn("block %s: hash function 0x%llx is not supported by the store", cs,
                 (unsigned long long)c->mh_code);
        return -EIO;
    }
    if ((rc = blockstore_path(bs, c, p, sizeof p)) < 0)
        return rc;
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? -ENOENT : -EIO;
        if (rc == -EIO)
            log_err("block %s: cannot open %s: %s", cs, p, strerror(errno));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (off_t)BLOCKSTORE_MAX_BLOCK) {
        log_err("block %s: %s is unreadable or larger than %u bytes", cs, p, BLOCKSTORE_MAX_BLOCK);
        rc = -EIO;
        goto out;
    }
    size_t n = (size_t)st.st_size;
    buf = malloc(n ? n : 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = read_all(fd, buf, n)) < 0) {
        log_err("block %s: cannot read %s: %s", cs, p, strerror(-rc));
        rc = -EIO;
        goto out;
    }
    uint8_t md[SHA256_LEN];
    if ((rc = sha256_digest(buf, n, md)) < 0)
        goto out;
    if (memcmp(md, dg, SHA256_LEN) != 0) {
        atomic_fetch_add(&bs->corrupt, 1);
        log_err("block %s is corrupt: the content of %s does not match its hash", cs, p);
        rc = -EIO;
        goto out;
    }
    atomic_fetch_add(&bs->gets, 1);
    atomic_fetch_add(&bs->get_bytes, n);
    *data = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

void blockstore_get_stats(struct blockstore *bs, struct blockstore_stats *out)
{
    out->gets = atomic_load(&bs->gets);
    out->get_bytes = atomic_load(&bs->get_bytes);
    out->puts = atomic_load(&bs->puts);
    out->put_bytes = atomic_load(&bs->put_bytes);
    out->dedup = atomic_load(&bs->dedup);
    out->corrupt = atomic_load(&bs->corrupt);
}

/* blockstore.c - see blockstore.h. */
#include "config.h"

#include "blockstore.h"

#include "clock.h"
#include "log.h"
#include "sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define NSHARDS (32 * 32)
#define KEY_MAX ((CID_MAX_MH * 8 + 4) / 5 + 1)
#define REL_MAX (KEY_MAX + 16) /* "XY/KEY.data" or "XY/.tmp-PID-N", relative to dirfd */
#define NBUCKETS 512
/* Written, not yet fsync'd blocks (each with its open temp file) before a put makes the older
 * ones durable; that flush leaves the newest BATCH_KEEP in flight (their writeback started
 * when put, for blocks of EARLY_WRITEBACK_MIN or more). */
#define BATCH_MAX 64
#define BATCH_KEEP 16
/* Blocks from this size on start their writeback when put (blockstore_put). */
#define EARLY_WRITEBACK_MIN (64u << 10)

/* From this many files (or directories) to make durable at once, one syncfs(2) of the store's
 * filesystem replaces their fdatasync (fsync) calls: each of those is a journal commit, so a
 * group commit of a thousand small files took seconds. If syncfs reports an error, the calls
 * are made one by one, and each says which file failed. Only on local filesystems known to
 * make everything durable on syncfs and to report writeback errors from it (a FUSE or network
 * filesystem may do neither): see syncfs_ok. */
#define SYNCFS_MIN 8

/* A block whose temp file is written but not yet renamed to its final name. */
enum pend_state {
    PEND_WRITTEN, /* complete temp file, fd open, waiting for a flush */
    PEND_TAKEN,   /* a flush is fsyncing and renaming it */
    PEND_SYNCED,  /* durable under the temp name; the rename failed and is retried */
    PEND_FAILED,  /* fdatasync failed: the bytes are lost (temp removed) until put again */
};

struct pend {
    struct pend *hnext;       /* hash chain */
    struct pend *prev, *next; /* every entry, oldest first */
    uint64_t seq;             /* order of the puts */
    enum pend_state state;
    int fd;  /* PEND_WRITTEN, PEND_TAKEN: the temp file */
    int err; /* PEND_SYNCED, PEND_FAILED: why */
    int shard;
    char tmp[REL_MAX];
    char final[REL_MAX];
};

struct blockstore {
    char *dir; /* DIR/blocks */
    int dirfd; /* DIR/blocks: every block path is relative to it */
    long pid;  /* for temp names (unique anyway: created with O_EXCL) */
    /* lock guards dirty[], top_dirty, shard_ok[] and the pending blocks (buckets, head, tail,
     * nwritten, put_seq, and the entries' fields; a PEND_TAKEN entry's fd belongs to the flush). */
    pthread_mutex_t lock;
    bool dirty[NSHARDS]; /* directories to fsync in the next blockstore_sync */
    bool top_dirty;
    bool shard_ok[NSHARDS]; /* shard directory known to exist */
    struct pend *buckets[NBUCKETS];
    struct pend *head, *tail;
    size_t nwritten; /* entries in PEND_WRITTEN */
    uint64_t put_seq;
    /* flush_lock serializes flushes and syncs (taken before lock, never while holding it), so
     * a sync returns only when every flush before it, by any thread, has finished. */
    pthread_mutex_t flush_lock;
    bool syncfs_ok; /* the filesystem's syncfs may replace many fdatasync calls */
    atomic_uint_fast64_t gets, get_bytes, puts, put_bytes, dedup, corrupt;
    /* Moves before and after each unlink of a block file: see blockstore_removals. */
    atomic_uint_fast64_t removals;
    atomic_uint tmp_counter;
    /* young_lock guards young[], young_cur and young_since. Taken by every put (to record its
     * key before it looks for the block) and by the sweep around each removal; takes no other
     * lock and is held for no I/O but that one unlink. */
    pthread_mutex_t young_lock;
    struct blockstore_keyset young[2]; /* [young_cur] filling now, the other: the set before */
    unsigned young_cur;
    uint64_t young_since; /* CLOCK_MONOTONIC ns when young[young_cur] began */
};

static uint64_t mh_key(const uint8_t *mh, size_t n)
{
    uint64_t k = XXH3_64bits(mh, n);
    return k ? k : 1;
}

uint64_t blockstore_key(const struct cid *c)
{
    return mh_key(c->mh, c->mh_len <= CID_MAX_MH ? c->mh_len : CID_MAX_MH);
}

int blockstore_keyset_add(struct blockstore_keyset *s, uint64_t key)
{
    key = key ? key : 1;
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 256;
        uint64_t *nv = calloc(ncap, sizeof *nv);
        if (!nv)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->v[i])
                continue;
            size_t j = (size_t)(s->v[i] & (ncap - 1));
            while (nv[j])
                j = (j + 1) & (ncap - 1);
            nv[j] = s->v[i];
        }
        free(s->v);
        s->v = nv;
        s->cap = ncap;
    }
    size_t j = (size_t)(key & (s->cap - 1));
    while (s->v[j]) {
        if (s->v[j] == key)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->v[j] = key;
    s->n++;
    return 1;
}

bool blockstore_keyset_has(const struct blockstore_keyset *s, uint64_t key)
{
    key = key ? key : 1;
    if (!s->cap)
        return false;
    for (size_t j = (size_t)(key & (s->cap - 1)); s->v[j]; j = (j + 1) & (s->cap - 1))
        if (s->v[j] == key)
            return true;
    return false;
}

void blockstore_keyset_free(struct blockstore_keyset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

void blockstore_young_rotate(struct blockstore *bs, uint64_t min_age_ns, uint64_t busy_since)
{
    uint64_t now = clock_mono_ns();
    pthread_mutex_lock(&bs->young_lock);
    /* Work that began before the current set plus a margin (an add, then its link) may name
     * blocks of the set before: it must end first. */
    if (now - bs->young_since >= min_age_ns && busy_since > bs->young_since + min_age_ns / 2) {
        bs->young_cur ^= 1;
        blockstore_keyset_free(&bs->young[bs->young_cur]);
        bs->young_since = now;
    }
    pthread_mutex_unlock(&bs->young_lock);
}

/* Record c as young (see blockstore.h): before the put looks whether it is here. */
static int young_add(struct blockstore *bs, const struct cid *c)
{
    uint64_t k = blockstore_key(c);
    pthread_mutex_lock(&bs->young_lock);
    int rc = blockstore_keyset_add(&bs->young[bs->young_cur], k);
    pthread_mutex_unlock(&bs->young_lock);
    return rc < 0 ? rc : 0;
}

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

/* "XY/KEY.data", relative to dirfd. */
static void final_name(const struct loc *l, char *buf)
{
    snprintf(buf, REL_MAX, "%s/%s.data", l->shard, l->key);
}

static unsigned bucket_of(const char *final)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = final; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % NBUCKETS;
}

/* The pending entry for final, or NULL. Call with lock held. */
static struct pend *pend_find(struct blockstore *bs, const char *final)
{
    for (struct pend *e = bs->buckets[bucket_of(final)]; e; e = e->hnext)
        if (strcmp(e->final, final) == 0)
            return e;
    return NULL;
}

static void pend_insert(struct blockstore *bs, struct pend *e)
{
    unsigned b = bucket_of(e->final);
    e->hnext = bs->buckets[b];
    bs->buckets[b] = e;
    e->prev = bs->tail;
    e->next = NULL;
    if (bs->tail)
        bs->tail->next = e;
    else
        bs->head = e;
    bs->tail = e;
    e->seq = ++bs->put_seq;
}

/* Unlink e from the table (the caller frees it). Call with lock held. */
static void pend_remove(struct blockstore *bs, struct pend *e)
{
    struct pend **pp = &bs->buckets[bucket_of(e->final)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        bs->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        bs->tail = e->prev;
}

/* Copy the temp name of a readable pending block for final into tmp. Returns whether there is
 * one (written completely: in the store, though not yet durable). */
static bool pend_tmp(struct blockstore *bs, const char *final, char *tmp)
{
    pthread_mutex_lock(&bs->lock);
    struct pend *e = pend_find(bs, final);
    bool ok = e && e->state != PEND_FAILED;
    if (ok)
        memcpy(tmp, e->tmp, REL_MAX);
    pthread_mutex_unlock(&bs->lock);
    return ok;
}

static int flush_locked(struct blockstore *bs, uint64_t upto);

int blockstore_open(const char *dir, struct blockstore **out, char *err, size_t errlen)
{
    struct blockstore *bs = calloc(1, sizeof *bs);
    int rc = -ENOMEM;
    if (!bs)
        goto fail;
    bs->dirfd = -1;
    bs->pid = (long)getpid();
    pthread_mutex_init(&bs->lock, NULL);
    pthread_mutex_init(&bs->flush_lock, NULL);
    pthread_mutex_init(&bs->young_lock, NULL);
    bs->young_since = clock_mono_ns();
    size_t n = strlen(dir) + sizeof "/blocks";
    bs->dir = malloc(n);
    if (!bs->dir)
        goto fail;
    snprintf(bs->dir, n, "%s/blocks", dir);
    /* Private, like DIR (node_store.c): directories 0700, files 0400 (blocks) or 0600. */
    if (mkdir(bs->dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", bs->dir, strerror(errno));
        goto fail;
    }
    bs->dirfd = open(bs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (bs->dirfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", bs->dir, strerror(errno));
        goto fail;
    }
    struct statfs sfs;
    if (fstatfs(bs->dirfd, &sfs) == 0)
        switch ((unsigned long)sfs.f_type) {
        case 0xEF53UL:     /* ext2, ext3, ext4 */
        case 0x58465342UL: /* xfs */
        case 0x9123683EUL: /* btrfs */
        case 0xF2F52010UL: /* f2fs */
            bs->syncfs_ok = true;
            break;
        default:
            break;
        }
    /* Say how the directory is laid out, as Kubo's flatfs does (best effort). */
    int fd = openat(bs->dirfd, "SHARDING", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
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

/* Remove the temp files in one shard directory; returns how many went. */
static unsigned clean_shard(int dfd)
{
    unsigned n = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, ".tmp-", 5) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    closedir(d);
    return n;
}

int blockstore_clean_tmp(struct blockstore *bs)
{
    int fd = openat(bs->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *top = fdopendir(fd);
    if (!top) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(top));) {
        if (strlen(e->d_name) != 2 || e->d_name[0] == '.')
            continue; /* shard directories are named by two base32 characters */
        int sfd = openat(bs->dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sfd >= 0)
            n += clean_shard(sfd);
    }
    closedir(top);
    if (n)
        log_info("%s: removed %u unfinished block files left by an earlier process", bs->dir, n);
    return (int)n;
}

void blockstore_close(struct blockstore *bs)
{
    if (!bs)
        return;
    if (bs->dirfd >= 0 && blockstore_sync(bs) < 0)
        log_err("%s: some blocks written last could not be made durable", bs->dir);
    for (struct pend *e = bs->head, *next; e; e = next) {
        next = e->next;
        if (e->fd >= 0)
            close(e->fd);
        free(e);
    }
    if (bs->dirfd >= 0)
        close(bs->dirfd);
    pthread_mutex_destroy(&bs->flush_lock);
    pthread_mutex_destroy(&bs->lock);
    pthread_mutex_destroy(&bs->young_lock);
    blockstore_keyset_free(&bs->young[0]);
    blockstore_keyset_free(&bs->young[1]);
    free(bs->dir);
    free(bs);
}

static int read_all(int fd, uint8_t *p, size_t n);

/* Whether the block file final already holds exactly these bytes. Compared, not trusted: a
 * block damaged on disk is rewritten by the next put of the same content. */
static bool same_content(struct blockstore *bs, const char *final, const uint8_t *data, size_t len)
{
    struct stat st;
    int fd = openat(bs->dirfd, final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    bool same = false;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == len && (buf = malloc(len ? len : 1)) &&
        read_all(fd, buf, len) == 0)
        same = memcmp(buf, data, len) == 0;
    /* A fetched copy (never fsynced, evictable) that a put now needs for good: made durable
     * and no longer a cache copy. If that fails, the block is written anew. */
    if (same && (st.st_mode & 07777) == BLOCKSTORE_CACHE_MODE &&
        (fdatasync(fd) < 0 || fchmod(fd, 0400) < 0))
        same = false;
    else if (!same)
        log_warn("block file %s/%s was damaged: rewriting it", bs->dir, final);
    free(buf);
    close(fd);
    return same;
}

/* Make sure l's shard directory exists (mkdirat once per shard, not once per block). */
static int ensure_shard(struct blockstore *bs, const struct loc *l, bool recheck)
{
    pthread_mutex_lock(&bs->lock);
    bool ok = bs->shard_ok[l->shard_idx] && !recheck;
    pthread_mutex_unlock(&bs->lock);
    if (ok)
        return 0;
    bool created = mkdirat(bs->dirfd, l->shard, 0700) == 0;
    if (!created && errno != EEXIST)
        return -errno;
    pthread_mutex_lock(&bs->lock);
    bs->shard_ok[l->shard_idx] = true;
    if (created)
        bs->top_dirty = true; /* DIR/blocks gained an entry */
    pthread_mutex_unlock(&bs->lock);
    return 0;
}

/* Create a new temp file in l's shard: read-only, owner only, from the start (the fd is still
 * writable). */
static int create_tmp(struct blockstore *bs, const struct loc *l, char *tmp, mode_t mode)
{
    bool recheck = false;
    for (int tries = 0; tries < 100; tries++) {
        int rc = ensure_shard(bs, l, recheck);
        if (rc < 0)
            return rc;
        snprintf(tmp, REL_MAX, "%s/.tmp-%ld-%u", l->shard, bs->pid,
                 atomic_fetch_add(&bs->tmp_counter, 1));
        int fd =
            openat(bs->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0)
            return fd;
        if (errno == ENOENT && !recheck)
            recheck = true; /* the shard directory went away: make it again */
        else if (errno != EEXIST)
            return -errno; /* EEXIST: a leftover of an earlier process with our pid */
    }
    return -EEXIST;
}

/* Puts write each block to a temp file and start its writeback, without waiting: a flush later
 * fsyncs a whole batch of them, then renames each to its final name, so a block file under its
 * final name is always complete and durable, and the disk works while the importer hashes. A
 * pending block is found by get and has like a stored one. */
int blockstore_put(struct blockstore *bs, const struct cid *c, const uint8_t *data, size_t len)
{
    if (c->mh_code == MH_IDENTITY)
        return 0;
    if (c->mh_code != MH_SHA2_256 || len > BLOCKSTORE_MAX_BLOCK)
        return -EINVAL;
    struct loc l;
    char final[REL_MAX], tmp[REL_MAX];
    int rc = locate(c, &l);
    if (rc < 0)
        return rc;
    final_name(&l, final);
    /* Young before the look: a sweep then either keeps the file or removed it already (and
     * the look below writes it again). */
    if ((rc = young_add(bs, c)) < 0)
        return rc;
    if (pend_tmp(bs, final, tmp) || same_content(bs, final, data, len)) {
        atomic_fetch_add(&bs->dedup, 1);
        return 0;
    }
    struct pend *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    int fd = create_tmp(bs, &l, tmp, 0400);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    rc = write_all(fd, data, len);
    if (rc < 0)
        goto fail;
    /* Start the writeback of a large block now (best effort), so that the disk works while the
     * importer hashes; the flush's fdatasync (or syncfs) is what makes it durable. Small blocks
     * (a tree of small files) are left to that flush, which writes them in one go: a call each
     * was 7 % of the daemon's CPU in cp -r of small files. */
    if (len >= EARLY_WRITEBACK_MIN)
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    *e = (struct pend){.state = PEND_WRITTEN, .fd = fd, .shard = l.shard_idx};
    memcpy(e->tmp, tmp, REL_MAX);
    memcpy(e->final, final, REL_MAX);
    pthread_mutex_lock(&bs->lock);
    struct pend *old = pend_find(bs, final);
    if (old && old->state != PEND_FAILED) {
        /* Another thread put the same block meanwhile: keep that one. */
        pthread_mutex_unlock(&bs->lock);
        close(fd);
        unlinkat(bs->dirfd, tmp, 0);
        free(e);
        atomic_fetch_add(&bs->dedup, 1);
        return 0;
    }
    if (old) {
        pend_remove(bs, old); /* lost by a failed fdatasync: written again now */
        free(old);
    }
    pend_insert(bs, e);
    bool flush = ++bs->nwritten >= BATCH_MAX;
    uint64_t upto = bs->put_seq - BATCH_KEEP;
    pthread_mutex_unlock(&bs->lock);
    atomic_fetch_add(&bs->puts, 1);
    atomic_fetch_add(&bs->put_bytes, len);
    if (flush) {
        /* Its errors stay with the blocks, for the blockstore_sync that covers them. */
        pthread_mutex_lock(&bs->flush_lock);
        flush_locked(bs, upto);
        pthread_mutex_unlock(&bs->flush_lock);
    }
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
        unlinkat(bs->dirfd, tmp, 0);
    }
    free(e);
    char cs[CID_STR_MAX];
    cid_format(c, cs, sizeof cs);
    log_err("cannot store block %s in %s/%s: %s", cs, bs->dir, l.shard, strerror(-rc));
    return rc;
}

int blockstore_put_cache(struct blockstore *bs, const struct cid *c, const uint8_t *data,
                         size_t len)
{
    if (c->mh_code == MH_IDENTITY)
        return 0;
    if (c->mh_code != MH_SHA2_256 || len > BLOCKSTORE_MAX_BLOCK)
        return -EINVAL;
    struct loc l;
    char final[REL_MAX], tmp[REL_MAX];
    int rc = locate(c, &l);
    if (rc < 0)
        return rc;
    final_name(&l, final);
    /* Not young: a copy of a block that can be had again may be evicted at once (if the
     * collector takes it while a name change links it, a later read fetches it again). */
    struct stat st;
    if (pend_tmp(bs, final, tmp) ||
        (fstatat(bs->dirfd, final, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
         (uint64_t)st.st_size == len)) {
        atomic_fetch_add(&bs->dedup, 1);
        return 0;
    }
    int fd = create_tmp(bs, &l, tmp, BLOCKSTORE_CACHE_MODE);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    rc = write_all(fd, data, len);
    close(fd);
    if (rc == 0 && renameat(bs->dirfd, tmp, bs->dirfd, final) < 0)
        rc = -errno;
    if (rc < 0) {
        unlinkat(bs->dirfd, tmp, 0);
        goto fail;
    }
    atomic_fetch_add(&bs->puts, 1);
    atomic_fetch_add(&bs->put_bytes, len);
    return 1;
fail:;
    char cs[CID_STR_MAX];
    cid_format(c, cs, sizeof cs);
    log_err("cannot store block %s in %s/%s: %s", cs, bs->dir, l.shard, strerror(-rc));
    return rc;
}

/* Make the pending blocks put up to seq upto durable under their final names: fdatasync every
 * temp file first, then rename each, so no final name ever holds bytes that are not on disk.
 * Their directories are left for blockstore_sync to fsync. Call with flush_lock held. Returns 0
 * or the first error (the failed blocks keep it: see enum pend_state). */
static int flush_locked(struct blockstore *bs, uint64_t upto)
{
    struct item {
        struct pend *e;
        int err;
        bool synced; /* the fdatasync worked (or had already) */
    } *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    pthread_mutex_lock(&bs->lock);
    for (struct pend *e = bs->head; e && e->seq <= upto; e = e->next)
        if (e->state == PEND_WRITTEN || e->state == PEND_SYNCED)
            cap++;
    v = cap ? calloc(cap, sizeof *v) : NULL;
    for (struct pend *e = bs->head; v && e && n < cap; e = e->next) {
        if (e->state == PEND_WRITTEN) {
            e->state = PEND_TAKEN;
            bs->nwritten--;
            v[n++].e = e;
        } else if (e->state == PEND_SYNCED) {
            v[n].synced = true;
            v[n++].e = e;
        }
    }
    pthread_mutex_unlock(&bs->lock);
    if (cap && !v)
        return -ENOMEM;
    /* The entries taken here stay ours: puts only add entries or remove failed ones, and
     * flush_lock keeps other flushes out. Until the end they are only read (their fd is ours). */
    size_t unsynced = 0;
    for (size_t i = 0; i < n; i++)
        unsynced += !v[i].synced;
    bool bulk = bs->syncfs_ok && unsynced >= SYNCFS_MIN && syncfs(bs->dirfd) == 0;
    for (size_t i = 0; i < n; i++) {
        struct pend *e = v[i].e;
        if (v[i].synced || bulk) {
            v[i].synced = true;
            continue; /* durable already, only the rename is left */
        }
        v[i].err = fdatasync(e->fd) < 0 ? -errno : 0;
        v[i].synced = v[i].err == 0;
        if (v[i].err < 0) {
            /* Retrying fdatasync after a failed writeback may claim success for lost bytes. */
            log_err("fdatasync %s/%s: %s: the block is lost", bs->dir, e->tmp, strerror(-v[i].err));
            unlinkat(bs->dirfd, e->tmp, 0);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (v[i].synced && renameat(bs->dirfd, v[i].e->tmp, bs->dirfd, v[i].e->final) < 0) {
            v[i].err = -errno;
            log_err("rename %s/%s: %s", bs->dir, v[i].e->tmp, strerror(errno));
        }
    pthread_mutex_lock(&bs->lock);
    for (size_t i = 0; i < n; i++) {
        struct pend *e = v[i].e;
        if (e->fd >= 0)
            close(e->fd);
        e->fd = -1;
        if (v[i].err < 0) {
            rc = rc ? rc : v[i].err;
            e->err = v[i].err;
            e->state = v[i].synced ? PEND_SYNCED : PEND_FAILED;
            continue;
        }
        bs->dirty[e->shard] = true; /* gained the final name */
        pend_remove(bs, e);
        free(e);
    }
    pthread_mutex_unlock(&bs->lock);
    free(v);
    return rc;
}

static int fsync_at(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int blockstore_sync(struct blockstore *bs)
{
    bool dirty[NSHARDS], top;
    pthread_mutex_lock(&bs->flush_lock);
    pthread_mutex_lock(&bs->lock);
    uint64_t upto = bs->put_seq;
    pthread_mutex_unlock(&bs->lock);
    int rc = flush_locked(bs, upto);
    pthread_mutex_lock(&bs->lock);
    /* A block lost by an earlier flush fails every sync until it is put again. */
    for (struct pend *e = bs->head; e && rc == 0; e = e->next)
        if (e->state == PEND_FAILED || e->state == PEND_SYNCED)
            rc = e->err;
    memcpy(dirty, bs->dirty, sizeof dirty);
    memset(bs->dirty, 0, sizeof bs->dirty);
    top = bs->top_dirty;
    bs->top_dirty = false;
    pthread_mutex_unlock(&bs->lock);
    int ndirty = top;
    for (int i = 0; i < NSHARDS; i++)
        ndirty += dirty[i];
    if (bs->syncfs_ok && ndirty >= SYNCFS_MIN && syncfs(bs->dirfd) == 0) {
        memset(dirty, 0, sizeof dirty); /* every directory entry is durable */
        top = false;
    }
    for (int i = 0; i < NSHARDS; i++) {
        if (!dirty[i])
            continue;
        char p[3] = {b32[i / 32], b32[i % 32], '\0'};
        int r = fsync_at(bs->dirfd, p);
        if (r < 0) {
            log_err("fsync %s/%s: %s", bs->dir, p, strerror(-r));
            pthread_mutex_lock(&bs->lock);
            bs->dirty[i] = true;
            pthread_mutex_unlock(&bs->lock);
            rc = rc ? rc : r;
        }
    }
    if (top && fsync(bs->dirfd) < 0) {
        rc = rc ? rc : -errno;
        log_err("fsync %s: %s", bs->dir, strerror(errno));
        pthread_mutex_lock(&bs->lock);
        bs->top_dirty = true;
        pthread_mutex_unlock(&bs->lock);
    }
    pthread_mutex_unlock(&bs->flush_lock);
    return rc;
}

bool blockstore_has(struct blockstore *bs, const struct cid *c)
{
    if (c->mh_code == MH_IDENTITY)
        return true;
    struct loc l;
    char final[REL_MAX], tmp[REL_MAX];
    if (locate(c, &l) < 0)
        return false;
    final_name(&l, final);
    /* Looked for again after the pending blocks: a flush may have renamed it in between. */
    return faccessat(bs->dirfd, final, F_OK, 0) == 0 || pend_tmp(bs, final, tmp) ||
           faccessat(bs->dirfd, final, F_OK, 0) == 0;
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

/* Open c's block file, or its pending temp file. Returns the fd or -1 with errno set. */
static int open_block(struct blockstore *bs, const struct cid *c)
{
    struct loc l;
    char final[REL_MAX], tmp[REL_MAX];
    if (locate(c, &l) < 0) {
        errno = EINVAL;
        return -1;
    }
    final_name(&l, final);
    int fd = openat(bs->dirfd, final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    if (pend_tmp(bs, final, tmp)) {
        fd = openat(bs->dirfd, tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 || errno != ENOENT)
            return fd;
    }
    /* Renamed meanwhile: a flush may have finished between the first open and the look at
     * the pending blocks (then there is no pending entry any more), or after that look. */
    return openat(bs->dirfd, final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
        log_warn("block %s: hash function 0x%llx is not supported by the store (only "
                 "sha2-256 and identity are)", cs, (unsigned long long)c->mh_code);
        return -EOPNOTSUPP; /* the content may be fine: we cannot keep or check it */
    }
    if ((rc = blockstore_path(bs, c, p, sizeof p)) < 0)
        return rc;
    fd = open_block(bs, c);
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

int blockstore_usage(struct blockstore *bs, uint64_t *bytes, uint64_t *nblocks)
{
    *bytes = *nblocks = 0;
    for (int i = 0; i < NSHARDS; i++) {
        char shard[3] = {b32[i / 32], b32[i % 32], 0};
        int dfd = openat(bs->dirfd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0) {
            if (errno == ENOENT)
                continue;
            return -errno;
        }
        DIR *d = fdopendir(dfd);
        if (!d) {
            close(dfd);
            return -errno;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            struct stat st;
            if (n < 6 || strcmp(e->d_name + n - 5, ".data") != 0 ||
                fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                continue;
            *bytes += (uint64_t)st.st_blocks * 512u;
            (*nblocks)++;
        }
        closedir(d);
    }
    return 0;
}

/* Unlink the block file name (under dfd), counted in removals before and after: see
 * blockstore_removals. 0 or -errno. */
static int unlink_block(struct blockstore *bs, int dfd, const char *name)
{
    atomic_fetch_add(&bs->removals, 1);
    int rc = unlinkat(dfd, name, 0) < 0 ? -errno : 0;
    atomic_fetch_add(&bs->removals, 1);
    return rc;
}

int blockstore_remove(struct blockstore *bs, const struct cid *c, uint64_t *freed)
{
    struct loc l;
    char final[REL_MAX];
    struct stat st;
    *freed = 0;
    if (c->mh_code == MH_IDENTITY || locate(c, &l) < 0)
        return -EINVAL;
    final_name(&l, final);
    if (fstatat(bs->dirfd, final, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    int urc = unlink_block(bs, bs->dirfd, final);
    if (urc < 0)
        return urc;
    *freed = (uint64_t)st.st_blocks * 512u;
    return 0;
}

int blockstore_drop_corrupt_cache(struct blockstore *bs, const struct cid *c, uint64_t *freed)
{
    const uint8_t *dg;
    size_t dn;
    *freed = 0;
    if (c->mh_code != MH_SHA2_256 || mh_digest(c, &dg, &dn) < 0 || dn != SHA256_LEN)
        return -EINVAL;
    int fd = open_block(bs, c);
    if (fd < 0)
        return -errno; /* EMFILE, EACCES...: nothing is known to be wrong with the file */
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (st.st_mode & 07777) != BLOCKSTORE_CACHE_MODE)
        rc = -EPERM; /* not a fetched copy: never removed here */
    bool bad = rc == 0 && st.st_size > (off_t)BLOCKSTORE_MAX_BLOCK;
    if (rc == 0 && !bad) {
        size_t n = (size_t)st.st_size;
        uint8_t *buf = malloc(n ? n : 1), md[SHA256_LEN];
        if (!buf)
            rc = -ENOMEM;
        else if ((rc = read_all(fd, buf, n)) == 0 && (rc = sha256_digest(buf, n, md)) == 0)
            bad = memcmp(md, dg, SHA256_LEN) != 0;
        free(buf);
    }
    close(fd);
    if (rc < 0)
        return rc;
    if (!bad)
        return -EEXIST; /* it reads right now: the earlier error passed */
    return blockstore_remove(bs, c, freed);
}

uint64_t blockstore_removals(struct blockstore *bs)
{
    return atomic_load(&bs->removals);
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

int blockstore_pb_leaf(struct blockstore *bs, const struct cid *c)
{
    if (c->mh_code == MH_IDENTITY)
        return 0;
    int fd = open_block(bs, c);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : 0;
    struct stat st;
    uint8_t h[11];
    int leaf = 0;
    ssize_t n = fstat(fd, &st) == 0 ? pread(fd, h, sizeof h, 0) : -1;
    if (n == 0 && st.st_size == 0) {
        leaf = 1; /* the empty dag-pb node */
    } else if (n >= 2 && h[0] == 0x0a) { /* field 1 (Data), length-delimited */
        uint64_t len = 0;
        unsigned shift = 0;
        ssize_t i = 1;
        for (; i < n && shift < 64; i++, shift += 7) {
            len |= (uint64_t)(h[i] & 0x7f) << shift;
            if (!(h[i] & 0x80))
                break;
        }
        /* Nothing but that one field: no room left for a link. */
        leaf = i < n && !(h[i] & 0x80) && len <= (uint64_t)st.st_size &&
               (uint64_t)(i + 1) + len == (uint64_t)st.st_size;
    }
    close(fd);
    return leaf;
}

/* base32 (upper case, no padding) to bytes; returns the length, or -1. */
static ssize_t base32_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = in[i] ? strchr(b32, in[i]) : NULL;
        if (!p)
            return -1;
        acc = (acc << 5) | (uint32_t)(p - b32);
        bits += 5;
        if (bits >= 8) {
            if (o == cap)
                return -1;
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return (ssize_t)o;
}

/* Sweep one shard directory. */
static int sweep_shard(struct blockstore *bs, int dfd, const struct blockstore_keyset *live,
                       struct blockstore_sweep_stats *out)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        uint8_t mh[CID_MAX_MH];
        ssize_t mn;
        if (n < 6 || strcmp(e->d_name + n - 5, ".data") != 0)
            continue;
        if ((mn = base32_decode(e->d_name, n - 5, mh, sizeof mh)) < 3) {
            out->other++; /* not a name we give: left alone */
            continue;
        }
        uint64_t k = mh_key(mh, (size_t)mn);
        if (blockstore_keyset_has(live, k)) {
            out->live++;
            continue;
        }
        struct stat st;
        pthread_mutex_lock(&bs->young_lock);
        bool young = blockstore_keyset_has(&bs->young[0], k) ||
                     blockstore_keyset_has(&bs->young[1], k);
        bool gone = false;
        if (!young && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode)) {
            int u = unlink_block(bs, dirfd(d), e->d_name);
            if (u == 0)
                gone = true;
            else if (u != -ENOENT)
                rc = rc ? rc : u;
        }
        pthread_mutex_unlock(&bs->young_lock);
        if (young) {
            out->young++;
        } else if (gone) {
            out->removed++;
            out->removed_bytes += (uint64_t)st.st_blocks * 512u;
        }
    }
    closedir(d);
    return rc;
}

int blockstore_sweep(struct blockstore *bs, const struct blockstore_keyset *live,
                     struct blockstore_sweep_stats *out)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (int i = 0; i < NSHARDS; i++) {
        char shard[3] = {b32[i / 32], b32[i % 32], 0};
        int dfd = openat(bs->dirfd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0) {
            if (errno != ENOENT)
                rc = rc ? rc : -errno;
            continue;
        }
        int r = sweep_shard(bs, dfd, live, out);
        rc = rc ? rc : r;
    }
    if (rc < 0)
        log_warn("%s: the collection did not finish: %s", bs->dir, strerror(-rc));
    return rc;
}

/* ---- eviction (a bounded cache of fetched blocks) ---- */

struct ev_entry {
    uint64_t key, rank, bytes;
    char name[REL_MAX]; /* "XY/KEY.data" */
};

static int ev_cmp(const void *a, const void *b)
{
    const struct ev_entry *x = a, *y = b;
    return x->rank < y->rank ? -1 : x->rank > y->rank ? 1 : 0;
}

int blockstore_evict(struct blockstore *bs, const struct blockstore_keyset *keep,
                     uint64_t target, uint64_t (*rank)(void *ud, uint64_t key), void *ud,
                     struct blockstore_evict_stats *out)
{
    memset(out, 0, sizeof *out);
    struct ev_entry *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    int rc = 0;
    for (int i = 0; i < NSHARDS && rc == 0; i++) {
        char shard[3] = {b32[i / 32], b32[i % 32], 0};
        int dfd = openat(bs->dirfd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0) {
            if (errno != ENOENT)
                rc = -errno;
            continue;
        }
        DIR *d = fdopendir(dfd);
        if (!d) {
            rc = -errno;
            close(dfd);
            break;
        }
        for (struct dirent *e; (e = readdir(d));) {
            size_t len = strlen(e->d_name);
            uint8_t mh[CID_MAX_MH];
            ssize_t mn;
            struct stat st;
            if (len < 6 || len + 4 > REL_MAX || strcmp(e->d_name + len - 5, ".data") != 0 ||
                (mn = base32_decode(e->d_name, len - 5, mh, sizeof mh)) < 3 ||
                fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                continue;
            uint64_t bytes = (uint64_t)st.st_blocks * 512u, k = mh_key(mh, (size_t)mn);
            total += bytes;
            if ((st.st_mode & 07777) != BLOCKSTORE_CACHE_MODE ||
                blockstore_keyset_has(keep, k)) {
                out->kept++;
                continue;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                struct ev_entry *nv = realloc(v, nc * sizeof *v);
                if (!nv) {
                    rc = -ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            /* Known recency above every file this process has not used (ranked by mtime). */
            uint64_t r = rank ? rank(ud, k) : 0;
            v[n] = (struct ev_entry){.key = k, .bytes = bytes,
                                     .rank = r ? (1ull << 62) + r : (uint64_t)st.st_mtime};
            snprintf(v[n].name, sizeof v[n].name, "%s/%s", shard, e->d_name);
            n++;
        }
        closedir(d);
    }
    if (rc == 0 && total > target && n > 0) {
        qsort(v, n, sizeof *v, ev_cmp);
        for (size_t i = 0; i < n && total > target; i++) {
            pthread_mutex_lock(&bs->young_lock);
            bool young = blockstore_keyset_has(&bs->young[0], v[i].key) ||
                         blockstore_keyset_has(&bs->young[1], v[i].key);
            bool gone = !young && unlink_block(bs, bs->dirfd, v[i].name) == 0;
            pthread_mutex_unlock(&bs->young_lock);
            if (gone) {
                out->removed++;
                out->removed_bytes += v[i].bytes;
                total -= v[i].bytes;
            } else if (young) {
                out->young++;
            }
        }
    }
    out->left_bytes = total;
    free(v);
    return rc;
}

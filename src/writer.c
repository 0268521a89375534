/* writer.c - see writer.h. */
#include "config.h"

#include "writer.h"

#include "clock.h"
#include "log.h"
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define FILL_CHUNK (1u << 20)

/* A file is imported as it is written once it reaches STREAM_START bytes, written in order
 * (each write ends the file), at most STREAMS_MAX files at a time (each holds two threads and
 * about 2.5 MiB). Smaller files are imported at close, as one block or a few. */
#define STREAM_START (1u << 20)
#define STREAMS_MAX 16
/* A stream keeps what it stored from the store's garbage collection: one that gets no whole
 * chunk for STREAM_IDLE_MS is dropped (close then imports the file), one that cannot be used
 * (a write below it, a failed write) at once. A pass imports at most STREAM_PASS chunks, so
 * that a close or a flush never waits long for it. */
#define STREAM_IDLE_MS 5000u
#define STREAM_PASS 16u
static atomic_int streams_open;

/* Spools of closed handles, emptied (ftruncate to 0), for the next ones: making an O_TMPFILE
 * and freeing it at close cost ext4 an inode each. On ext4, a 4 KB file spooled that way took
 * 19-20 us against 8-11 us for writing and emptying a kept one. An emptied spool is a new one
 * in all that shows (no bytes, size 0, no one else has it); only the directory must be the
 * same. pool_lock protects the pool. */
#define SPOOL_POOL 8
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;
    const char *dir; /* compared by pointer: the mount's spool_dir, which outlives every handle */
} pool[SPOOL_POOL];
static unsigned pool_n;

static int pool_take(const char *dir)
{
    int fd = -1;
    pthread_mutex_lock(&pool_lock);
    for (unsigned i = pool_n; i-- > 0;) {
        if (pool[i].dir == dir) {
            fd = pool[i].fd;
            pool[i] = pool[--pool_n];
            break;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return fd;
}

/* Keep fd (already emptied) for the next spool in dir; false: the pool is full. */
static bool pool_give(int fd, const char *dir)
{
    bool kept = false;
    pthread_mutex_lock(&pool_lock);
    if (pool_n < SPOOL_POOL) {
        pool[pool_n].fd = fd;
        pool[pool_n++].dir = dir;
        kept = true;
    }
    pthread_mutex_unlock(&pool_lock);
    return kept;
}

static void spool_free(int fd, const char *dir)
{
    if (ftruncate(fd, 0) != 0 || !pool_give(fd, dir))
        close(fd);
}

/* /dev/null, opened once: the content of a file never written, as at creat(2). Adds read it
 * with pread only, so one descriptor serves every thread. 0+ or -errno. */
static int dev_null(void)
{
    static atomic_int shared = -1;
    int fd = atomic_load(&shared);
    if (fd >= 0)
        return fd;
    if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    int none = -1;
    if (!atomic_compare_exchange_strong(&shared, &none, fd)) {
        close(fd); /* another thread's came first */
        fd = none;
    }
    return fd;
}

static int spool_create(const char *dir)
{
    int fd = pool_take(dir);
    if (fd >= 0)
        return fd;
    /* O_TMPFILE: never visible, gone when closed, even after a crash. */
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4096];
    snprintf(path, sizeof path, "%s/ipfsfs-spool-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

/* The spool, made now if there is none yet (lock held). 0 or -errno. */
static int spool_locked(struct whandle *h)
{
    if (h->fd >= 0)
        return 0;
    int fd = spool_create(h->spool_dir);
    if (fd < 0) {
        char safe[256];
        log_err("cannot create a spool file in %s: %s",
                log_safe(h->spool_dir, strlen(h->spool_dir), safe, sizeof safe),
                strerror(-fd));
        /* The write that needed it fails: with the reason when it is about space or limits,
         * else EIO (ENOENT or EACCES from the spool directory would mislead). */
        return fd == -ENOSPC || fd == -EDQUOT || fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM
                   ? fd
                   : -EIO;
    }
    h->fd = fd;
    return 0;
}

int writer_open(struct node *n, const struct writer_config *cfg, const struct cid *base,
                uint64_t size, struct whandle **out)
{
    struct whandle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->fd = -1;
    h->spool_dir = cfg->spool_dir;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->klock, NULL);
    (void)cond_init_monotonic(&h->scond);
    atomic_init(&h->refs, 1);
    h->node = n;
    h->add_opts = &cfg->add;
    h->filled = !base || size == 0;
    if (!h->filled) {
        h->base = *base;
        h->base_size = size;
    }
    h->size = h->filled ? 0 : size;
    atomic_init(&h->size_now, h->size);
    *out = h;
    return 0;
}

void writer_hold(struct whandle *h)
{
    atomic_fetch_add(&h->refs, 1);
}

/* Take the stream off the handle (lock held, its thread not in a pass): the caller releases
 * it, outside the lock where it can. */
static struct add_stream *stream_take_locked(struct whandle *h)
{
    struct add_stream *s = h->stream;
    if (s) {
        h->stream = NULL;
        atomic_fetch_sub(&streams_open, 1);
    }
    return s;
}

/* After a flush: the next write may start a stream again, from offset 0. */
static void stream_reset_locked(struct whandle *h)
{
    h->sbroken = false;
    h->sclaim = h->sdone = 0;
}

void writer_close(struct whandle *h)
{
    if (!h || atomic_fetch_sub(&h->refs, 1) > 1)
        return;
    if (h->sthread_on) {
        pthread_mutex_lock(&h->lock);
        h->sstop = true;
        pthread_cond_broadcast(&h->scond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->sthread, NULL);
    }
    struct add_stream *s = stream_take_locked(h); /* no other reference: no lock needed */
    if (s)
        s->ops->release(s);
    if (h->fd >= 0)
        spool_free(h->fd, h->spool_dir);
    pthread_cond_destroy(&h->scond);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->klock);
    free(h);
}

/* The stream's thread: while the file has a whole chunk the stream was not handed yet, hand
 * it what was written (at most STREAM_PASS chunks a pass; the writes go on meanwhile: the lock
 * is not held while it reads the spool). It drops a stream that cannot be used or idles. */
static void *stream_thread(void *arg)
{
    struct whandle *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->sstop) {
        struct add_stream *s = h->stream;
        if (!s) {
            pthread_cond_wait(&h->scond, &h->lock);
            continue;
        }
        uint64_t now = clock_mono_ms();
        if (h->sbroken || h->err || now - h->slast_ms >= STREAM_IDLE_MS) {
            stream_take_locked(h);
            h->sbroken = true; /* no new stream before the next flush */
            pthread_mutex_unlock(&h->lock);
            s->ops->release(s);
            pthread_mutex_lock(&h->lock);
            continue;
        }
        if (h->sflushers == 0 && h->size >= h->sclaim + s->chunk) {
            uint64_t upto = h->size, done = 0, most = h->sdone + STREAM_PASS * (uint64_t)s->chunk;
            if (upto > most)
                upto = most;
            int fd = h->fd;
            h->sclaim = upto;
            h->sbusy = true;
            pthread_mutex_unlock(&h->lock);
            int rc = s->ops->more(s, fd, upto, &done);
            pthread_mutex_lock(&h->lock);
            h->sbusy = false;
            if (rc < 0)
                h->sbroken = true; /* the add at close does it all, and reports what fails */
            else
                h->sdone = done;
            h->slast_ms = clock_mono_ms();
            pthread_cond_broadcast(&h->scond);
            continue;
        }
        uint64_t until = h->slast_ms + STREAM_IDLE_MS;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000u),
                              .tv_nsec = (long)(until % 1000u) * 1000000L};
        pthread_cond_timedwait(&h->scond, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* After a write of [off, end) (lock held): a change below what the stream was handed breaks it
 * (its thread drops it); a file written in order past STREAM_START gets one; a whole new chunk
 * wakes its thread. */
static void stream_note_locked(struct whandle *h, uint64_t off, uint64_t end)
{
    if (off < h->sclaim) {
        h->sbroken = true;
        if (h->stream)
            pthread_cond_signal(&h->scond);
        return;
    }
    if (!h->stream) {
        if (h->sbroken || end != h->size || h->size < STREAM_START || h->fd < 0 ||
            !h->node->ops->add_stream)
            return;
        if (atomic_fetch_add(&streams_open, 1) >= STREAMS_MAX) {
            atomic_fetch_sub(&streams_open, 1);
            return;
        }
        if (h->node->ops->add_stream(h->node, h->add_opts, &h->stream) < 0) {
            h->stream = NULL;
            atomic_fetch_sub(&streams_open, 1);
            h->sbroken = true; /* not again until the next flush */
            return;
        }
        h->slast_ms = clock_mono_ms();
        if (!h->sthread_on) {
            if (pthread_create(&h->sthread, NULL, stream_thread, h) != 0) {
                struct add_stream *s = stream_take_locked(h);
                s->ops->release(s);
                h->sbroken = true;
                return;
            }
            h->sthread_on = true;
        }
    }
    if (!h->sbusy && h->size >= h->sclaim + h->stream->chunk)
        pthread_cond_signal(&h->scond);
}

/* Copy the base content into the spool (lock held). */
static int fill_locked(struct whandle *h)
{
    if (h->filled)
        return 0;
    int rc = spool_locked(h);
    if (rc < 0)
        return rc;
    char *buf = malloc(FILL_CHUNK);
    if (!buf)
        return -ENOMEM;
    for (uint64_t off = 0; off < h->base_size;) {
        size_t len =
            h->base_size - off < FILL_CHUNK ? (size_t)(h->base_size - off) : FILL_CHUNK;
        ssize_t got = node_read(h->node, &h->base, off, len, buf);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        if (pwrite(h->fd, buf, (size_t)got, (off_t)off) != got) {
            rc = errno ? -errno : -EIO;
            break;
        }
        off += (uint64_t)got;
    }
    free(buf);
    if (rc == 0)
        h->filled = true;
    else if (ftruncate(h->fd, 0) != 0)
        rc = -errno;
    return rc;
}

/* A failure that leaves the spool not matching what the program wrote poisons the handle. */
static int poison(struct whandle *h, int rc)
{
    if (rc < 0 && h->err == 0)
        h->err = rc;
    return rc;
}

/* Growth a write or truncate may leave as a hole without a look at the disk. */
#define HOLE_FREE_MIN (64u << 20)

/* A file grown by more than it is given (a hole: truncate -s 10T, a pwrite far past its end)
 * is imported whole when it is stored, its zeros too, at about a second per GiB, inside a
 * request that no signal ends: growth by more than HOLE_FREE_MIN that the spool's disk could
 * not hold as data is refused (EFBIG), as on a filesystem whose files cannot be that large.
 * Not an error of the handle: what it holds stays. h->fd is the spool. */
static int hole_ok_locked(const struct whandle *h, uint64_t new_size)
{
    if (new_size <= h->size || new_size - h->size <= HOLE_FREE_MIN || h->fd < 0)
        return 0;
    struct statvfs v;
    if (fstatvfs(h->fd, &v) < 0)
        return 0; /* cannot tell: the import's own bounds apply */
    uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
    return new_size - h->size > avail ? -EFBIG : 0;
}

ssize_t writer_write(struct whandle *h, const char *buf, size_t len, uint64_t off)
{
    pthread_mutex_lock(&h->lock);
    ssize_t n = h->err;
    if (n == 0)
        n = poison(h, fill_locked(h));
    if (n == 0)
        n = poison(h, spool_locked(h));
    if (n == 0 && off > h->size)
        n = hole_ok_locked(h, off + len);
    if (n == 0) {
        n = pwrite(h->fd, buf, len, (off_t)off);
        if (n < 0) {
            n = poison(h, -errno);
        } else if ((size_t)n < len) {
            /* A short write is the disk filling up: the program will see it, and the rest
             * of what it wrote is not in the spool. */
            poison(h, -ENOSPC);
        }
        if (n > 0) {
            h->dirty = true;
            if (off + (uint64_t)n > h->size) {
                h->size = off + (uint64_t)n;
                atomic_store(&h->size_now, h->size);
            }
            stream_note_locked(h, off, off + (uint64_t)n);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

ssize_t writer_read(struct whandle *h, char *buf, size_t len, uint64_t off)
{
    pthread_mutex_lock(&h->lock);
    int rc = fill_locked(h);
    ssize_t n = rc < 0 ? rc : h->fd < 0 ? 0 : pread(h->fd, buf, len, (off_t)off);
    if (n < 0 && rc == 0)
        n = -errno;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int writer_truncate(struct whandle *h, uint64_t size)
{
    pthread_mutex_lock(&h->lock);
    int rc = h->err;
    if (rc == 0 && size > 0)
        rc = poison(h, fill_locked(h));
    else if (rc == 0)
        h->filled = true; /* nothing of the base survives */
    if (rc == 0 && (size > 0 || h->fd >= 0))
        rc = poison(h, spool_locked(h));
    if (rc == 0)
        rc = hole_ok_locked(h, size);
    if (rc == 0 && h->fd >= 0)
        rc = ftruncate(h->fd, (off_t)size) < 0 ? poison(h, -errno) : 0;
    if (rc == 0) {
        h->size = size;
        atomic_store(&h->size_now, size);
        h->dirty = true;
        if (size < h->sclaim) {
            h->sbroken = true;
            if (h->stream)
                pthread_cond_signal(&h->scond); /* its thread drops it */
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void writer_touch(struct whandle *h)
{
    pthread_mutex_lock(&h->lock);
    h->dirty = true;
    pthread_mutex_unlock(&h->lock);
}

uint64_t writer_size(struct whandle *h)
{
    return atomic_load(&h->size_now); /* h->size, kept with it under the lock */
}

bool writer_dirty(struct whandle *h)
{
    pthread_mutex_lock(&h->lock);
    bool d = h->dirty && h->err == 0;
    pthread_mutex_unlock(&h->lock);
    return d;
}

bool writer_dirty_now(struct whandle *h)
{
    if (pthread_mutex_trylock(&h->lock) != 0)
        return false;
    bool d = h->dirty && h->err == 0;
    pthread_mutex_unlock(&h->lock);
    return d;
}

bool writer_failed_now(struct whandle *h)
{
    if (pthread_mutex_trylock(&h->lock) != 0)
        return false;
    bool failed = h->err != 0;
    pthread_mutex_unlock(&h->lock);
    return failed;
}

bool writer_clean_now(struct whandle *h)
{
    if (pthread_mutex_trylock(&h->lock) != 0)
        return false;
    bool clean = !(h->dirty && h->err == 0);
    pthread_mutex_unlock(&h->lock);
    return clean;
}

void writer_set_known(struct whandle *h, const struct cid *c, uint64_t seq)
{
    pthread_mutex_lock(&h->klock);
    if (!seq || seq >= h->known_seq) {
        h->known = *c;
        h->has_known = true;
        if (seq)
            h->known_seq = seq;
    }
    pthread_mutex_unlock(&h->klock);
}

bool writer_known(struct whandle *h, struct cid *out)
{
    pthread_mutex_lock(&h->klock);
    bool has = h->has_known;
    if (has)
        *out = h->known;
    pthread_mutex_unlock(&h->klock);
    return has;
}

static bool meta_needed(const struct writer_meta *m)
{
    return m && ((m->mode && (m->mode & 07777) != 0644) || m->has_mtime);
}

int writer_link(struct node *n, const struct cid *c, const char *path, bool exists,
                const struct writer_meta *meta)
{
    bool need_meta = meta_needed(meta);
    if (n->ops->mfs_put) {
        bool set_mode = need_meta && meta->mode && (meta->mode & 07777) != 0644;
        bool set_time = need_meta && meta->has_mtime;
        uint32_t mode = meta && set_mode ? meta->mode & 07777 : 0;
        return n->ops->mfs_put(n, c, path, set_mode ? &mode : NULL,
                               set_time ? &meta->mtime : NULL);
    }
    if (!exists && !need_meta) {
        int rc = n->ops->mfs_link(n, c, path);
        if (rc != -EEXIST)
            return rc;
    }
    /* The name exists: link beside it under a temporary name, then move over it. */
    static atomic_uint counter;
    char tmp[4096];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 0;
    snprintf(tmp, sizeof tmp, "%.*s/.ipfsfs-tmp-%ld-%u", dirlen, path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    int rc = n->ops->mfs_link(n, c, tmp);
    if (rc < 0)
        return rc;
    if (need_meta && meta->mode && (meta->mode & 07777) != 0644)
        rc = n->ops->mfs_chmod(n, tmp, meta->mode & 07777);
    if (rc == 0 && need_meta && meta->has_mtime)
        rc = n->ops->mfs_touch(n, tmp, &meta->mtime);
    if (rc == 0)
        rc = n->ops->mfs_mv(n, tmp, path);
    if (rc < 0)
        n->ops->mfs_rm(n, tmp, false);
    return rc;
}

/* Before a flush links this spool's content: if the name holds another CID than this mount
 * last made or saw there (h->known), it was changed elsewhere while the file was open here
 * (on the node, adopted by the sync engine; or by another mount on it). The close keeps the
 * name, as the sync engine's merge keeps the local version, and the other version is kept
 * beside it under a conflict name: nothing is lost (it was overwritten in silence). On the
 * store and local-first mounts (mfs_put), where asking costs no round trip. Under h->lock:
 * the flushes of one spool (two programs appending) check and link one after the other. */
static void keep_theirs_locked(struct whandle *h, const char *path)
{
    struct node *n = h->node;
    struct cid known, cur;
    struct node_stat st;
    if (!n->ops->mfs_put || !writer_known(h, &known) ||
        n->ops->mfs_stat(n, path, &st, &cur) < 0)
        return;
    node_stat_clear(&st);
    if (cid_equal(&cur, &known))
        return;
    const char *slash = strrchr(path, '/');
    char dir[4096], cpath[4096], safe[256], csafe[256];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
    int rc = sync_conflict_name(n, dir[0] ? dir : "/", slash ? slash + 1 : path, cpath,
                                sizeof cpath);
    if (rc == 0)
        rc = n->ops->mfs_link(n, &cur, cpath);
    if (rc == 0)
        log_warn("%s was changed elsewhere while open for writing here: this close keeps the "
                 "name, the other version is kept as %s",
                 log_safe(path, strlen(path), safe, sizeof safe),
                 log_safe(cpath, strlen(cpath), csafe, sizeof csafe));
    else
        log_warn("%s was changed elsewhere while open for writing here, and the other version "
                 "could not be kept beside it: %s",
                 log_safe(path, strlen(path), safe, sizeof safe), strerror(-rc));
}

/* After a flush linked: the name's CID (with its mode and time) is this mount's. */
static void know_linked_locked(struct whandle *h, const char *path)
{
    struct node *n = h->node;
    struct cid cur;
    struct node_stat st;
    if (!n->ops->mfs_put || n->ops->mfs_stat(n, path, &st, &cur) < 0)
        return;
    node_stat_clear(&st);
    writer_set_known(h, &cur, 0);
}

/* Numbers the links every spool makes (writer_flush's seq): one counter for all, so that the
 * links of one name, made under its spool's lock, are numbered in their order. */
static atomic_uint_fast64_t links_made;

int writer_flush(struct whandle *h, const struct writer_config *cfg, const char *path,
                 const struct writer_namer *namer, bool exists, const struct writer_meta *meta,
                 struct cid *cid, uint64_t *size, bool *changed, uint64_t *seq)
{
    *changed = false;
    pthread_mutex_lock(&h->lock);
    /* The stream's pass ends first (it starts no other while a flush waits); from here on the
     * lock is held to the end, so what is checked below holds (another flush of the handle,
     * from another thread, waits for it and then finds it clean). */
    h->sflushers++;
    while (h->sbusy)
        pthread_cond_wait(&h->scond, &h->lock);
    h->sflushers--;
    int rc = h->err;
    if (rc < 0 || !h->dirty)
        goto out;
    rc = poison(h, fill_locked(h));
    if (rc < 0)
        goto out;
    int fd = h->fd;
    if (fd < 0) {
        /* No spool: nothing was ever written (a write, a fill or a truncate to a size makes
         * one), so the content is empty: added from /dev/null. */
        fd = h->size == 0 ? dev_null() : -EIO;
        if (fd < 0) {
            rc = poison(h, fd);
            goto out;
        }
    }
    /* Held across the upload on purpose: the bytes must not change while they are added. */
    rc = -ENOSYS;
    /* A file that stores a mode or a time gets no raw leaves, as `ipfs add` makes it (Kubo
     * turns the raw leaves of CIDv1 off with --preserve-mode or --preserve-mtime, and refuses
     * both asked at once): dag-pb leaves, so the CID is the one it gives. The stream (raw
     * leaves) is then not used. */
    struct node_add_opts ao = cfg->add;
    bool no_raw = meta_needed(meta) &&
                  (ao.raw_leaves > 0 || (ao.raw_leaves < 0 && ao.cid_version == 1));
    if (no_raw)
        ao.raw_leaves = 0;
    struct add_stream *s = stream_take_locked(h);
    if (s && !h->sbroken && !no_raw) /* it imports the rest: add's CID */
        rc = s->ops->end(s, fd, h->size, cid);
    if (rc < 0) /* no stream, or it failed: add it all (and report what fails) */
        rc = h->node->ops->add(h->node, fd, h->size, &ao, cid);
    stream_reset_locked(h);
    bool named = !namer;
    if (rc == 0 && namer) {
        rc = namer->lock(namer->ud, namer->path, PATH_MAX);
        named = rc == 0;
        if (named)
            path = namer->path;
        if (rc == -ENOENT) {
            /* removed or replaced while it was added: what it wrote goes with it, as on a
             * local filesystem (never onto the name's new content) */
            h->dirty = false;
            if (s)
                s->ops->release(s);
            rc = 0;
            goto out;
        }
    }
    if (rc == 0 && exists)
        keep_theirs_locked(h, path);
    if (rc == 0)
        rc = writer_link(h->node, cid, path, exists, meta);
    uint64_t lseq = rc == 0 ? atomic_fetch_add(&links_made, 1) + 1 : 0;
    if (rc == 0 && namer && namer->linked)
        namer->linked(namer->ud, path, cid, h->size, lseq);
    if (rc == 0)
        know_linked_locked(h, path);
    if (s)
        s->ops->release(s); /* after the link: its blocks are the name's now */
    if (rc == 0) {
        h->dirty = false;
        *size = h->size;
        *changed = true;
        if (seq)
            *seq = lseq;
    } else {
        char safe[256];
        poison(h, rc);
        log_warn("could not store %s (%llu bytes): %s; its old content is unchanged",
                 named ? log_safe(path, strlen(path), safe, sizeof safe) : "a file",
                 (unsigned long long)h->size, strerror(-rc));
    }
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* writer.h - writes to names: spool locally, add on flush, link the result in MFS.
 *
 * Bytes written go to a spool file (an unlinked temporary file in the spool directory), never
 * to memory. The spool is made when the first byte needs it (a new file that stays empty, as
 * at creat(2), costs none; an error making it fails that write). A handle opened on existing content fills its spool from the node only when it is
 * first read, written or truncated (so touch or chmod through an open handle cost nothing). On
 * flush (close(2)) a changed spool is streamed to the node's add, and the new CID is linked under
 * the name; only then is the handle clean. A file written in order past 1 MiB is handed to the
 * node's add_stream as it grows, by a thread of the handle's, when the node has one (the store,
 * local-first): the flush then imports only what the stream was not given yet. A write or
 * truncate below what the stream was given drops the stream, and the flush adds it all. If a write, the add or the link fails, the handle is
 * poisoned: every later flush returns that error (so close(2) fails and cp says so), nothing is
 * added, and the name keeps its old content.
 */
#ifndef IPFSFS_WRITER_H
#define IPFSFS_WRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "node.h"

struct writer_config {
    const char *spool_dir;
    struct node_add_opts add;
};

struct whandle {
    atomic_int refs;       /* writer_open's + writer_hold's; writer_close drops one */
    struct whandle *wnext; /* in its name's list of open writers (fs.c, under its wlock) */
    unsigned nopen;        /* fs.c's file handles writing through it (under the same wlock) */
    /* lock protects everything below; held across the fill and the add of this handle. */
    pthread_mutex_t lock;
    int fd;                /* the spool, or -1 until the first byte needs one */
    const char *spool_dir; /* where it goes (the mount's configuration: outlives h) */
    uint64_t size;
    _Atomic uint64_t size_now; /* size, readable without the lock (what fs.c shows) */
    bool dirty;
    int err;        /* sticky -errno of a failed write/fill/flush, or 0 */
    bool filled;    /* spool holds the base content */
    struct node *node;
    struct cid base; /* content the spool starts from, if !filled */
    /* The name's CID as this mount last made or saw it (writer_set_known; has_known: set):
     * another CID there at a flush is a change made elsewhere (fs.c keeps it beside). Under
     * klock, not lock: fs.c sets it while holding its wlock, and lock is held across uploads. */
    pthread_mutex_t klock;
    struct cid known;
    bool has_known;
    uint64_t known_seq; /* the link (writer_flush's seq) it came from; 0: not from a link */
    uint64_t base_size;
    /* A file written in order is imported as it grows (node_ops.add_stream), by a thread of
     * its own, so that close(2) has only its last chunks to import (writer.c). */
    const struct node_add_opts *add_opts; /* the mount's (outlive h) */
    struct add_stream *stream;            /* NULL: none */
    pthread_cond_t scond;                 /* with lock: work for the thread, or it is idle */
    pthread_t sthread;
    bool sthread_on, sstop, sbusy;
    bool sbroken;       /* bytes the stream may have read changed: no stream until a flush */
    unsigned sflushers; /* flushes waiting for the thread's pass: it starts no other */
    uint64_t sclaim;    /* the stream was handed the bytes below this */
    uint64_t sdone;     /* and imported those below this */
    uint64_t slast_ms;  /* when it last had bytes (monotonic): idle streams are dropped */
};

/* Open a spool that starts from base (size bytes; NULL or 0: empty). Returns 0 or -errno. */
int writer_open(struct node *n, const struct writer_config *cfg, const struct cid *base,
                uint64_t size, struct whandle **out);
/* Drop a reference; the spool goes with the last one. */
void writer_close(struct whandle *h);
/* Another reference (a reader of the same name reading from this spool). */
void writer_hold(struct whandle *h);

ssize_t writer_write(struct whandle *h, const char *buf, size_t len, uint64_t off);
ssize_t writer_read(struct whandle *h, char *buf, size_t len, uint64_t off);
int writer_truncate(struct whandle *h, uint64_t size);
/* The name's CID as this mount last made or saw it; writer_known: whether one was set. seq:
 * the link it follows (writer_flush's), or 0: two flushes of one spool may report out of
 * order, and the CID after an earlier link never replaces the one after a later link. */
void writer_set_known(struct whandle *h, const struct cid *c, uint64_t seq);
bool writer_known(struct whandle *h, struct cid *out);
/* Mark the handle changed (so the next flush stores it, e.g. a new empty file). */
void writer_touch(struct whandle *h);
uint64_t writer_size(struct whandle *h);
/* Whether h holds changes its next flush stores (and no failed flush poisoned it). */
bool writer_dirty(struct whandle *h);
/* The same, without waiting: false also while another call holds h (a write, a flush that
 * stores and links it: the caller then cannot count on what h will link). */
bool writer_dirty_now(struct whandle *h);
/* Whether a failed write or flush poisoned h, as far as is known without waiting (false while
 * another call holds h). */
bool writer_failed_now(struct whandle *h);
/* Whether h is known, without waiting, to hold nothing its next flush stores: false while
 * another call holds h (a write, or a flush storing and linking it). */
bool writer_clean_now(struct whandle *h);

/* Metadata a name's new content gets before it is linked under the name. */
struct writer_meta {
    uint32_t mode; /* permission bits to store; 0 (or 0644, a file's default): none */
    bool has_mtime;
    struct timespec mtime; /* tv_nsec in 0..999999999 */
};

/* Where a flush links: the name's path as it is once the content is added (a rename may
 * come while it is). lock writes the path into path (len bytes) and holds the names so that
 * it stays the name's path until the caller ends its own work with it (the caller's lock
 * notes that it holds them, and the caller releases them after writer_flush, whatever it
 * returned); or returns -errno without holding them: -ENOENT when the name is gone (removed,
 * replaced): the content goes with it, unstored, and the flush succeeds. */
struct writer_namer {
    int (*lock)(void *ud, char *path, size_t len);
    void *ud;
    char *path; /* PATH_MAX bytes: where lock writes it */
    /* Optional: called once the content (cid, size bytes; seq: as writer_flush's) is linked
     * at path, before the spool notes the name's CID as its own, under the spool's lock: no
     * other write or flush of the spool comes in between. So a change of the name's metadata
     * made here (chmod, touch) is this mount's, not another's for the next flush to keep
     * beside it as a conflict; and the caller's record of the name's size is set before a
     * later write's (set after it, the older size could replace the later one, and an append
     * of another handle then be placed at that stale end, over a line). */
    void (*linked)(void *ud, const char *path, const struct cid *cid, uint64_t size,
                   uint64_t seq);
};

/* If dirty: add the spool and link it at path (replacing what is there when exists), with
 * meta (NULL: none) applied first. With namer, the path is namer's, found once the content
 * is added (see writer_namer; path is then only what logs call it before). Fills *cid (the added content's: stat path for the CID that
 * holds the metadata) and *size, and sets *changed; with seq, *seq gets the link's number:
 * the links of one spool (one name) are numbered in the order they were made, so that the
 * caller can tell the latest (a later flush by another handle of the spool may report
 * first). Returns 0 or -errno (sticky). */
int writer_flush(struct whandle *h, const struct writer_config *cfg, const char *path,
                 const struct writer_namer *namer, bool exists, const struct writer_meta *meta,
                 struct cid *cid, uint64_t *size, bool *changed, uint64_t *seq);

/* Link content c at path. With exists, replace the name without a moment where it is missing
 * when the node allows it (link beside it under a temporary name, then move over it). With
 * meta, the mode and time are set on the temporary name before it moves: the name never shows
 * the content with the default mode (a 0600 file's bytes readable for a moment). */
int writer_link(struct node *n, const struct cid *c, const char *path, bool exists,
                const struct writer_meta *meta);

#endif

/* writer.h - writes to names: spool locally, add on flush, link the result in MFS.
 *
 * Bytes written go to a spool file (an unlinked temporary file in the spool directory), never
 * to memory. A handle opened on existing content fills its spool from the node only when it is
 * first read, written or truncated (so touch or chmod through an open handle cost nothing). On
 * flush (close(2)) a changed spool is streamed to the node's add, and the new CID is linked under
 * the name; only then is the handle clean. If a write, the add or the link fails, the handle is
 * poisoned: every later flush returns that error (so close(2) fails and cp says so), nothing is
 * added, and the name keeps its old content.
 */
#ifndef IPFSFS_WRITER_H
#define IPFSFS_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "node.h"

struct writer_config {
    const char *spool_dir;
    struct node_add_opts add;
};

struct whandle {
    /* lock protects everything below; held across the fill and the add of this handle. */
    pthread_mutex_t lock;
    int fd;
    uint64_t size;
    bool dirty;
    int err;        /* sticky -errno of a failed write/fill/flush, or 0 */
    bool filled;    /* spool holds the base content */
    struct node *node;
    struct cid base; /* content the spool starts from, if !filled */
    uint64_t base_size;
};

/* Open a spool that starts from base (size bytes; NULL or 0: empty). Returns 0 or -errno. */
int writer_open(struct node *n, const struct writer_config *cfg, const struct cid *base,
                uint64_t size, struct whandle **out);
void writer_close(struct whandle *h);

ssize_t writer_write(struct whandle *h, const char *buf, size_t len, uint64_t off);
ssize_t writer_read(struct whandle *h, char *buf, size_t len, uint64_t off);
int writer_truncate(struct whandle *h, uint64_t size);
/* Mark the handle changed (so the next flush stores it, e.g. a new empty file). */
void writer_touch(struct whandle *h);
uint64_t writer_size(struct whandle *h);
bool writer_dirty(struct whandle *h);

/* If dirty: add the spool and link it at path (replacing what is there when exists). Fills
 * *cid and *size with the result and sets *changed. Returns 0 or -errno (sticky). */
int writer_flush(struct whandle *h, const struct writer_config *cfg, const char *path,
                 bool exists, struct cid *cid, uint64_t *size, bool *changed);

/* Link content c at path. With exists, replace the name without a moment where it is missing
 * when the node allows it (link beside it under a temporary name, then move over it). */
int writer_link(struct node *n, const struct cid *c, const char *path, bool exists);

#endif

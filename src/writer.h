/* writer.h - writes to names: spool locally, add on flush, link the result in MFS.
 *
 * Bytes written go to a spool file (an unlinked temporary file in the spool directory), never
 * to memory. On flush (close(2)) a changed spool is streamed to the node's add, and the new CID
 * is linked under the name; only then is the handle clean. If the add or the link fails, flush
 * returns the error (so close(2) fails and cp says so) and the name keeps its old content.
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
    /* lock protects fd contents, size and dirty: one handle may see concurrent writes. */
    pthread_mutex_t lock;
    int fd;
    uint64_t size;
    bool dirty;
};

/* Open a spool. If base is given (the name's current content, size bytes), the spool starts
 * from it (read through the node). Returns 0 or -errno. */
int writer_open(struct node *n, const struct writer_config *cfg, const struct cid *base,
                uint64_t size, struct whandle **out);
void writer_close(struct whandle *h);

ssize_t writer_write(struct whandle *h, const char *buf, size_t len, uint64_t off);
ssize_t writer_read(struct whandle *h, char *buf, size_t len, uint64_t off);
int writer_truncate(struct whandle *h, uint64_t size);

/* If dirty: add the spool and link it at path (replacing what is there). Fills *cid and *size
 * with the result. Returns 0 (also when clean, with *changed false) or -errno. */
int writer_flush(struct whandle *h, struct node *n, const struct writer_config *cfg,
                 const char *path, struct cid *cid, uint64_t *size, bool *changed);

/* Link content c at path, replacing an existing file there without a moment where the name
 * is missing when the node allows it (Kubo's mv replaces; otherwise remove, then move). */
int writer_link(struct node *n, const struct cid *c, const char *path);

#endif

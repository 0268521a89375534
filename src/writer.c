/* writer.c - see writer.h. */
#include "config.h"

#include "writer.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILL_CHUNK (1u << 20)

static int spool_create(const char *dir)
{
    /* O_TMPFILE: never visible, gone when closed, even after a crash. */
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
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

int writer_open(struct node *n, const struct writer_config *cfg, const struct cid *base,
                uint64_t size, struct whandle **out)
{
    struct whandle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->fd = spool_create(cfg->spool_dir);
    if (h->fd < 0) {
        int rc = h->fd;
        log_err("cannot create a spool file in %s: %s", cfg->spool_dir, strerror(-rc));
        free(h);
        return rc;
    }
    pthread_mutex_init(&h->lock, NULL);
    int rc = 0;
    if (base && size > 0) {
        char *buf = malloc(FILL_CHUNK);
        if (!buf) {
            rc = -ENOMEM;
            goto out;
        }
        for (uint64_t off = 0; off < size && rc == 0;) {
            size_t len = size - off < FILL_CHUNK ? (size_t)(size - off) : FILL_CHUNK;
            ssize_t got = node_read(n, base, off, len, buf);
            if (got < 0) {
                rc = (int)got;
                break;
            }
            if (pwrite(h->fd, buf, (size_t)got, (off_t)off) != got) {
                rc = -errno ? -errno : -EIO;
                break;
            }
            off += (uint64_t)got;
        }
        free(buf);
        h->size = size;
    }
out:
    if (rc < 0) {
        writer_close(h);
        return rc;
    }
    *out = h;
    return 0;
}

void writer_close(struct whandle *h)
{
    if (!h)
        return;
    close(h->fd);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

ssize_t writer_write(struct whandle *h, const char *buf, size_t len, uint64_t off)
{
    pthread_mutex_lock(&h->lock);
    ssize_t n = pwrite(h->fd, buf, len, (off_t)off);
    if (n < 0) {
        n = -errno;
    } else {
        h->dirty = true;
        if (off + (uint64_t)n > h->size)
            h->size = off + (uint64_t)n;
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

ssize_t writer_read(struct whandle *h, char *buf, size_t len, uint64_t off)
{
    ssize_t n = pread(h->fd, buf, len, (off_t)off);
    return n < 0 ? -errno : n;
}

int writer_truncate(struct whandle *h, uint64_t size)
{
    pthread_mutex_lock(&h->lock);
    int rc = ftruncate(h->fd, (off_t)size) < 0 ? -errno : 0;
    if (rc == 0) {
        h->size = size;
        h->dirty = true;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int writer_link(struct node *n, const struct cid *c, const char *path)
{
    int rc = n->ops->mfs_link(n, c, path);
    if (rc != -EEXIST)
        return rc;
    /* The name exists: link beside it under a temporary name, then move over it. */
    static atomic_uint counter;
    char tmp[4096];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 0;
    snprintf(tmp, sizeof tmp, "%.*s/.ipfsfs-tmp-%ld-%u", dirlen, path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    rc = n->ops->mfs_link(n, c, tmp);
    if (rc < 0)
        return rc;
    rc = n->ops->mfs_mv(n, tmp, path);
    if (rc < 0)
        n->ops->mfs_rm(n, tmp, false);
    return rc;
}

int writer_flush(struct whandle *h, struct node *n, const struct writer_config *cfg,
                 const char *path, struct cid *cid, uint64_t *size, bool *changed)
{
    *changed = false;
    pthread_mutex_lock(&h->lock);
    if (!h->dirty) {
        pthread_mutex_unlock(&h->lock);
        return 0;
    }
    /* Held across the upload on purpose: the bytes must not change while they are added. */
    uint64_t sz = h->size;
    int rc = n->ops->add(n, h->fd, sz, &cfg->add, cid);
    if (rc == 0)
        rc = writer_link(n, cid, path);
    if (rc == 0) {
        h->dirty = false;
        *size = sz;
        *changed = true;
    } else {
        log_warn("could not store %s (%llu bytes): %s; its old content is unchanged", path,
                 (unsigned long long)sz, strerror(-rc));
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

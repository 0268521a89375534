/* fs.c - the FUSE low-level handlers. Thin: each one decodes the request, asks the modules,
 * and reaches exactly one fuse_reply_*. */
#include "config.h"

#include "fs.h"

#include "dircache.h"
#include "inode.h"
#include "log.h"
#include "reader.h"
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define XATTR_CID "user.ipfs.cid"
#define XATTR_CID_KUBO "ipfs.cid"
#define XATTR_STATS "user.ipfsfs.stats"

struct fs {
    struct fs_config cfg;
    struct node *node;
    struct inode_table *inodes;
    struct dircache *dc;
    struct reader *reader;
    struct resolver res;
    uid_t uid;
    gid_t gid;
    time_t started;
};

static struct fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* FUSE node ids are inode pointers; 1 is the root. */
static struct inode *ino_of(fuse_ino_t id)
{
    return (struct inode *)(uintptr_t)id;
}

int fs_new(struct node *node, const struct fs_config *cfg, struct fs **out)
{
    struct fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        return -ENOMEM;
    fs->cfg = *cfg;
    fs->node = node;
    fs->uid = getuid();
    fs->gid = getgid();
    fs->started = time(NULL);
    int rc = inode_table_new(&fs->inodes);
    if (rc == 0)
        rc = dircache_new(node, cfg->dircache_bytes, &fs->dc);
    if (rc < 0) {
        fs_free(fs);
        return rc;
    }
    fs->res = (struct resolver){.node = node, .dc = fs->dc, .inodes = fs->inodes};
    *out = fs;
    return 0;
}

int fs_start(struct fs *fs)
{
    struct reader_config rcfg = {
        .cache_bytes = fs->cfg.cache_bytes,
        .chunk_size = fs->cfg.chunk_size,
        .readahead_max = fs->cfg.readahead_bytes,
        .workers = fs->cfg.fetch_workers,
    };
    return reader_new(fs->node, &rcfg, &fs->reader);
}

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    if (fs->reader)
        reader_free(fs->reader);
    dircache_free(fs->dc);
    inode_table_free(fs->inodes);
    node_destroy(fs->node);
    free(fs);
}

int fs_stats(struct fs *fs, char *buf, size_t len)
{
    size_t o = 0;
    int n = snprintf(buf, len, "node %s\nuptime_seconds %lld\ninodes %" PRIu64 "\n",
                     fs->node->description, (long long)(time(NULL) - fs->started),
                     inode_count(fs->inodes));
    if (n < 0)
        return n;
    o += (size_t)n;
    if (fs->reader) {
        n = reader_stats(fs->reader, buf + (o < len ? o : len), o < len ? len - o : 0);
        o += n > 0 ? (size_t)n : 0;
    }
    n = dircache_stats(fs->dc, buf + (o < len ? o : len), o < len ? len - o : 0);
    o += n > 0 ? (size_t)n : 0;
    if (fs->node->ops->stats) {
        n = fs->node->ops->stats(fs->node, buf + (o < len ? o : len), o < len ? len - o : 0);
        o += n > 0 ? (size_t)n : 0;
    }
    return (int)o;
}

static void fill_attr(struct fs *fs, const struct inode *ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino->key;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_blksize = (blksize_t)fs->cfg.chunk_size;
    /* Content under a CID never changes: never writable, whatever mode was stored. */
    mode_t perm = ino->mode ? (ino->mode & 07555) : 0;
    switch (ino->kind) {
    case NODE_DIR:
        st->st_mode = S_IFDIR | (perm ? perm : 0555);
        st->st_nlink = 2;
        break;
    case NODE_SYMLINK:
        st->st_mode = S_IFLNK | 0777;
        st->st_nlink = 1;
        st->st_size = (off_t)ino->size;
        break;
    default:
        st->st_mode = S_IFREG | (perm ? perm : 0444);
        st->st_nlink = 1;
        st->st_size = (off_t)ino->size;
        break;
    }
    st->st_blocks = (blkcnt_t)((ino->size + 511) / 512);
    /* No time is known unless UnixFS 1.5 stored one: the epoch, the same on every mount, so
     * tools comparing times (make, rsync) see content that never changes. */
    if (ino->has_mtime)
        st->st_mtim.tv_sec = ino->mtime;
    st->st_atim = st->st_mtim;
    st->st_ctim = st->st_mtim;
}

static void fill_root_attr(struct fs *fs, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = FUSE_ROOT_ID;
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_mtim.tv_sec = fs->started;
    st->st_atim = st->st_mtim;
    st->st_ctim = st->st_mtim;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* Many parallel reads in flight let our readahead and the kernel's overlap. */
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    /* Ask for the largest readahead the kernel allows (it caps this). */
    conn->max_readahead = UINT32_MAX;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
        conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    if (conn->capable & FUSE_CAP_SPLICE_MOVE)
        conn->want |= FUSE_CAP_SPLICE_MOVE;
    /* We do not implement readdirplus yet: plain readdir, attributes come with lookups. */
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS;
    log_debug("kernel: max_readahead %u, max_write %u, capable 0x%x", conn->max_readahead,
              conn->max_write, conn->capable);
}

static void reply_entry(fuse_req_t req, struct fs *fs, struct inode *ino, double timeout)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = (fuse_ino_t)(uintptr_t)ino;
    e.generation = 1;
    fill_attr(fs, ino, &e.attr);
    e.attr_timeout = timeout;
    e.entry_timeout = timeout;
    if (fuse_reply_entry(req, &e) == -ENOENT) /* the lookup was interrupted */
        inode_forget(fs->inodes, ino, 1);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    struct inode *ino;
    int rc;
    if (parent == FUSE_ROOT_ID) {
        rc = resolve_root(&fs->res, name, &ino);
        if (rc < 0) {
            /* Never cache a miss at the root: content not found now may appear later. */
            fuse_reply_err(req, -rc);
            return;
        }
        reply_entry(req, fs, ino, fs->cfg.immutable_timeout);
        return;
    }
    rc = resolve_child(&fs->res, ino_of(parent), name, &ino);
    if (rc == -ENOENT) {
        /* Inside an immutable directory a missing name stays missing: cache the miss. */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.entry_timeout = fs->cfg.immutable_timeout;
        fuse_reply_entry(req, &e);
        return;
    }
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    reply_entry(req, fs, ino, fs->cfg.immutable_timeout);
}

static void fs_forget(fuse_req_t req, fuse_ino_t id, uint64_t nlookup)
{
    if (id != FUSE_ROOT_ID)
        inode_forget(fs_of(req)->inodes, ino_of(id), nlookup);
    fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct fs *fs = fs_of(req);
    for (size_t i = 0; i < count; i++)
        if (forgets[i].ino != FUSE_ROOT_ID)
            inode_forget(fs->inodes, ino_of(forgets[i].ino), forgets[i].nlookup);
    fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct stat st;
    (void)fi;
    if (id == FUSE_ROOT_ID) {
        fill_root_attr(fs, &st);
        fuse_reply_attr(req, &st, fs->cfg.root_timeout);
        return;
    }
    fill_attr(fs, ino_of(id), &st);
    fuse_reply_attr(req, &st, fs->cfg.immutable_timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t id)
{
    if (id == FUSE_ROOT_ID || ino_of(id)->kind != NODE_SYMLINK) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    fuse_reply_readlink(req, ino_of(id)->target);
}

/* An open directory holds a reference to its listing (NULL for the root, which lists nothing
 * yet: CIDs are found by lookup, never listed). */
static void fs_opendir(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    fi->fh = 0;
    if (id != FUSE_ROOT_ID) {
        struct inode *ino = ino_of(id);
        if (ino->kind != NODE_DIR) {
            fuse_reply_err(req, ENOTDIR);
            return;
        }
        const struct dirlist *l;
        int rc = dircache_get(fs->dc, &ino->cid, &l);
        if (rc < 0) {
            fuse_reply_err(req, -rc);
            return;
        }
        fi->fh = (uint64_t)(uintptr_t)l;
        fi->keep_cache = 1;
        fi->cache_readdir = 1;
    }
    if (fuse_reply_open(req, fi) == -ENOENT && fi->fh)
        dircache_put(fs->dc, (const struct dirlist *)(uintptr_t)fi->fh);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t id, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    const struct dirlist *l = (const struct dirlist *)(uintptr_t)fi->fh;
    const struct inode *dir = id == FUSE_ROOT_ID ? NULL : ino_of(id);
    size_t total = 2 + (l ? l->n : 0);
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    struct stat st;
    memset(&st, 0, sizeof st);
    for (size_t i = off < 0 ? 0 : (size_t)off; i < total; i++) {
        const char *name;
        if (i < 2) {
            name = i == 0 ? "." : "..";
            st.st_ino = i == 0 && dir ? dir->key : FUSE_ROOT_ID;
            st.st_mode = S_IFDIR;
        } else {
            const struct dirent_rec *e = &l->entries[i - 2];
            name = e->name;
            st.st_ino = inode_key_child(&dir->cid, e->name, strlen(e->name));
            st.st_mode = e->kind == NODE_DIR       ? S_IFDIR
                         : e->kind == NODE_FILE    ? S_IFREG
                         : e->kind == NODE_SYMLINK ? S_IFLNK
                                                   : 0; /* DT_UNKNOWN: stat will tell */
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    (void)id;
    if (fi->fh)
        dircache_put(fs_of(req)->dc, (const struct dirlist *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void fs_open(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    if (id == FUSE_ROOT_ID) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    struct inode *ino = ino_of(id);
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (ino->kind == NODE_DIR) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    struct reader_handle *h = reader_open(fs->reader, &ino->cid, ino->size);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    /* Immutable content: pages stay valid across opens. */
    fi->keep_cache = 1;
    if (fuse_reply_open(req, fi) == -ENOENT)
        reader_close(h);
}

static void fs_read(fuse_req_t req, fuse_ino_t id, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)id;
    struct reader_handle *h = (struct reader_handle *)(uintptr_t)fi->fh;
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = reader_read(h, (uint64_t)off, size, buf);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

static void fs_release(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    (void)id;
    reader_close((struct reader_handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void reply_xattr_value(fuse_req_t req, const char *val, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, val, len);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t id, const char *name, size_t size)
{
    struct fs *fs = fs_of(req);
    if (id == FUSE_ROOT_ID) {
        if (strcmp(name, XATTR_STATS) == 0) {
            char buf[8192];
            int n = fs_stats(fs, buf, sizeof buf);
            reply_xattr_value(req, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n
                                                                            : sizeof buf - 1,
                              size);
            return;
        }
        fuse_reply_err(req, ENODATA);
        return;
    }
    if (strcmp(name, XATTR_CID) == 0 || strcmp(name, XATTR_CID_KUBO) == 0) {
        char s[CID_STR_MAX];
        int n = cid_format(&ino_of(id)->cid, s, sizeof s);
        if (n < 0)
            fuse_reply_err(req, EIO);
        else
            reply_xattr_value(req, s, (size_t)n, size);
        return;
    }
    fuse_reply_err(req, ENODATA);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t id, size_t size)
{
    static const char cids[] = XATTR_CID "\0" XATTR_CID_KUBO;
    static const char root[] = XATTR_STATS;
    if (id == FUSE_ROOT_ID)
        reply_xattr_value(req, root, sizeof root, size);
    else
        reply_xattr_value(req, cids, sizeof cids, size);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t id)
{
    (void)id;
    struct statvfs sv;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_namemax = 255;
    sv.f_flag = ST_RDONLY;
    fuse_reply_statfs(req, &sv);
}

/* Everything that would change content: under a CID nothing can. */
static void fs_erofs(fuse_req_t req)
{
    fuse_reply_err(req, EROFS);
}
static void fs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
    (void)p, (void)n, (void)m;
    fs_erofs(req);
}
static void fs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
    (void)p, (void)n, (void)m, (void)d;
    fs_erofs(req);
}
static void fs_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
    (void)p, (void)n;
    fs_erofs(req);
}
static void fs_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
    (void)l, (void)p, (void)n;
    fs_erofs(req);
}
static void fs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn,
                      unsigned int f)
{
    (void)p, (void)n, (void)np, (void)nn, (void)f;
    fs_erofs(req);
}
static void fs_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
    (void)i, (void)np, (void)nn;
    fs_erofs(req);
}
static void fs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
                      struct fuse_file_info *fi)
{
    (void)p, (void)n, (void)m, (void)fi;
    fs_erofs(req);
}
static void fs_setattr(fuse_req_t req, fuse_ino_t i, struct stat *a, int s,
                       struct fuse_file_info *fi)
{
    (void)i, (void)a, (void)s, (void)fi;
    fs_erofs(req);
}
static void fs_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t sz,
                        int f)
{
    (void)i, (void)n, (void)v, (void)sz, (void)f;
    fs_erofs(req);
}
static void fs_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
    (void)i, (void)n;
    fs_erofs(req);
}

const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .readlink = fs_readlink,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .releasedir = fs_releasedir,
    .open = fs_open,
    .read = fs_read,
    .release = fs_release,
    .getxattr = fs_getxattr,
    .listxattr = fs_listxattr,
    .statfs = fs_statfs,
    .mkdir = fs_mkdir,
    .mknod = fs_mknod,
    .unlink = fs_unlink,
    .rmdir = fs_unlink,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .create = fs_create,
    .setattr = fs_setattr,
    .setxattr = fs_setxattr,
    .removexattr = fs_removexattr,
};

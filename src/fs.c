/* fs.c - the FUSE low-level handlers. Thin: each one decodes the request, asks the modules,
 * and reaches exactly one fuse_reply_*. */
#include "config.h"

#include "fs.h"

#include "clock.h"
#include "dircache.h"
#include "inode.h"
#include "log.h"
#include "reader.h"
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define XATTR_CID "user.ipfs.cid"
#define XATTR_CID_KUBO "ipfs.cid"
#define XATTR_STATS "user.ipfsfs.stats"
#define XATTR_SYNC "user.ipfsfs.sync"
#define XATTR_SYNC_LINK "ipfsfs.sync" /* the same, for symlinks (no user. there) */
/* Spare read buffers kept for reuse: a fresh 1 MiB malloc per read is a fresh mmap (main.c pins
 * the mmap threshold at 128 KiB), 256 page faults and a munmap. Bounded, so 64 FUSE threads do
 * not each keep a buffer: at most READ_POOL x the largest read (1 MiB) stays allocated. */
#define READ_POOL 8

/* An entry in one of the lists of open handles; the first member of both kinds of handle. */
struct hlink {
    struct hlink *prev, *next;
};

struct fs {
    struct fs_config cfg;
    struct node *node;
    struct inode_table *inodes;
    struct dircache *dc;
    struct reader *reader;
    struct resolver res;
    /* wlock protects every inode's nwriters and writers (open write handles and their
     * spools), and each whandle's wnext link. */
    pthread_mutex_t wlock;
    /* hlock guards the lists of open handles (files, dirs: struct fhandle, struct dhandle)
     * and their links. fs_free frees the handles the kernel never released: the connection
     * ended with files open (SIGTERM, a lazy unmount racing the last release). */
    pthread_mutex_t hlock;
    struct hlink *files, *dirs;
    /* nlock keeps a name's path what the node has under it: held exclusively by a rename
     * from its checks until the inode table follows the node's move, shared by what finds
     * or changes a name by its path (a lookup or refresh that enters what the node says into
     * the inode found by that path, a create, a flush's link and what follows it). Without
     * it, a close linked at the path its file had before a rename (the data lost under the
     * old name, or ENOENT), and a name replaced by rename took the new content into the old
     * inode (a reader saw a short file or two versions). Prefers readers: a shared holder
     * never waits for a waiting rename (flush takes it holding its spool's lock, and a
     * lookup may hold it while it waits on that spool). Never held across an import. */
    pthread_rwlock_t nlock;
    /* rlock guards the spare read buffers (rbuf, rcap, nr); a buffer taken is its reader's. */
    pthread_mutex_t rlock;
    char *rbuf[READ_POOL];
    size_t rcap[READ_POOL];
    unsigned nr;
    uid_t uid;
    gid_t gid;
    time_t started;
    bool times_loaded; /* cfg.times_path was read: write it back at the end */
};

/* An open file: a reader for immutable content, a spool for a name opened for writing. */
struct fhandle {
    struct hlink link; /* first: in fs->files once opened */
    struct inode *ino;
    struct whandle *wh;
    /* A name opened for reading follows its content: after another handle's close (or an
     * outside change) gave the name new content, the next read moves rh there (fs_read).
     * swap guards rh, rcid, rsize, held and holding of such a handle: reads take it shared,
     * a move exclusive. Other handles never move, and leave swap unused (follows false). */
    pthread_rwlock_t swap;
    bool follows;
    struct reader_handle *rh;
    struct cid rcid; /* what rh reads, and its size */
    uint64_t rsize;
    struct cid held; /* the content it opened, kept from collection (node_hold) */
    bool holding;
};

/* An open directory: a listing from the cache (CID) or one of our own (names). */
struct dhandle {
    struct hlink link; /* first: in fs->dirs once opened */
    const struct dirlist *l;
    struct dirlist *owned;
};

#define TMP_PREFIX ".ipfsfs-tmp-"

static void handle_track(struct fs *fs, struct hlink **head, struct hlink *h)
{
    pthread_mutex_lock(&fs->hlock);
    h->prev = NULL;
    h->next = *head;
    if (*head)
        (*head)->prev = h;
    *head = h;
    pthread_mutex_unlock(&fs->hlock);
}

/* Unlink h from *head if it is there (a handle never tracked has no links). */
static void handle_untrack(struct fs *fs, struct hlink **head, struct hlink *h)
{
    pthread_mutex_lock(&fs->hlock);
    if (h->prev)
        h->prev->next = h->next;
    else if (*head == h)
        *head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
    pthread_mutex_unlock(&fs->hlock);
}


static struct fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* FUSE node ids are inode pointers; 1 is the root. */
static struct inode *ino_of_fs(struct fs *fs, fuse_ino_t id)
{
    return id == FUSE_ROOT_ID ? inode_root(fs->inodes) : (struct inode *)(uintptr_t)id;
}
#define ino_of(id) ino_of_fs(fs, (id))

static fuse_ino_t id_of(struct fs *fs, struct inode *ino)
{
    return ino == inode_root(fs->inodes) ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)ino;
}

/* A name's path in MFS: -ENOENT for one removed or replaced while the kernel still holds it,
 * except in the IPNS namespace, where a republished name's old inodes (a shell's cwd inside
 * it) read what the name holds now. */
static int mfs_path(struct fs *fs, const struct inode *ino, char *buf, size_t len)
{
    return inode_mfs_path(fs->inodes, ino, fs->cfg.mfs_root, fs->cfg.names_follow_content, buf,
                          len);
}

static int mfs_child_path(struct fs *fs, const struct inode *dir, const char *name, char *buf,
                          size_t len)
{
    int rc = mfs_path(fs, dir, buf, len);
    if (rc < 0)
        return rc;
    size_t o = strlen(buf);
    int n = snprintf(buf + o, len - o, "%s%s", o > 0 && buf[o - 1] == '/' ? "" : "/", name);
    return n < 0 || (size_t)n >= len - o ? -ENAMETOOLONG : 0;
}

/* A name at the root may not look like a CID: /ipfs/<cid> must always mean that CID. */
/* A root name that parses as a CID is content, except a key (codec libp2p-key: an IPNS name,
 * k51..., which the IPNS namespace resolves as a name). */
static bool name_is_cid(const struct inode *dir, struct fs *fs, const char *name)
{
    struct cid c;
    /* At the IPNS root every name is a name: Qm... there is a peer ID (an RSA key). */
    return dir == inode_root(fs->inodes) && !fs->cfg.names_follow_content &&
           cid_parse(name, strlen(name), &c) == 0 && c.codec != CID_CODEC_LIBP2P_KEY;
}

int fs_new(struct node *node, const struct fs_config *cfg, struct fs **out)
{
    struct fs *fs = calloc(1, sizeof *fs);
    if (!fs) {
        node_destroy(node); /* ours from the call on, as on every other failure */
        return -ENOMEM;
    }
    fs->cfg = *cfg;
    fs->node = node;
    fs->uid = getuid();
    fs->gid = getgid();
    fs->started = time(NULL);
    pthread_mutex_init(&fs->wlock, NULL);
    pthread_mutex_init(&fs->hlock, NULL);
    pthread_mutex_init(&fs->rlock, NULL);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_READER_NP);
    pthread_rwlock_init(&fs->nlock, &ra);
    pthread_rwlockattr_destroy(&ra);
    int rc = inode_table_new(&fs->inodes);
    if (rc == 0)
        rc = dircache_new(node, cfg->dircache_bytes, &fs->dc);
    if (rc < 0) {
        fs_free(fs);
        return rc;
    }
    fs->res = (struct resolver){.node = node, .dc = fs->dc, .inodes = fs->inodes};
    if (cfg->times_path) {
        rc = inode_times_load(fs->inodes, cfg->times_path);
        if (rc < 0)
            log_warn("%s: %s: names show this mount's start until they change",
                     cfg->times_path, rc == -EINVAL ? "not a change times file" : strerror(-rc));
        fs->times_loaded = true;
    }
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
        .timeout_ms = fs->cfg.read_timeout_ms ? fs->cfg.read_timeout_ms : fs->cfg.timeout_ms,
    };
    if (fs->node->ops->start) {
        int rc = fs->node->ops->start(fs->node);
        if (rc < 0)
            return rc;
    }
    return reader_new(fs->node, &rcfg, &fs->reader);
}

static void fhandle_free(struct fs *fs, struct fhandle *fh);
static void dhandle_free(struct fs *fs, struct dhandle *dh);

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    /* No request runs any more. Handles still open were never released: what they wrote
     * since their last flush was never stored (close(2) fails with ENOTCONN) and goes. */
    while (fs->files) {
        struct fhandle *fh = (struct fhandle *)fs->files;
        char path[PATH_MAX], safe[256];
        if (fh->wh && writer_dirty(fh->wh) && mfs_path(fs, fh->ino, path, sizeof path) == 0)
            log_warn("%s was still open for writing: what was written since it was opened or "
                     "last flushed is dropped, the name keeps its stored content",
                     log_safe(path, strlen(path), safe, sizeof safe));
        fhandle_free(fs, fh);
    }
    while (fs->dirs)
        dhandle_free(fs, (struct dhandle *)fs->dirs);
    if (fs->reader)
        reader_free(fs->reader);
    for (unsigned i = 0; i < fs->nr; i++)
        free(fs->rbuf[i]);
    dircache_free(fs->dc);
    if (fs->times_loaded) {
        int rc = inode_times_save(fs->inodes, fs->cfg.times_path);
        if (rc < 0)
            log_warn("cannot keep names' change times in %s: %s", fs->cfg.times_path,
                     strerror(-rc));
    }
    inode_table_free(fs->inodes);
    node_destroy(fs->node);
    pthread_rwlock_destroy(&fs->nlock);
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

/* The size of the spool a name is written through, if one is: the size shown while it is open
 * for writing. Read without waiting for a write or a flush that holds the spool, and always
 * the spool's own: a flush's or a write's note on the inode may land after a later write to
 * the same spool by another handle, and a smaller size shown would make the kernel put the
 * next O_APPEND write over the last one. */
static bool writing_size(struct fs *fs, const struct inode *ino, uint64_t *size)
{
    pthread_mutex_lock(&fs->wlock);
    struct whandle *wh = ino->writers;
    while (wh && wh->nopen == 0)
        wh = wh->wnext;
    if (wh)
        *size = writer_size(wh);
    pthread_mutex_unlock(&fs->wlock);
    return wh != NULL;
}

/* Modes shown never carry setuid, setgid or sticky: anyone can store any UnixFS mode, and a
 * mount with -o suid must not turn a hostile file into a setuid program (permission bits
 * only, for names as for content under a CID). */
static void fill_attr(struct fs *fs, const struct inode *ino, struct stat *st)
{
    if (ino->mfs) {
        struct mfs_attr a;
        inode_mfs_get(fs->inodes, ino, &a);
        uint64_t w;
        if (ino->kind == NODE_FILE && writing_size(fs, ino, &w))
            a.size = w;
        memset(st, 0, sizeof *st);
        st->st_ino = ino == inode_root(fs->inodes) ? FUSE_ROOT_ID : ino->key;
        st->st_uid = fs->uid;
        st->st_gid = fs->gid;
        st->st_blksize = (blksize_t)fs->cfg.chunk_size;
        /* Read-only (--ipns): no write bits, and 0444/0555 for a stored mode left with none,
         * as for content under a CID. */
        mode_t wmask = fs->cfg.read_only ? 0555 : 0777;
        if (fs->cfg.read_only && !(a.mode & wmask))
            a.mode = 0;
        switch (ino->kind) {
        case NODE_DIR:
            st->st_mode = S_IFDIR | ((a.mode ? a.mode : fs->cfg.read_only ? 0555 : 0755) & wmask);
            st->st_nlink = 2;
            break;
        case NODE_SYMLINK:
            st->st_mode = S_IFLNK | 0777;
            st->st_nlink = 1;
            st->st_size = (off_t)a.size;
            break;
        default:
            st->st_mode = S_IFREG | ((a.mode ? a.mode : fs->cfg.read_only ? 0444 : 0644) & wmask);
            st->st_nlink = 1;
            st->st_size = (off_t)a.size;
            break;
        }
        st->st_blocks = (blkcnt_t)((a.size + 511) / 512);
        /* A stored time; else when this mount saw the content change; else its start. A
         * directory's stored time does not move with its names (the node's MFS never moves
         * it, and the CID would change): it shows when this mount saw its names change, when
         * that is later (cp -a, tar x and rsync -a set it last, which starts afresh), as any
         * directory's: Python's import cache, git's untracked cache and make look at it. */
        if (a.has_mtime) {
            st->st_mtim = (struct timespec){a.mtime, a.mtime_nsec};
            if (ino->kind == NODE_DIR && a.changed_ns / 1000000000 >= a.mtime &&
                a.changed_ns > a.mtime * 1000000000 + a.mtime_nsec)
                st->st_mtim = (struct timespec){a.changed_ns / 1000000000,
                                                a.changed_ns % 1000000000};
        } else if (a.changed_ns)
            st->st_mtim = (struct timespec){a.changed_ns / 1000000000, a.changed_ns % 1000000000};
        else
            st->st_mtim.tv_sec = fs->started;
        st->st_atim = st->st_mtim;
        st->st_ctim = st->st_mtim;
        return;
    }
    memset(st, 0, sizeof *st);
    st->st_ino = ino->key;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_blksize = (blksize_t)fs->cfg.chunk_size;
    /* Content under a CID never changes: never writable, whatever mode was stored. */
    mode_t perm = ino->mode ? (ino->mode & 0555) : 0;
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
        st->st_mtim = (struct timespec){ino->mtime, ino->mtime_nsec};
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
    /* Lookups and listings in one directory run in parallel. Without this the kernel holds a
     * per-directory mutex across each lookup, so one lookup waiting on the node (a CID the
     * node cannot find, at the root) stalls every other lookup in that directory for up to
     * --timeout. libfuse >= 3.17 passes it on only when asked; older ones never do (main.c
     * sets it in the INIT reply for them). */
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    /* The filesystem, not the kernel, clears setuid and setgid on a chown, write or truncation.
     * None is ever shown (fill_attr), so there is never one to clear. Without this the kernel
     * reads the file's attributes back before every chown, to clear them itself: one GETATTR
     * more for each file that tar or cp -a make as root (main.c passes it to libfuse < 3.17). */
    if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
        conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
    /* v2 also says so for writes (and no security.capability is ever stored: foreign_xattr).
     * The kernel then marks the superblock SB_NOSEC: after one GETXATTR(security.capability)
     * per file (again after each refresh of its attributes), writes stop asking. Without it
     * every write(2) costs that GETXATTR too: dd bs=4k of 40 MiB was 10,240 round trips more.
     * (main.c sets it for libfuse < 3.17.) */
#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2
    if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2)
        conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
#endif
    /* No FUSE_CAP_POSIX_ACL: no name ever has an ACL (setxattr is refused), and without the
     * capability the kernel neither checks ACLs in permission checks nor caches them, so
     * getxattr(system.posix_acl_*) can answer "not supported" (foreign_xattr): coreutils ls -l
     * then stops asking for the rest of the device after one file, instead of one getxattr per
     * file (10,000 round trips cold, 10,000 syscalls warm in a 10k-entry directory). */
    conn->want &= ~(unsigned)FUSE_CAP_POSIX_ACL;
    /* READDIRPLUS: a listing of an immutable directory brings every entry's attributes, so
     * ls -l of 10,000 names is not 10,000 LOOKUPs as well. Always, not the kernel's adaptive
     * mode: that one asks for attributes only in the first READDIR of a listing (or after
     * lookups in between), and ls reads every entry before it stats any. */
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
    log_debug("kernel: max_readahead %u, max_write %u, capable 0x%x", conn->max_readahead,
              conn->max_write, conn->capable);
}

/* A name's entry is handed to the kernel with timeout (seconds): note until when it holds. */
static void entry_handed(struct inode *ino, double timeout)
{
    if (ino->mfs && timeout > 0 && timeout < 86400)
        __atomic_store_n(&ino->entry_until_ns, clock_mono_ns() + (uint64_t)(timeout * 1e9),
                         __ATOMIC_RELAXED);
}

static void reply_entry(fuse_req_t req, struct fs *fs, struct inode *ino, double timeout)
{
    entry_handed(ino, timeout);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = id_of(fs, ino);
    e.generation = 1;
    fill_attr(fs, ino, &e.attr);
    e.attr_timeout = timeout;
    e.entry_timeout = timeout;
    if (fuse_reply_entry(req, &e) == -ENOENT) /* the lookup was interrupted */
        inode_forget(fs->inodes, ino, 1);
}

/* The MFS paths /ipfs and /ipns mean namespaces to files/stat, not names: such names at the
 * top of MFS are found in the listing of / instead. */
static bool namespace_name(struct fs *fs, const struct inode *dir, const char *name)
{
    return dir == inode_root(fs->inodes) && strcmp(fs->cfg.mfs_root, "/") == 0 &&
           (strcmp(name, "ipfs") == 0 || strcmp(name, "ipns") == 0);
}

struct find_ctx {
    const char *name;
    struct cid cid;
    bool found;
};

static int find_entry(void *ud, const struct node_entry *e)
{
    struct find_ctx *f = ud;
    if (strlen(f->name) == e->name_len && memcmp(f->name, e->name, e->name_len) == 0) {
        f->cid = e->cid;
        f->found = true;
    }
    return 0;
}

/* here: from what the node has here only (mfs_stat_here), else -EAGAIN. */
static int stat_name(struct fs *fs, const struct inode *dir, const char *name, const char *path,
                     bool here, struct node_stat *st, struct cid *cid)
{
    if (here) /* name_ref checked that the node has mfs_stat_here */
        return namespace_name(fs, dir, name) ? -EAGAIN
                                             : fs->node->ops->mfs_stat_here(fs->node, path, st, cid);
    if (!namespace_name(fs, dir, name))
        return fs->node->ops->mfs_stat(fs->node, path, st, cid);
    struct find_ctx f = {.name = name};
    int rc = fs->node->ops->mfs_list(fs->node, "/", find_entry, &f);
    if (rc < 0)
        return rc;
    if (!f.found)
        return -ENOENT;
    *cid = f.cid;
    return node_stat(fs->node, cid, st);
}

static int writers_of(struct fs *fs, const struct inode *ino)
{
    pthread_mutex_lock(&fs->wlock);
    int n = ino->nwriters;
    pthread_mutex_unlock(&fs->wlock);
    return n;
}

/* Take what the node says a name holds now, unless our own open writers know better (their
 * size runs ahead of the node's), or (with expect: what the inode held before the node was
 * asked) a close linked newer content here meanwhile. A symlink's target follows: another
 * client may re-point it. */
static int update_name(struct fs *fs, struct inode *ino, const struct mfs_attr *a,
                       const char *target, const struct mfs_attr *expect)
{
    if (writers_of(fs, ino) > 0)
        return 0;
    if (!expect)
        inode_mfs_set(fs->inodes, ino, a);
    else if (!inode_mfs_set_if(fs->inodes, ino, expect, a))
        return 0;
    if (ino->kind == NODE_SYMLINK && target)
        return inode_mfs_set_target(fs->inodes, ino, target);
    return 0;
}

/* The kernel's entry and attribute timeout for an MFS name: the root timeout, or less when the
 * node says what it answered stays true less long (an IPNS name: what remains of its
 * resolution; 0 when unknown). */
static double name_timeout(struct fs *fs, const struct inode *ino)
{
    double t = fs->cfg.root_timeout;
    if (!fs->node->ops->valid_for)
        return t;
    char path[PATH_MAX];
    if (mfs_path(fs, ino, path, sizeof path) < 0)
        return 0;
    double v = fs->node->ops->valid_for(fs->node, path);
    return v < 0 ? t : v;
}

/* Stat a name in MFS (here: only from what the node has here, see stat_name) and enter it in
 * the inode table. */
static int mfs_lookup_locked(struct fs *fs, struct inode *dir, const char *name, bool here,
                             struct inode **out)
{
    char path[PATH_MAX];
    int rc = mfs_child_path(fs, dir, name, path, sizeof path);
    if (rc < 0)
        return rc;
    /* The inode's attributes before the node is asked: a close that links meanwhile (and
     * whose handle leaves before the answer is used) knows better than the answer. Set in
     * any case, the older size went back to the inode, and from there to the kernel, which
     * then placed the next O_APPEND write at that end, over the last line (appenders with
     * renames beside them: a line lost in ~10 runs). */
    struct inode *ino = inode_mfs_find_ref(fs->inodes, dir, name);
    struct mfs_attr old = {0};
    if (ino)
        inode_mfs_get(fs->inodes, ino, &old);
    struct node_stat st;
    struct mfs_attr a = {0};
    rc = stat_name(fs, dir, name, path, here, &st, &a.cid);
    if (rc < 0) {
        if (ino)
            inode_forget(fs->inodes, ino, 1);
        return rc;
    }
    a.kind = st.kind;
    a.size = st.size;
    a.cid_size = st.size;
    a.mode = st.mode;
    a.mtime = st.mtime;
    a.mtime_nsec = st.mtime_nsec;
    a.has_mtime = st.has_mtime;
    bool moved = false;
    if (ino && fs->cfg.names_follow_content)
        moved = !cid_equal(&old.cid, &a.cid);
    if (ino && (ino->kind != a.kind || moved)) {
        /* The name now holds another kind of object (or, in the IPNS namespace, other
         * content): a new inode for it. */
        inode_mfs_detach_if(fs->inodes, dir, name, ino);
        inode_forget(fs->inodes, ino, 1);
        ino = NULL;
    }
    if (ino) {
        rc = update_name(fs, ino, &a, st.target, &old);
        if (rc < 0)
            inode_forget(fs->inodes, ino, 1);
    } else {
        ino = inode_mfs_insert_ref(fs->inodes, dir, name, &a, st.target);
        rc = ino ? 0 : -ENOMEM;
        if (ino && moved)
            inode_mfs_touch(fs->inodes, ino); /* a republished name: its content changed now */
    }
    node_stat_clear(&st);
    if (rc == 0)
        *out = ino;
    return rc;
}

static int mfs_lookup_ex(struct fs *fs, struct inode *dir, const char *name, bool here,
                         struct inode **out)
{
    pthread_rwlock_rdlock(&fs->nlock);
    int rc = mfs_lookup_locked(fs, dir, name, here, out);
    pthread_rwlock_unlock(&fs->nlock);
    return rc;
}

static int mfs_lookup(struct fs *fs, struct inode *dir, const char *name, struct inode **out)
{
    return mfs_lookup_ex(fs, dir, name, false, out);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    struct inode *dir = ino_of(parent);
    struct inode *ino;
    int rc;
    if (strlen(name) > NAME_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    if (dir->mfs) {
        if (name_is_cid(dir, fs, name)) {
            /* A CID: never cache a miss at the root (content not found now may appear). */
            rc = resolve_root(&fs->res, name, &ino);
            if (rc < 0)
                fuse_reply_err(req, -rc);
            else
                reply_entry(req, fs, ino, fs->cfg.immutable_timeout);
            return;
        }
        if (!node_name_ok(name, strlen(name)) ||
            strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        rc = mfs_lookup(fs, dir, name, &ino);
        if (rc < 0)
            fuse_reply_err(req, -rc);
        else
            reply_entry(req, fs, ino, name_timeout(fs, ino));
        return;
    }
    rc = resolve_child(&fs->res, dir, name, &ino);
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
    struct fs *fs = fs_of(req);
    if (id != FUSE_ROOT_ID)
        inode_forget(fs->inodes, ino_of(id), nlookup);
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

/* Whether every open write handle of ino is known to hold nothing to link (none written to,
 * none busy in a write or a flush). Never waits. */
static bool writers_clean(struct fs *fs, struct inode *ino)
{
    bool clean = true;
    pthread_mutex_lock(&fs->wlock);
    for (struct whandle *wh = ino->writers; wh && clean; wh = wh->wnext)
        clean = writer_clean_now(wh);
    pthread_mutex_unlock(&fs->wlock);
    return clean;
}

static int mfs_refresh_locked(struct fs *fs, struct inode *ino)
{
    /* Our own open writers know the size better than the node, and a dirty one links new
     * content at its close, with the mode and time noted on the inode meanwhile (which the
     * node's older ones must not replace). Open only by clean writers (a program that opened
     * for writing and has not written), a chmod or a touch still gives the name a new CID:
     * take that one, keeping the sizes, unless something linked new content meanwhile. A
     * writer busy in a write or a flush counts as dirty. */
    bool writing = writers_of(fs, ino) > 0;
    if (writing && !writers_clean(fs, ino))
        return 0;
    struct mfs_attr old;
    inode_mfs_get(fs->inodes, ino, &old);
    char path[PATH_MAX];
    int rc = mfs_path(fs, ino, path, sizeof path);
    if (rc < 0) /* -ENOENT: removed or replaced while open: it keeps what it had (POSIX) */
        return rc == -ENOENT ? 0 : rc;
    struct node_stat st;
    struct mfs_attr a = {0};
    rc = fs->node->ops->mfs_stat(fs->node, path, &st, &a.cid);
    if (rc < 0)
        return rc;
    if (writing) {
        if (st.kind == ino->kind && st.size == old.cid_size && !cid_equal(&a.cid, &old.cid) &&
            writers_clean(fs, ino)) {
            a.mode = st.mode;
            a.mtime = st.mtime;
            a.mtime_nsec = st.mtime_nsec;
            a.has_mtime = st.has_mtime;
            inode_mfs_set_cid_if(fs->inodes, ino, &old, &a);
        }
        node_stat_clear(&st);
        return 0;
    }
    a.kind = st.kind;
    a.size = st.size;
    a.cid_size = st.size;
    a.mode = st.mode;
    a.mtime = st.mtime;
    a.mtime_nsec = st.mtime_nsec;
    a.has_mtime = st.has_mtime;
    /* old is what the inode held before the node was asked: a close that linked meanwhile
     * knows better than this answer (update_name keeps its content). */
    if (a.kind != ino->kind)
        rc = -ENOENT; /* replaced by another kind: the kernel must look the name up again */
    else if (fs->cfg.names_follow_content && !cid_equal(&old.cid, &a.cid))
        rc = 0; /* this inode keeps its content; the next lookup makes a new one */
    else
        rc = update_name(fs, ino, &a, st.target, &old);
    node_stat_clear(&st);
    return rc;
}

/* Refresh a name's attributes from MFS (another tool may have changed it). */
static int mfs_refresh(struct fs *fs, struct inode *ino)
{
    if (ino == inode_root(fs->inodes))
        return 0;
    pthread_rwlock_rdlock(&fs->nlock);
    int rc = mfs_refresh_locked(fs, ino);
    pthread_rwlock_unlock(&fs->nlock);
    return rc;
}

/* Whether a file handle is open on ino. */
static bool is_open(struct fs *fs, const struct inode *ino)
{
    bool open = false;
    pthread_mutex_lock(&fs->hlock);
    for (struct hlink *h = fs->files; h && !open; h = h->next)
        open = ((struct fhandle *)h)->ino == ino;
    pthread_mutex_unlock(&fs->hlock);
    return open;
}

static void fs_getattr(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    struct stat st;
    (void)fi;
    if (ino->mfs) {
        int rc = mfs_refresh(fs, ino);
        /* fstat(2) of a file open while its name was removed: the open file is still there
         * (POSIX), with what it had. (The kernel does not say which handle asks.) */
        if (rc == -ENOENT && is_open(fs, ino))
            rc = 0;
        if (rc < 0) {
            fuse_reply_err(req, -rc);
            return;
        }
        fill_attr(fs, ino, &st);
        fuse_reply_attr(req, &st, name_timeout(fs, ino));
        return;
    }
    fill_attr(fs, ino, &st);
    fuse_reply_attr(req, &st, fs->cfg.immutable_timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t id)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    int rc = ino->kind != NODE_SYMLINK ? -EINVAL : ino->mfs ? mfs_refresh(fs, ino) : 0;
    char *target = rc == 0 ? inode_target_dup(fs->inodes, ino) : NULL;
    if (rc == 0 && !target)
        rc = -EINVAL;
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_readlink(req, target);
    free(target);
}

struct mfs_collect {
    struct dirent_vec vec;
    bool root;
};

static int mfs_collect(void *ud, const struct node_entry *e)
{
    struct mfs_collect *c = ud;
    struct cid cid;
    if (strncmp(e->name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
        return 0; /* our own link-in-progress names */
    if (c->root && cid_parse(e->name, e->name_len, &cid) == 0 &&
        cid.codec != CID_CODEC_LIBP2P_KEY)
        return 0; /* shadowed by /ipfs/<cid>: unreachable, so not listed (see name_is_cid) */
    return dirent_vec_push(&c->vec, e);
}

static int mfs_listing(struct fs *fs, struct inode *dir, struct dirlist **out)
{
    char path[PATH_MAX];
    int rc = mfs_path(fs, dir, path, sizeof path);
    if (rc < 0)
        return rc;
    struct mfs_collect c = {.root = dir == inode_root(fs->inodes) &&
                                    !fs->cfg.names_follow_content};
    rc = fs->node->ops->mfs_list(fs->node, path, mfs_collect, &c);
    if (rc == 0)
        return dirlist_build(c.vec.v, c.vec.n, out);
    dirent_vec_clear(&c.vec);
    return rc;
}

static void dhandle_free(struct fs *fs, struct dhandle *dh)
{
    handle_untrack(fs, &fs->dirs, &dh->link);
    if (dh->owned) {
        dirlist_free(dh->owned);
        free(dh->owned);
    } else {
        dircache_put(fs->dc, dh->l);
    }
    free(dh);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    if (ino->kind != NODE_DIR) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    struct dhandle *dh = calloc(1, sizeof *dh);
    if (!dh) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int rc;
    if (ino->mfs) {
        rc = mfs_listing(fs, ino, &dh->owned);
        dh->l = dh->owned;
    } else {
        rc = dircache_get(fs->dc, &ino->cid, &dh->l);
        fi->keep_cache = 1;
        fi->cache_readdir = 1;
    }
    if (rc < 0) {
        free(dh);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)dh;
    handle_track(fs, &fs->dirs, &dh->link);
    if (fuse_reply_open(req, fi) == -ENOENT)
        dhandle_free(fs, dh);
}

/* A child of an immutable directory with one more lookup, as a LOOKUP of it would give
 * (resolve_child: the listing tells kind and size); NULL where the listing cannot tell the
 * attributes (symlink targets, kinds the node did not resolve) or on ENOMEM: the kernel then
 * looks the name up. */
static struct inode *child_ref(struct fs *fs, const struct inode *dir, const struct dirent_rec *e)
{
    if (e->kind != NODE_FILE && e->kind != NODE_DIR)
        return NULL;
    uint64_t key = inode_key_child(dir->key, e->name, strlen(e->name));
    struct inode *ino = inode_find_ref(fs->inodes, key, &e->cid);
    if (ino)
        return ino;
    struct node_stat st = dirent_stat(e);
    return inode_insert_ref(fs->inodes, key, &e->cid, &st);
}

/* A name of an MFS directory with one more lookup, as a LOOKUP of it would give, when the
 * node can tell from what it has here (mfs_stat_here); else NULL (the kernel then looks the
 * name up, which may wait on the network: a plain ls never does). The attributes come from a
 * stat of the name now, not from the listing made at opendir: a name changed or removed since
 * is never shown stale. */
static struct inode *name_ref(struct fs *fs, struct inode *dir, const struct dirent_rec *e)
{
    struct inode *ino;
    if (!fs->node->ops->mfs_stat_here || !node_name_ok(e->name, strlen(e->name)))
        return NULL;
    /* The kernel still holds a valid entry for the name (looked up or listed within its
     * timeout): a stat would only repeat it (rm -rf right after diff -r would read every
     * file's block again for nothing). */
    if ((ino = inode_mfs_find_ref(fs->inodes, dir, e->name))) {
        bool fresh = __atomic_load_n(&ino->entry_until_ns, __ATOMIC_RELAXED) > clock_mono_ns();
        inode_forget(fs->inodes, ino, 1);
        if (fresh)
            return NULL;
    }
    if (mfs_lookup_ex(fs, dir, e->name, true, &ino) < 0)
        return NULL;
    return ino;
}

/* One readdir or readdirplus reply from the handle's listing, entries off... that fit in size.
 * With plus, entries carry their attributes and a lookup each (the kernel then skips a LOOKUP
 * per name, and rm -rf or diff -r a GETATTR per name): an immutable directory's from the
 * listing, a name's (MFS) from a stat of it when the node has it here (name_ref), else none,
 * so that attributes of names on a remote node come from LOOKUP and GETATTR only. */
static void reply_dir(fuse_req_t req, fuse_ino_t id, size_t size, off_t off,
                      struct fuse_file_info *fi, bool plus)
{
    struct fs *fs = fs_of(req);
    const struct dhandle *dh = (const struct dhandle *)(uintptr_t)fi->fh;
    const struct dirlist *l = dh->l;
    struct inode *dir = ino_of(id);
    size_t total = 2 + l->n;
    /* Every direntplus record takes more than 128 bytes: at most size / 128 lookups taken. */
    size_t maxrefs = plus ? size / 128 + 1 : 0, nrefs = 0;
    char *buf = malloc(size);
    struct inode **refs = maxrefs ? calloc(maxrefs, sizeof *refs) : NULL;
    if (!buf || (maxrefs && !refs)) {
        free(buf);
        free(refs);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    struct fuse_entry_param e;
    for (size_t i = off < 0 ? 0 : (size_t)off; i < total; i++) {
        const char *name;
        struct inode *ino = NULL;
        memset(&e, 0, sizeof e);
        if (i < 2) {
            name = i == 0 ? "." : "..";
            /* "." is the directory's own st_ino (fill_attr's), ".." its parent's. */
            e.attr.st_ino = i == 1                              ? inode_parent_ino(fs->inodes, dir)
                            : dir != inode_root(fs->inodes) ? dir->key
                                                            : FUSE_ROOT_ID;
            e.attr.st_mode = S_IFDIR;
        } else {
            const struct dirent_rec *r = &l->entries[i - 2];
            name = r->name;
            if (plus && nrefs < maxrefs)
                ino = dir->mfs ? name_ref(fs, dir, r) : child_ref(fs, dir, r);
            if (ino) {
                e.ino = id_of(fs, ino);
                e.generation = 1;
                fill_attr(fs, ino, &e.attr);
                e.attr_timeout = dir->mfs ? name_timeout(fs, ino) : fs->cfg.immutable_timeout;
                e.entry_timeout = e.attr_timeout;
            } else {
                /* A renamed name keeps the st_ino it had: the table knows it. */
                e.attr.st_ino = dir->mfs ? inode_mfs_ino(fs->inodes, dir, r->name)
                                         : inode_key_child(dir->key, r->name, strlen(r->name));
                e.attr.st_mode = r->kind == NODE_DIR       ? S_IFDIR
                                 : r->kind == NODE_FILE    ? S_IFREG
                                 : r->kind == NODE_SYMLINK ? S_IFLNK
                                                           : 0; /* DT_UNKNOWN: stat will tell */
            }
        }
        size_t need = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
                                                    (off_t)(i + 1))
                           : fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
                                               (off_t)(i + 1));
        if (need > size - used) {
            if (ino)
                inode_forget(fs->inodes, ino, 1);
            break;
        }
        used += need;
        if (ino) {
            refs[nrefs++] = ino;
            entry_handed(ino, e.entry_timeout);
        }
    }
    /* Interrupted: the kernel never saw the entries, nor the lookups they carried. */
    if (fuse_reply_buf(req, buf, used) == -ENOENT)
        for (size_t i = 0; i < nrefs; i++)
            inode_forget(fs->inodes, refs[i], 1);
    free(refs);
    free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t id, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    reply_dir(req, id, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t id, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    reply_dir(req, id, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    (void)id;
    dhandle_free(fs_of(req), (struct dhandle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* A write handle is done with its spool (join_writer's undo): the spool leaves its name's
 * writers with the last handle writing through it. */
static void leave_writer(struct fs *fs, struct fhandle *fh)
{
    if (!fh->wh)
        return;
    pthread_mutex_lock(&fs->wlock);
    bool last = --fh->ino->nwriters == 0;
    if (--fh->wh->nopen == 0) {
        struct whandle **pp = &fh->ino->writers;
        while (*pp && *pp != fh->wh)
            pp = &(*pp)->wnext;
        if (*pp)
            *pp = fh->wh->wnext;
    }
    /* The last writer gone: the size shown is the content's the name holds (a write's note
     * on the inode may have come after the last close linked more). */
    if (last)
        inode_mfs_settle(fs->inodes, fh->ino);
    pthread_mutex_unlock(&fs->wlock);
    writer_close(fh->wh);
    fh->wh = NULL;
}

static void fhandle_free(struct fs *fs, struct fhandle *fh)
{
    handle_untrack(fs, &fs->files, &fh->link);
    if (fh->holding)
        node_release(fs->node, &fh->held);
    leave_writer(fs, fh);
    reader_close(fh->rh);
    if (fh->follows)
        pthread_rwlock_destroy(&fh->swap);
    free(fh);
}

/* One more handle writes ino through wh (wlock held): wh joins ino's writers with its first. */
static void enter_writer_locked(struct inode *ino, struct whandle *wh)
{
    ino->nwriters++;
    if (wh->nopen++ == 0) {
        wh->wnext = ino->writers;
        ino->writers = wh;
    }
}

static void add_writer(struct fs *fs, struct inode *ino, struct whandle *wh)
{
    pthread_mutex_lock(&fs->wlock);
    enter_writer_locked(ino, wh);
    pthread_mutex_unlock(&fs->wlock);
}

/* A write handle's spool, entered as one of ino's writers (*out; *shared: another handle's).
 * Every handle that writes one file writes one spool, as every fd of a file on disk writes
 * its one inode: two programs appending to a log both get their lines, and each close stores
 * all that was written. One that a failed write or flush poisoned is not shared. Else a new
 * spool starts from the name's content (*base, *size: its CID and size; none with trunc).
 * Under wlock throughout: a handle that finds no writer reads the content the last one
 * linked (its flush set the inode before its release left the list), and two opens at once
 * share one spool. */
static int join_writer(struct fs *fs, struct inode *ino, bool trunc, struct whandle **out,
                       bool *shared, struct cid *base, uint64_t *size)
{
    int rc = 0;
    pthread_mutex_lock(&fs->wlock);
    struct whandle *wh = ino->writers;
    while (wh && (wh->nopen == 0 || writer_failed_now(wh)))
        wh = wh->wnext;
    *shared = wh != NULL;
    if (wh) {
        writer_hold(wh);
    } else {
        struct mfs_attr a;
        inode_mfs_get(fs->inodes, ino, &a);
        *base = a.cid;
        *size = a.cid_size;
        rc = writer_open(fs->node, &fs->cfg.writer, trunc ? NULL : base, trunc ? 0 : *size,
                         &wh);
        if (rc == 0)
            writer_set_known(wh, &a.cid, 0);
    }
    if (rc == 0) {
        enter_writer_locked(ino, wh);
        *out = wh;
    }
    pthread_mutex_unlock(&fs->wlock);
    return rc;
}

/* ino's open writers take the name's CID as one this mount made (a chmod or touch through
 * it): asked of the node, not the inode, which a writer busy in a write or a flush keeps at
 * what it had (mfs_refresh). Only where flushes check it (mfs_put: writer.c). */
static void writers_know(struct fs *fs, struct inode *ino, const char *path)
{
    struct node_stat st;
    struct cid cur;
    pthread_mutex_lock(&fs->wlock);
    bool any = ino->writers != NULL; /* most chmods (tar x, rsync -a): none, nothing to ask */
    pthread_mutex_unlock(&fs->wlock);
    if (!any || !fs->node->ops->mfs_put ||
        fs->node->ops->mfs_stat(fs->node, path, &st, &cur) < 0)
        return;
    node_stat_clear(&st);
    pthread_mutex_lock(&fs->wlock);
    for (struct whandle *wh = ino->writers; wh; wh = wh->wnext)
        writer_set_known(wh, &cur, 0);
    pthread_mutex_unlock(&fs->wlock);
}

/* The newest spool of a name open for writing, held (writer_close it), or NULL. */
static struct whandle *newest_writer(struct fs *fs, struct inode *ino)
{
    pthread_mutex_lock(&fs->wlock);
    struct whandle *wh = ino->writers;
    if (wh)
        writer_hold(wh);
    pthread_mutex_unlock(&fs->wlock);
    return wh;
}

/* Whether an open write handle of ino holds changes its close will link: they go with the
 * inode's mode and time (flush_handle), so a chmod or a utime meanwhile needs no name change
 * of its own (tar: create 0600, write, utime, chmod, close). Never waits: a handle busy in a
 * write or a flush (which may take an upload's time) counts as not known to be dirty. */
static bool has_dirty_writer(struct fs *fs, struct inode *ino)
{
    bool dirty = false;
    pthread_mutex_lock(&fs->wlock);
    for (struct whandle *wh = ino->writers; wh && !dirty; wh = wh->wnext)
        dirty = writer_dirty_now(wh);
    pthread_mutex_unlock(&fs->wlock);
    return dirty;
}

/* Only the size (and times): a close may be giving the inode a new CID meanwhile. */
static void set_size(struct fs *fs, struct inode *ino, uint64_t size)
{
    inode_mfs_written(fs->inodes, ino, size);
}

static int mfs_refresh(struct fs *fs, struct inode *ino);

static void fs_open(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
    if (ino->kind == NODE_DIR) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (writing && !ino->mfs) {
        fuse_reply_err(req, EROFS);
        return;
    }
    struct fhandle *fh = calloc(1, sizeof *fh);
    if (!fh) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fh->ino = ino;
    /* A CID and the size of the content under it, always together: a name's shown size may be
     * an open writer's, beyond (or short of) what its CID holds. */
    struct cid c;
    uint64_t size, shown;
    int rc = 0;
    if (!ino->mfs) {
        c = ino->cid; /* content under MOUNTPOINT/<cid>: set once, never changes */
        size = shown = ino->size;
    } else {
        struct mfs_attr a;
        rc = mfs_refresh(fs, ino);
        inode_mfs_get(fs->inodes, ino, &a);
        c = a.cid;
        size = a.cid_size;
        shown = a.size;
    }
    if (rc == 0 && writing) {
        /* Read-write and append start from the current content (or the spool another
         * handle writes it through); O_TRUNC from nothing. */
        bool trunc = fi->flags & O_TRUNC, shared;
        rc = join_writer(fs, ino, trunc, &fh->wh, &shared, &c, &size);
        if (rc == 0 && trunc && shared)
            rc = writer_truncate(fh->wh, 0);
        if (rc == 0 && trunc && (size > 0 || shown > 0)) {
            writer_touch(fh->wh); /* the truncation itself must be stored */
            set_size(fs, ino, 0);
        }
        if (rc < 0)
            leave_writer(fs, fh); /* a failed truncation: the others keep the spool */
    } else if (rc == 0) {
        /* While the name is open for writing, reads come from the writer's spool (fs_read);
         * this reader serves them once no writer is left. */
        fh->rh = reader_open(fs->reader, &c, size);
        if (!fh->rh)
            rc = -ENOMEM;
        fh->rcid = c;
        fh->rsize = size;
        fh->follows = fh->rh && ino->mfs && pthread_rwlock_init(&fh->swap, NULL) == 0;
        /* Immutable content keeps its pages across opens; a name's may have changed. */
        fi->keep_cache = !ino->mfs;
    }
    if (rc == 0 && (fh->rh || (fh->wh && !(fi->flags & O_TRUNC)))) {
        /* The content opened stays while the file is open, whatever its name becomes. */
        if (node_hold(fs->node, &c) == 0) {
            fh->held = c;
            fh->holding = true;
        }
    }
    if (rc < 0) {
        free(fh);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)fh;
    handle_track(fs, &fs->files, &fh->link);
    if (fuse_reply_open(req, fi) == -ENOENT)
        fhandle_free(fs, fh);
}

/* Move a name's read handle to the name's content now, if that changed since it was opened
 * or last moved (POSIX: a read sees every write that returned before it, through any
 * handle). A move that fails leaves the handle on what it had. */
static void follow_content(struct fs *fs, struct fhandle *fh)
{
    struct mfs_attr a;
    inode_mfs_get(fs->inodes, fh->ino, &a);
    pthread_rwlock_rdlock(&fh->swap);
    bool same = cid_equal(&a.cid, &fh->rcid) && a.cid_size == fh->rsize;
    pthread_rwlock_unlock(&fh->swap);
    if (same)
        return;
    struct reader_handle *rh = reader_open(fs->reader, &a.cid, a.cid_size);
    if (!rh)
        return;
    bool hold = node_hold(fs->node, &a.cid) == 0;
    pthread_rwlock_wrlock(&fh->swap);
    struct reader_handle *old = fh->rh;
    struct cid was = fh->held;
    bool held = fh->holding;
    fh->rh = rh;
    fh->rcid = a.cid;
    fh->rsize = a.cid_size;
    fh->held = a.cid;
    fh->holding = hold;
    pthread_rwlock_unlock(&fh->swap);
    reader_close(old);
    if (held)
        node_release(fs->node, &was);
}

/* A buffer of at least size bytes for a read: a spare one if there is one (*cap: its size). */
static char *rbuf_take(struct fs *fs, size_t size, size_t *cap)
{
    char *b = NULL;
    size_t c = 0;
    pthread_mutex_lock(&fs->rlock);
    if (fs->nr > 0) {
        fs->nr--;
        b = fs->rbuf[fs->nr];
        c = fs->rcap[fs->nr];
    }
    pthread_mutex_unlock(&fs->rlock);
    if (c < size) {
        char *nb = realloc(b, size);
        if (!nb) {
            free(b);
            return NULL;
        }
        b = nb;
        c = size;
    }
    *cap = c;
    return b;
}

/* Give a read buffer back: kept as a spare, or freed when there are enough. */
static void rbuf_give(struct fs *fs, char *b, size_t cap)
{
    pthread_mutex_lock(&fs->rlock);
    if (fs->nr < READ_POOL) {
        fs->rbuf[fs->nr] = b;
        fs->rcap[fs->nr] = cap;
        fs->nr++;
        b = NULL;
    }
    pthread_mutex_unlock(&fs->rlock);
    free(b);
}

static void fs_read(fuse_req_t req, fuse_ino_t id, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)id;
    struct fs *fs = fs_of(req);
    struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;
    size_t cap;
    char *buf = rbuf_take(fs, size ? size : 1, &cap);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* A name open for writing elsewhere: its bytes are in that writer's spool, not (yet)
     * under the CID this handle was opened on. */
    struct whandle *other = !fh->wh && fh->ino->mfs ? newest_writer(fs, fh->ino) : NULL;
    ssize_t n;
    if (fh->wh || other) {
        n = writer_read(fh->wh ? fh->wh : other, buf, size, (uint64_t)off);
        writer_close(other);
    } else if (fh->follows) {
        follow_content(fs, fh);
        pthread_rwlock_rdlock(&fh->swap);
        n = reader_read(fh->rh, (uint64_t)off, size, buf);
        pthread_rwlock_unlock(&fh->swap);
    } else {
        n = reader_read(fh->rh, (uint64_t)off, size, buf);
    }
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    rbuf_give(fs, buf, cap);
}

static void fs_write(fuse_req_t req, fuse_ino_t id, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;
    if (!fh->wh) {
        fuse_reply_err(req, EBADF);
        return;
    }
    ssize_t n = writer_write(fh->wh, buf, size, (uint64_t)off);
    if (n < 0) {
        fuse_reply_err(req, (int)-n);
        return;
    }
    /* Only the size and the times: a flush may be giving the inode a new CID meanwhile. */
    inode_mfs_written(fs->inodes, ino_of(id), writer_size(fh->wh));
    fuse_reply_write(req, (size_t)n);
}

/* The mode and time a name had, for its new content (a fresh add carries none): writer_link
 * sets them before the content appears under the name. */
static struct writer_meta meta_of(const struct mfs_attr *a)
{
    return (struct writer_meta){
        .mode = a->mode, .has_mtime = a->has_mtime, .mtime = {a->mtime, a->mtime_nsec}};
}

/* After new content (a->size bytes, added as a->cid) is linked with its metadata, read back
 * the CID that holds both (always when reread: the mode or time changed after the link). */
static void relinked_cid(struct fs *fs, const char *path, struct mfs_attr *a, bool reread)
{
    struct writer_meta m = meta_of(a);
    if (reread || (m.mode && (m.mode & 07777) != 0644) || m.has_mtime) {
        struct node_stat st;
        struct cid c;
        if (fs->node->ops->mfs_stat(fs->node, path, &st, &c) == 0) {
            a->cid = c;
            node_stat_clear(&st);
        }
    }
    a->cid_size = a->size;
}

/* The same, and update the inode, unless a later link of the name (seq: writer_flush's) got
 * there first. */
static void relinked(struct fs *fs, struct inode *ino, const char *path, struct mfs_attr *a,
                     bool reread, uint64_t seq)
{
    relinked_cid(fs, path, a, reread);
    inode_mfs_set_linked(fs->inodes, ino, a, seq);
}

/* A flush's writer_namer: the path of its inode once its content is added, the names held
 * (shared) from then on. */
struct flush_namer {
    struct fs *fs;
    struct inode *ino;
    const char *name; /* a name to make in the directory ino (fs_create), or NULL: ino's */
    bool held;
    struct mfs_attr *a; /* flush_linked: the attributes linked, updated by it */
    bool fixed;         /* flush_linked set a mode or time on the name */
};

static int flush_name_lock(void *ud, char *path, size_t len)
{
    struct flush_namer *n = ud;
    pthread_rwlock_rdlock(&n->fs->nlock);
    int rc = n->name ? mfs_child_path(n->fs, n->ino, n->name, path, len)
                     : mfs_path(n->fs, n->ino, path, len);
    if (rc < 0)
        pthread_rwlock_unlock(&n->fs->nlock);
    n->held = rc == 0;
    return rc;
}

/* Once a flush linked, under its spool's lock (writer_namer.linked): a chmod or utime that
 * came while it linked (do_setattr left it to us, or set it on the old content) is set on
 * the new content, and the inode takes the result. Under the lock, because done after it:
 * the next flush of the spool (another appender's close) found the name changed since its
 * link, and kept it as a conflict; and the inode's size could go back to the one linked
 * after another handle's append had moved it on (the kernel then places the next append at
 * the end it was told, over that line). */
static void flush_linked(void *ud, const char *path, const struct cid *cid, uint64_t size,
                         uint64_t seq)
{
    struct flush_namer *n = ud;
    struct fs *fs = n->fs;
    struct mfs_attr *a = n->a, now;
    inode_mfs_get(fs->inodes, n->ino, &now);
    int mrc = 0, trc = 0;
    if (now.mode != a->mode &&
        (mrc = fs->node->ops->mfs_chmod(fs->node, path, now.mode ? now.mode : 0644)) == 0) {
        a->mode = now.mode;
        n->fixed = true;
    }
    struct timespec nt = {now.mtime, now.mtime_nsec};
    if ((now.has_mtime != a->has_mtime || now.mtime != a->mtime ||
         now.mtime_nsec != a->mtime_nsec) &&
        now.has_mtime && (trc = fs->node->ops->mfs_touch(fs->node, path, &nt)) == 0) {
        a->has_mtime = true;
        a->mtime = now.mtime;
        a->mtime_nsec = now.mtime_nsec;
        n->fixed = true;
    }
    if (mrc < 0 || trc < 0) {
        char safe[256];
        log_warn("%s: its new content is stored, but not the mode or time set meanwhile: %s",
                 log_safe(path, strlen(path), safe, sizeof safe),
                 strerror(mrc < 0 ? -mrc : -trc));
    }
    a->cid = *cid;
    a->size = size;
    relinked(fs, n->ino, path, a, n->fixed, seq); /* fixed: read what the name holds now */
}

/* Store a write handle's changes: add, link, restore metadata, update the inode. */
static int flush_handle(struct fs *fs, struct fhandle *fh)
{
    if (!fh->wh)
        return 0;
    char path[PATH_MAX];
    int rc = mfs_path(fs, fh->ino, path, sizeof path);
    if (rc == -ENOENT)
        return 0; /* its name was removed or replaced meanwhile: what it wrote goes with it, as
                   * on a local filesystem (never onto the name's new content) */
    if (rc < 0)
        return rc;
    struct mfs_attr a;
    uint64_t size;
    bool changed;
    inode_mfs_get(fs->inodes, fh->ino, &a);
    struct writer_meta m = meta_of(&a);
    /* The path is found again once the content is added, and held until the inode has the
     * result: a rename meanwhile moves where it links. */
    struct flush_namer fn = {.fs = fs, .ino = fh->ino, .a = &a};
    struct writer_namer namer = {.lock = flush_name_lock, .ud = &fn, .path = path,
                                 .linked = flush_linked};
    /* The inode takes the result in flush_linked, under the spool's lock. */
    rc = writer_flush(fh->wh, &fs->cfg.writer, path, &namer, true, &m, &a.cid, &size, &changed,
                      NULL);
    if (fn.held)
        pthread_rwlock_unlock(&fs->nlock);
    return rc;
}

static void fs_flush(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    (void)id;
    int rc = flush_handle(fs_of(req), (struct fhandle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, -rc);
}

/* fsync(2): the file is stored (as on close), and the backend makes it durable (the store:
 * on local disk; a local-first mount: there and on the node). */
static void fs_fsync(fuse_req_t req, fuse_ino_t id, int datasync, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    (void)datasync;
    int rc = flush_handle(fs, (struct fhandle *)(uintptr_t)fi->fh);
    if (rc == 0 && ino_of(id)->mfs && fs->node->ops->sync)
        rc = fs->node->ops->sync(fs->node);
    fuse_reply_err(req, -rc);
}

/* fsync(2) on a directory (sync DIR): every change to the names, as above. */
static void fs_fsyncdir(fuse_req_t req, fuse_ino_t id, int datasync, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    (void)datasync;
    (void)fi;
    int rc = 0;
    if (ino_of(id)->mfs && fs->node->ops->sync)
        rc = fs->node->ops->sync(fs->node);
    fuse_reply_err(req, -rc);
}

static void fs_release(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    (void)id;
    struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;
    /* close(2) already flushed; a last try covers writes that came after it (mmap). A handle
     * whose flush failed is poisoned and never retried here: close reported the failure. */
    if (fh->wh && writer_dirty(fh->wh))
        flush_handle(fs, fh);
    fhandle_free(fs, fh);
    fuse_reply_err(req, 0);
}

/* Whether s is valid UTF-8 as Go (Kubo's JSON) takes it: no overlong forms, no surrogates,
 * nothing past U+10FFFF. */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++, n, min;
        uint32_t cp;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return false;
        for (unsigned i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

/* Checks shared by the calls that create a name in dir. */
static int check_new_name(struct fs *fs, const struct inode *dir, const char *name)
{
    if (!dir->mfs)
        return -EROFS;
    if (strlen(name) > NAME_MAX)
        return -ENAMETOOLONG; /* statfs says f_namemax 255, as UnixFS names go */
    if (name_is_cid(dir, fs, name) || strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 ||
        namespace_name(fs, dir, name))
        return -EINVAL;
    if (!node_name_ok(name, strlen(name)))
        return -EINVAL;
    if (fs->cfg.utf8_names && !utf8_ok(name))
        return -EILSEQ;
    return 0;
}

/* The mode a create or a mkdir stores (0: none, the default shows). On a mount only its user
 * can enter (no -o allow_other or allow_root), none when it is the default but for the group's
 * and others' write bits: those come from the creator's umask (002 under Debian's user-private
 * groups, 022 for root) and grant nothing there, so cp -r gives the CIDs ipfs add gives under
 * either umask. Any other mode is stored (an executable's 0775 too), and so is any mode a
 * chmod sets; on a shared mount every mode a create asks for. */
static uint32_t create_mode(const struct fs *fs, mode_t mode, uint32_t dflt)
{
    uint32_t m = (uint32_t)mode & 07777;
    uint32_t ignore = fs->cfg.shared ? 0 : UINT32_C(0022);
    return (m & ~ignore) == (dflt & ~ignore) ? 0 : m;
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct inode *dir = ino_of(parent);
    char path[PATH_MAX];
    struct fhandle *fh = NULL;
    struct inode *ino = NULL;
    struct mfs_attr a = {.kind = NODE_FILE};
    uint64_t size;
    bool changed, nheld = false;
    int rc = check_new_name(fs, dir, name);
    if (rc == 0) /* checked now; made below at the directory's path as it is then */
        rc = mfs_child_path(fs, dir, name, path, sizeof path);
    if (rc < 0)
        goto fail;
    fh = calloc(1, sizeof *fh);
    if (!fh) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = writer_open(fs->node, &fs->cfg.writer, NULL, 0, &fh->wh);
    if (rc < 0)
        goto fail;
    /* The name exists from now on (empty), as after creat(2) on any filesystem. */
    writer_touch(fh->wh);
    /* The mode goes on before the name appears (see writer_link). */
    a.mode = create_mode(fs, mode, 0644);
    struct writer_meta m = meta_of(&a);
    /* The name is made at its directory's path once the spool is ready, and entered in the
     * inode table before a rename may move the directory (nlock, taken after the spool's own
     * lock as every flush takes it). */
    struct flush_namer fn = {.fs = fs, .ino = dir, .name = name};
    struct writer_namer namer = {.lock = flush_name_lock, .ud = &fn, .path = path};
    rc = writer_flush(fh->wh, &fs->cfg.writer, path, &namer, false, &m, &a.cid, &size, &changed,
                      NULL);
    nheld = fn.held;
    if (rc == 0 && !nheld)
        rc = -ENOENT; /* the directory went meanwhile */
    if (rc < 0)
        goto fail;
    relinked_cid(fs, path, &a, false);
    writer_set_known(fh->wh, &a.cid, 0);
    ino = inode_mfs_insert_ref(fs->inodes, dir, name, &a, NULL);
    if (!ino) {
        rc = -ENOMEM;
        goto fail;
    }
    inode_mfs_touch(fs->inodes, ino);
    inode_mfs_names_changed(fs->inodes, dir);
    fh->ino = ino;
    add_writer(fs, ino, fh->wh);
    pthread_rwlock_unlock(&fs->nlock);
    nheld = false;
    fi->fh = (uint64_t)(uintptr_t)fh;
    handle_track(fs, &fs->files, &fh->link);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = id_of(fs, ino);
    e.generation = 1;
    fill_attr(fs, ino, &e.attr);
    e.attr_timeout = fs->cfg.root_timeout;
    e.entry_timeout = fs->cfg.root_timeout;
    entry_handed(ino, e.entry_timeout);
    if (fuse_reply_create(req, &e, fi) == -ENOENT) {
        fhandle_free(fs, fh);
        inode_forget(fs->inodes, ino, 1);
    }
    return;
fail:
    if (nheld)
        pthread_rwlock_unlock(&fs->nlock);
    if (fh) {
        writer_close(fh->wh);
        free(fh);
    }
    fuse_reply_err(req, -rc);
}

/* changed_ns: the time the new name shows when it stores none (0: now, it is made now; a
 * link's: its source's, as a hard link shares it). */
static void reply_new_entry(fuse_req_t req, struct fs *fs, struct inode *dir, const char *name,
                            int64_t changed_ns)
{
    inode_mfs_names_changed(fs->inodes, dir); /* the time it shows moves */
    struct inode *ino;
    int rc = mfs_lookup(fs, dir, name, &ino);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (changed_ns > 0)
        inode_mfs_keep_changed(fs->inodes, ino, changed_ns);
    else
        inode_mfs_touch(fs->inodes, ino);
    reply_entry(req, fs, ino, fs->cfg.root_timeout);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct fs *fs = fs_of(req);
    struct inode *dir = ino_of(parent);
    char path[PATH_MAX];
    int rc = check_new_name(fs, dir, name);
    if (rc == 0)
        rc = mfs_child_path(fs, dir, name, path, sizeof path);
    if (rc == 0)
        rc = fs->node->ops->mfs_mkdir(fs->node, path);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (create_mode(fs, mode, 0755))
        fs->node->ops->mfs_chmod(fs->node, path, mode & 07777);
    reply_new_entry(req, fs, dir, name, 0);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    struct inode *dir = ino_of(parent);
    char path[PATH_MAX];
    struct cid c;
    int rc = check_new_name(fs, dir, name);
    if (rc == 0)
        rc = mfs_child_path(fs, dir, name, path, sizeof path);
    if (rc == 0)
        rc = fs->node->ops->put_symlink(fs->node, target, &c);
    /* Kubo's block/put answers CIDv1; `ipfs add` of the same symlink gives CIDv0 (the same
     * block) unless CIDv1 was asked for, and the directory's CID must be add's. */
    if (rc == 0 && fs->cfg.writer.add.cid_version != 1 && c.version == 1 &&
        c.codec == CID_CODEC_DAG_PB && c.mh_code == MH_SHA2_256 && c.mh_len == 34)
        c.version = 0;
    if (rc == 0)
        rc = fs->node->ops->mfs_link(fs->node, &c, path);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    reply_new_entry(req, fs, dir, name, 0);
}

static int count_entry(void *ud, const struct node_entry *e)
{
    (void)e;
    (*(size_t *)ud)++;
    return 0;
}

/* -ENOTEMPTY unless the MFS directory at path is empty. */
static int check_empty(struct fs *fs, const char *path)
{
    size_t n = 0;
    int rc = fs->node->ops->mfs_list(fs->node, path, count_entry, &n);
    return rc < 0 ? rc : n > 0 ? -ENOTEMPTY : 0;
}

static int remove_name(struct fs *fs, struct inode *dir, const char *name, bool is_dir)
{
    char path[PATH_MAX];
    if (!dir->mfs)
        return -EROFS;
    int rc = mfs_child_path(fs, dir, name, path, sizeof path);
    if (rc < 0)
        return rc;
    struct node_stat st;
    struct cid c;
    rc = fs->node->ops->mfs_stat(fs->node, path, &st, &c);
    if (rc < 0)
        return rc;
    node_stat_clear(&st);
    if (is_dir && st.kind != NODE_DIR)
        return -ENOTDIR;
    if (!is_dir && st.kind == NODE_DIR)
        return -EISDIR;
    if (is_dir && (rc = check_empty(fs, path)) < 0)
        return rc;
    rc = fs->node->ops->mfs_rm(fs->node, path, is_dir);
    if (rc == 0) {
        inode_mfs_detach(fs->inodes, dir, name);
        inode_mfs_names_changed(fs->inodes, dir);
    }
    return rc;
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    fuse_reply_err(req, -remove_name(fs, ino_of(parent), name, false));
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    fuse_reply_err(req, -remove_name(fs, ino_of(parent), name, true));
}

static int do_rename_locked(struct fs *fs, struct inode *dir, const char *name,
                            struct inode *ndir, const char *newname, unsigned int flags)
{
    char src[PATH_MAX], dst[PATH_MAX];
    struct node_stat sst, dstst;
    struct cid c;
    if (!dir->mfs || !ndir->mfs)
        return dir->mfs || ndir->mfs ? -EXDEV : -EROFS;
    if (flags & RENAME_EXCHANGE)
        return -EINVAL;
    int rc = check_new_name(fs, ndir, newname);
    if (rc == 0)
        rc = mfs_child_path(fs, dir, name, src, sizeof src);
    if (rc == 0)
        rc = mfs_child_path(fs, ndir, newname, dst, sizeof dst);
    if (rc == 0)
        rc = fs->node->ops->mfs_stat(fs->node, src, &sst, &c);
    if (rc < 0)
        return rc;
    node_stat_clear(&sst);
    if (strcmp(src, dst) == 0)
        return 0;
    rc = fs->node->ops->mfs_stat(fs->node, dst, &dstst, &c);
    if (rc == 0) {
        node_stat_clear(&dstst);
        if (flags & RENAME_NOREPLACE)
            return -EEXIST;
        if (dstst.kind == NODE_DIR && sst.kind != NODE_DIR)
            return -EISDIR;
        if (dstst.kind != NODE_DIR && sst.kind == NODE_DIR)
            return -ENOTDIR;
        if (dstst.kind == NODE_DIR) {
            if ((rc = check_empty(fs, dst)) < 0)
                return rc;
            if ((rc = fs->node->ops->mfs_rm(fs->node, dst, true)) < 0)
                return rc;
        }
    } else if (rc != -ENOENT) {
        return rc;
    }
    rc = fs->node->ops->mfs_mv(fs->node, src, dst);
    if (rc < 0)
        return rc;
    inode_mfs_detach(fs->inodes, ndir, newname);
    struct inode *moved = inode_mfs_find_ref(fs->inodes, dir, name);
    if (moved) {
        inode_mfs_move(fs->inodes, moved, ndir, newname);
        inode_forget(fs->inodes, moved, 1);
    }
    return 0;
}

static int do_rename(struct fs *fs, struct inode *dir, const char *name, struct inode *ndir,
                     const char *newname, unsigned int flags)
{
    pthread_rwlock_wrlock(&fs->nlock);
    int rc = do_rename_locked(fs, dir, name, ndir, newname, flags);
    pthread_rwlock_unlock(&fs->nlock);
    return rc;
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    struct fs *fs = fs_of(req);
    int rc = do_rename(fs, ino_of(parent), name, ino_of(newparent), newname, flags);
    if (rc == 0) {
        inode_mfs_names_changed(fs->inodes, ino_of(parent));
        inode_mfs_names_changed(fs->inodes, ino_of(newparent));
    }
    fuse_reply_err(req, -rc);
}

/* truncate(2) of a name without an open handle: rewrite it from a spool of its content. */
static int truncate_name(struct fs *fs, struct inode *ino, const char *path, uint64_t size)
{
    struct mfs_attr a;
    struct whandle *wh;
    inode_mfs_get(fs->inodes, ino, &a);
    uint64_t keep = a.cid_size < size ? a.cid_size : size;
    int rc = writer_open(fs->node, &fs->cfg.writer, &a.cid, keep, &wh);
    if (rc < 0)
        return rc;
    uint64_t newsize;
    bool changed;
    if (a.has_mtime && size != a.size) /* moves as a write moves it (truncate(2) by path) */
        inode_time_now(&a.mtime, &a.mtime_nsec);
    struct writer_meta m = meta_of(&a);
    uint64_t seq = 0;
    rc = writer_truncate(wh, size);
    if (rc == 0) {
        inode_mfs_ours(fs->inodes, ino); /* new content: no change of the names above */
        rc = writer_flush(wh, &fs->cfg.writer, path, NULL, true, &m, &a.cid, &newsize, &changed,
                          &seq);
    }
    if (rc == 0) {
        a.size = newsize;
        relinked(fs, ino, path, &a, false, seq);
    }
    writer_close(wh);
    return rc;
}

/* A name open for writing is truncated in the one spool its writers write (fi's, else the
 * newest; also for truncate(2) by path): their next close stores it. *spool: whether there
 * was one (else nothing was done). */
static int truncate_spool(struct fs *fs, struct inode *ino, struct fuse_file_info *fi,
                          uint64_t size, bool *spool)
{
    struct fhandle *fh = fi ? (struct fhandle *)(uintptr_t)fi->fh : NULL;
    struct whandle *wh = fh ? fh->wh : NULL;
    struct whandle *other = wh ? NULL : newest_writer(fs, ino);
    *spool = wh || other;
    if (!*spool)
        return 0;
    int rc = writer_truncate(wh ? wh : other, size);
    if (rc == 0)
        set_size(fs, ino, size);
    writer_close(other);
    return rc;
}

static int do_setattr(struct fs *fs, struct inode *ino, struct stat *attr, int to_set,
                      struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    bool root = ino == inode_root(fs->inodes);
    if (!ino->mfs)
        return -EROFS;
    int rc = mfs_path(fs, ino, path, sizeof path);
    if (rc == -ENOENT) {
        /* Removed or replaced while open: its own spool still takes a size (ftruncate); a
         * mode or a time has no name to go to, and the file goes at its last close. */
        if (!(to_set & FUSE_SET_ATTR_SIZE))
            return 0;
        bool spool;
        rc = truncate_spool(fs, ino, fi, (uint64_t)attr->st_size, &spool);
        return spool ? rc : -ENOENT;
    }
    if (rc < 0)
        return rc;
    /* Names have no owner of their own (UnixFS stores none): they show the mounting user's.
     * A chown is taken and changes nothing, as on vfat with 'quiet': tar x, cp -a and
     * rsync -a as root restore their files' owners and exited non-zero on EPERM. Who may
     * chown is the kernel's check (default_permissions: root only) wherever anyone but root
     * could ask. */
    bool changed = false; /* anything sent to the node */
    if (to_set & FUSE_SET_ATTR_SIZE) {
        changed = true;
        if (ino->kind != NODE_FILE)
            return -EISDIR;
        bool spool;
        rc = truncate_spool(fs, ino, fi, (uint64_t)attr->st_size, &spool);
        if (!spool)
            rc = truncate_name(fs, ino, path, (uint64_t)attr->st_size);
        if (rc < 0)
            return rc;
    }
    /* A file being written links its new content with the inode's mode and time at close:
     * a chmod or utime meanwhile is only noted there (flush_handle). */
    bool later = ino->kind == NODE_FILE &&
                 (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) &&
                 has_dirty_writer(fs, ino);
    struct mfs_attr a;
    inode_mfs_get(fs->inodes, ino, &a);
    struct mfs_attr before = a;
    /* A chmod to the mode already shown changes nothing, and must not store an explicit
     * mode that changes the CID (rsync and cp -p chmod every file they write). */
    uint32_t shown = a.mode ? a.mode & 07777 : (ino->kind == NODE_DIR ? 0755 : 0644);
    uint32_t mode = attr->st_mode & 07777;
    bool set_mode = (to_set & FUSE_SET_ATTR_MODE) && !root && mode != shown;
    bool set_time = (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) && !root;
    if (set_mode) {
        /* Back to the default mode is no mode (as the store and `ipfs add` have it): content
         * an open writer links later carries none, so its CID is the CID of its bytes (rsync
         * writes 0600, then chmods 0644; tar and cp -a make directories 0700, then 0755). */
        uint32_t dflt = ino->kind == NODE_DIR ? 0755 : 0644;
        a.mode = mode == dflt ? 0 : mode;
    }
    if (set_time) {
        /* To the nanosecond: UnixFS 1.5 keeps the fraction, as `ipfs add --preserve-mtime`
         * does (cp -a of a tree gives its CIDs). */
        struct timespec t = attr->st_mtim;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW)
            clock_gettime(CLOCK_REALTIME, &t);
        if (!node_time_ok(&t))
            return -EINVAL;
        a.mtime = (int64_t)t.tv_sec;
        a.mtime_nsec = (uint32_t)t.tv_nsec;
        a.has_mtime = true;
    }
    if (!set_mode && !set_time) {
        if (!changed)
            return 0; /* a chown or chmod to what is shown (tar, cp -a, rsync): nothing to read */
        return mfs_refresh(fs, ino);
    }
    /* On the inode first: a close linking meanwhile sets what it finds there on its new
     * content (flush_handle), and one that looked before has linked before the node hears of
     * this. Open writers will link new content with it; otherwise the node's view (and the
     * new CID) is read back. */
    inode_mfs_set_meta(fs->inodes, ino, &a);
    if (later && has_dirty_writer(fs, ino))
        return 0; /* still so after the note: the writer's close links it */
    inode_mfs_ours(fs->inodes, ino); /* no change of the names above */
    if (set_mode)
        rc = fs->node->ops->mfs_chmod(fs->node, path, mode);
    if (rc == 0 && set_time)
        rc = fs->node->ops->mfs_touch(fs->node, path,
                                      &(struct timespec){a.mtime, a.mtime_nsec});
    if (rc < 0) {
        inode_mfs_set_meta(fs->inodes, ino, &before);
        return rc;
    }
    writers_know(fs, ino, path); /* the new CID is this mount's doing, no change elsewhere */
    rc = mfs_refresh(fs, ino);
    /* A mode or time stored gives a new CID, not new bytes: a name that stores no time keeps
     * the one it showed (chmod +x must not make make rebuild what depends on it). */
    if (rc == 0 && !(to_set & FUSE_SET_ATTR_SIZE))
        inode_mfs_keep_changed(fs->inodes, ino,
                               set_time && ino->kind == NODE_DIR ? 0 : before.changed_ns);
    return rc;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t id, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    /* With FUSE_HANDLE_KILLPRIV_V2 a chown or truncate comes with "kill setuid/setgid" (the
     * kernel's FATTR_KILL_SUIDGID is libfuse's KILL_SUID bit): nothing to do, no mode ipfsfs
     * shows has either bit (fill_attr). */
    to_set &= ~(FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID);
    int rc = do_setattr(fs, ino, attr, to_set, fi);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct stat st;
    fill_attr(fs, ino, &st);
    fuse_reply_attr(req, &st, fs->cfg.root_timeout);
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

/* Names outside the namespaces we serve, answered before anything else: every namespace but
 * user. (and Kubo's ipfs.cid) holds nothing here, setxattr is refused. "Not supported" lets
 * programs stop asking, as ls -l does for the rest of the device after one
 * lgetxattr(security.selinux) or getxattr(system.posix_acl_access). The ACL names may say so
 * because fs_init does not ask for FUSE_CAP_POSIX_ACL: the kernel's permission checks then
 * never read them (with it, an error there would deny access). */
static int foreign_xattr(const char *name)
{
    if (strncmp(name, "user.", 5) == 0 || strcmp(name, XATTR_CID_KUBO) == 0 ||
        strcmp(name, XATTR_SYNC_LINK) == 0)
        return 0;
    return EOPNOTSUPP;
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t id, const char *name, size_t size)
{
    int err = foreign_xattr(name);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    if ((strcmp(name, XATTR_SYNC) == 0 || strcmp(name, XATTR_SYNC_LINK) == 0) &&
        fs->node->ops->sync_state && ino->mfs) {
        char path[PATH_MAX], buf[1100]; /* "error: " and the sync error (1023) */
        int n = mfs_path(fs, ino, path, sizeof path);
        if (n >= 0)
            n = fs->node->ops->sync_state(fs->node, path, buf, sizeof buf);
        if (n < 0)
            fuse_reply_err(req, n == -ENOSYS ? ENODATA : -n);
        else
            reply_xattr_value(req, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1,
                              size);
        return;
    }
    if (ino->mfs && fs->node->ops->name_getxattr) {
        /* Attributes the node keeps for names (user.ipfs.pins, user.ipfs.replication). */
        char path[PATH_MAX], buf[1024];
        int n = mfs_path(fs, ino, path, sizeof path);
        if (n >= 0)
            n = fs->node->ops->name_getxattr(fs->node, path, name, buf, sizeof buf);
        if (n != -ENOSYS) {
            if (n < 0)
                fuse_reply_err(req, -n);
            else
                reply_xattr_value(req, buf,
                                  (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, size);
            return;
        }
    }
    if (id == FUSE_ROOT_ID) {
        if (strcmp(name, XATTR_STATS) == 0) {
            char buf[8192];
            int n = fs_stats(fs, buf, sizeof buf);
            reply_xattr_value(req, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n
                                                                            : sizeof buf - 1,
                              size);
            return;
        }
        if ((strcmp(name, XATTR_CID) == 0 || strcmp(name, XATTR_CID_KUBO) == 0) &&
            !fs->cfg.names_follow_content) {
            /* The CID of every name at once (the --mfs-root directory's): what to share, or
             * pin, for the whole mount. Not in the IPNS namespace: its root is no directory. */
            char path[PATH_MAX], s[CID_STR_MAX];
            struct node_stat st;
            struct cid c;
            int rc = mfs_path(fs, ino, path, sizeof path);
            if (rc >= 0 && (rc = fs->node->ops->mfs_stat(fs->node, path, &st, &c)) == 0)
                node_stat_clear(&st);
            if (rc == 0 && (rc = cid_format(&c, s, sizeof s)) < 0)
                rc = -EIO;
            if (rc < 0)
                fuse_reply_err(req, -rc);
            else
                reply_xattr_value(req, s, (size_t)rc, size);
            return;
        }
        fuse_reply_err(req, ENODATA);
        return;
    }
    if (strcmp(name, XATTR_CID) == 0 || strcmp(name, XATTR_CID_KUBO) == 0) {
        char s[CID_STR_MAX];
        struct cid c;
        if (!ino->mfs) {
            c = ino->cid; /* content under MOUNTPOINT/<cid>: set once, never changes */
        } else {
            /* A name's CID changes with its content (a directory's with any name inside,
             * also changed by other tools): ask the node, not our cached attributes. */
            struct mfs_attr a;
            int rc = ino == inode_root(fs->inodes) ? -ENODATA : mfs_refresh(fs, ino);
            if (rc < 0) {
                fuse_reply_err(req, -rc);
                return;
            }
            inode_mfs_get(fs->inodes, ino, &a);
            c = a.cid;
        }
        int n = cid_format(&c, s, sizeof s);
        if (n < 0)
            fuse_reply_err(req, EIO);
        else
            reply_xattr_value(req, s, (size_t)n, size);
        return;
    }
    fuse_reply_err(req, ENODATA);
}

/* Only the attributes a user sets are listed (user.ipfs.replication on a cluster): the computed
 * ones (user.ipfs.cid, ipfs.cid, user.ipfsfs.sync, user.ipfsfs.stats, user.ipfs.pins) are read
 * by name. Listed, they would be copied by cp -a and rsync -X as stale values onto other files,
 * refused by other filesystems (ipfs.cid has no namespace), and removed by rsync -X when
 * copying in (which fails): as CephFS does with its virtual attributes. */
static void fs_listxattr(fuse_req_t req, fuse_ino_t id, size_t size)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(id);
    size_t len = 0;
    char buf[512];
    if (ino->mfs && fs->node->ops->name_xattrs) {
        /* the node's own, for the names that have them */
        char path[PATH_MAX];
        int n = mfs_path(fs, ino, path, sizeof path);
        if (n >= 0)
            n = fs->node->ops->name_xattrs(fs->node, path, buf + len, sizeof buf - len);
        if (n > 0 && (size_t)n <= sizeof buf - len)
            len += (size_t)n;
    }
    reply_xattr_value(req, buf, len, size);
}

/* Where new content goes (the node's repo, the store's disk), in 4 KiB blocks; zeros when the
 * node cannot tell (df then shows nothing rather than a made-up figure). */
static void fill_statfs(struct fs *fs, struct statvfs *sv)
{
    uint64_t total = 0, avail = 0;
    memset(sv, 0, sizeof *sv);
    sv->f_bsize = 4096;
    sv->f_frsize = 4096;
    sv->f_namemax = NAME_MAX;
    if (!fs->node->ops->space || fs->node->ops->space(fs->node, &total, &avail) < 0)
        return;
    if (avail > total)
        avail = total;
    sv->f_blocks = (fsblkcnt_t)(total / 4096);
    sv->f_bfree = (fsblkcnt_t)(avail / 4096);
    sv->f_bavail = sv->f_bfree;
}

static void fs_statfs(fuse_req_t req, fuse_ino_t id)
{
    (void)id;
    struct statvfs sv;
    fill_statfs(fs_of(req), &sv);
    fuse_reply_statfs(req, &sv);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
    (void)n, (void)m, (void)d;
    struct fs *fs = fs_of(req);
    /* IPFS stores files, directories and symlinks only. */
    fuse_reply_err(req, ino_of(p)->mfs ? EPERM : EROFS);
}
/* A hard link is a copy of the content's CID (UnixFS has no link counts): the new name has
 * the same bytes, mode, time and CID (as ipfs add gives two equal files), so tar x, cp -a and
 * rsync -H of trees with hard links work; the two names change apart from then on. A source
 * open for writing gives what its last close stored. */
static void fs_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
    struct fs *fs = fs_of(req);
    struct inode *src = ino_of(i), *dir = ino_of(np);
    char path[PATH_MAX];
    struct cid c;
    int rc = check_new_name(fs, dir, nn);
    if (rc == 0)
        rc = mfs_child_path(fs, dir, nn, path, sizeof path);
    if (rc == 0 && src == inode_root(fs->inodes))
        rc = -EPERM;
    if (rc == 0) { /* link(2) never replaces a name (mfs_link would) */
        struct node_stat st;
        struct cid old;
        int e = fs->node->ops->mfs_stat(fs->node, path, &st, &old);
        if (e == 0)
            node_stat_clear(&st);
        rc = e == 0 ? -EEXIST : e == -ENOENT ? 0 : e;
    }
    int64_t changed = 0;
    if (rc == 0 && !src->mfs) {
        c = src->cid; /* content under MOUNTPOINT/<cid>: set once, never changes */
    } else if (rc == 0 && (rc = mfs_refresh(fs, src)) == 0) {
        struct mfs_attr a;
        inode_mfs_get(fs->inodes, src, &a);
        c = a.cid;
        changed = a.changed_ns;
    }
    if (rc == 0)
        rc = fs->node->ops->mfs_link(fs->node, &c, path);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    reply_new_entry(req, fs, dir, nn, changed);
}
static void fs_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t sz,
                        int f)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(i);
    int rc = ino->mfs ? -ENOTSUP : -EROFS;
    if (ino->mfs && fs->node->ops->name_setxattr && !foreign_xattr(n)) {
        char path[PATH_MAX];
        rc = mfs_path(fs, ino, path, sizeof path);
        if (rc >= 0)
            rc = fs->node->ops->name_setxattr(fs->node, path, n, v, sz, f);
        if (rc == -ENOSYS)
            rc = -ENOTSUP;
    }
    fuse_reply_err(req, -rc);
}
static void fs_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
    struct fs *fs = fs_of(req);
    struct inode *ino = ino_of(i);
    if (ino->mfs && (strcmp(n, XATTR_CID) == 0 || strcmp(n, XATTR_CID_KUBO) == 0 ||
                     strcmp(n, XATTR_STATS) == 0 || strcmp(n, XATTR_SYNC) == 0 ||
                     strcmp(n, XATTR_SYNC_LINK) == 0)) {
        /* Computed, not stored: nothing to remove. rsync -X removes what the source lacks,
         * and would end with status 23 for every file otherwise. */
        fuse_reply_err(req, 0);
        return;
    }
    if (ino->mfs && fs->node->ops->name_setxattr && !foreign_xattr(n)) {
        char path[PATH_MAX];
        int rc = mfs_path(fs, ino, path, sizeof path);
        if (rc >= 0) /* a NULL value removes */
            rc = fs->node->ops->name_setxattr(fs->node, path, n, NULL, 0, 0);
        fuse_reply_err(req, rc == -ENOSYS ? ENODATA : -rc);
        return;
    }
    /* A user. name nothing keeps is not there (ENODATA, with a node or not); other
     * namespaces hold nothing here at all. */
    fuse_reply_err(req, !ino->mfs ? EROFS : foreign_xattr(n) ? ENOTSUP : ENODATA);
}

/* access(2) and chdir: asked only when the kernel checks no permissions itself, on a mount
 * that only root can enter (main.c). Root may do anything there but execute a file with no x
 * bit, as the kernel's own check (generic_permission) has it. */
static void fs_access(fuse_req_t req, fuse_ino_t id, int mask)
{
    struct fs *fs = fs_of(req);
    struct stat st;
    fill_attr(fs, ino_of(id), &st);
    bool denied = (mask & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111);
    fuse_reply_err(req, denied ? EACCES : 0);
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
    .readdirplus = fs_readdirplus,
    .releasedir = fs_releasedir,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .flush = fs_flush,
    .fsync = fs_fsync,
    .fsyncdir = fs_fsyncdir,
    .release = fs_release,
    .getxattr = fs_getxattr,
    .listxattr = fs_listxattr,
    .statfs = fs_statfs,
    .mkdir = fs_mkdir,
    .mknod = fs_mknod,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .create = fs_create,
    .setattr = fs_setattr,
    .setxattr = fs_setxattr,
    .removexattr = fs_removexattr,
    .access = fs_access,
};

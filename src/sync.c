/* sync.c - see sync.h.
 *
 * One thread runs the engine; fsync (sync_wait), getxattr (sync_state) and unmount (sync_stop)
 * talk to it through s->lock. The thread never holds s->lock across a call to the node or the
 * store: it copies the state out, works, and publishes the result.
 */
#include "config.h"

#include "sync.h"

#include "car.h"
#include "clock.h"
#include "cluster.h"
#include "dagpb.h"
#include "log.h"
#include "node_rpc.h"
#include "node_store.h"
#include "prepush.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 500u
#define LOCAL_TICK_MS 200u
#define FIRST_ROUND_WAIT_MS 2000u /* sync_start waits this long at most for the first round */
#define BACKOFF_MAX_MS 5000u /* a node that comes back is used within 5 s */
#define MAX_PATH 4096
#define MAX_TREE_DEPTH 256 /* directory depth we follow (paths are bounded by PATH_MAX anyway) */
#define PIN_RETRY_MS 5000u  /* a cluster that refused a pin is asked again after this long */
#define PUBLISH_EVERY_MS 2000u /* --publish: at most one name/publish per this long */

#define CAR_PIPE_BYTES (1 << 20) /* the push's pipe (send_blocks) */

/* The CID of the empty UnixFS directory (the root of a new store, and of an empty MFS). */
static const char EMPTY_DIR[] = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";

struct sync {
    struct node *store, *up;
    char *mfs_root;
    unsigned timeout_ms, poll_ms;
    uint64_t max_bytes;  /* --store-size: evict what the node has past this (0: never) */
    uint64_t next_trim;  /* CLOCK_MONOTONIC ms of the next look at the store's size */
    struct cluster *cluster; /* pins each root the node has through a cluster (NULL: none) */
    bool wait_replication;   /* sync_wait also waits for the cluster's minimum replication */
    uint64_t next_pin_ms;    /* CLOCK_MONOTONIC ms of the next pin try after a refusal */
    struct cid pinned;       /* the names' root whose pins all took */
    bool pinned_valid;       /* (these three: the aux thread only) */
    struct rpc *publish_rpc; /* --publish: the node's API, and the key (NULL: none) */
    char *publish_key;
    uint64_t next_publish_ms; /* the aux thread only */
    pthread_t thread;
    bool ahead;          /* sync_config's ahead, decided */
    bool ahead_unchecked; /* the node cannot say what it has: nothing is left out (the sync
                           * thread only) */
    struct prepush *pre; /* a large file's blocks, sent while it is written (NULL: none) */
    char state_path[PATH_MAX];
    struct cid empty_dir;
    /* The identity (peer ID) of the node DIR/synced was recorded with, third line of that
     * file ("" unknown: a store from before, or a node without one). Read before the thread
     * starts, then the sync thread's only. */
    char node_id[128];
    bool no_identity; /* the node has none (-ENOSYS): not asked (the sync thread's only) */
    /* Another node was found at the address: rounds take it as a first contact (empty base)
     * until a state is recorded for it (save_state clears it). The sync thread's only. */
    bool rebase;
    /* When the push last moved (CLOCK_MONOTONIC ms): a block written into the CAR the node
     * reads, which it can take only as fast as the node takes the upload. fsync waits while it
     * moves, as the upload's own bound does (no lock: one writer, the CAR's thread). */
    _Atomic uint64_t moved_ms;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* the thread waits for kicks here; waiters for progress */
    bool stop, kicked;
    bool started; /* the thread runs (set once, before anyone waits on it) */
    /* The pins (cluster) and the publishing (--publish) run in a thread of their own, so a
     * slow cluster or IPNS never holds up a push: aux_kick wakes it after a good round,
     * aux_stop ends it (after a last round). Both under lock; aux_cond is its own. */
    pthread_t aux_thread;
    bool aux_started, aux_kick, aux_stop;
    pthread_cond_t aux_cond;
    uint64_t stop_deadline_ms; /* under lock (join_or_cut moves it) */
    bool have_state;
    struct cid synced_local;  /* the store's root the node was last confirmed to have */
    struct cid synced_remote; /* the node's MFS directory's CID at that time */
    uint64_t pushed_seq;      /* store commit sequence number whose root the node has */
    bool pushed_valid;        /* pushed_seq was set by a round of this process (the store's
                               * sequence numbers start again at 0 in each process) */
    uint64_t attempts;        /* finished rounds (each success or failure adds one) */
    uint64_t begun;           /* rounds begun */
    uint64_t failed_round;    /* the begun number of the last round that failed (0: none) */
    char error[1024];         /* why the last round failed ("" after a success) */
    uint64_t pushes, blocks_sent, bytes_sent, adopted, merged, conflicts, failed;
    uint64_t other_node; /* rounds that found another node (a new repo) at the address */
    uint64_t absent;     /* subtrees such a node lacked after the push (check_absent) */
    uint64_t evicted_blocks, evicted_bytes;
    uint64_t ahead_missing; /* pushes that found the node without blocks sent ahead */
    bool published_valid;
    struct cid published;       /* the root last published under publish_key */
    char publish_name[128];     /* its IPNS name (k51...), once published */
    char publish_error[256];    /* why the last publish failed ("" after a success) */
    uint64_t publishes;
    struct repl {
        char *path;     /* "a/b": a name under the root, without the leading slash */
        int rmin, rmax; /* its replication factors (user.ipfs.replication) */
    } *repl;            /* sorted by path; kept in DIR/replication */
    size_t nrepl;
    bool repin;         /* the factors changed: pin again even if the root did not */
};

static void deadline_ts(uint64_t ms_from_now, struct timespec *ts)
{
    *ts = clock_mono_after(ms_from_now);
}

/* ---- the state file: two CIDs, one per line, replaced atomically ---- */

static int load_state(struct sync *s)
{
    FILE *f = fopen(s->state_path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char a[CID_STR_MAX], b[CID_STR_MAX], id[sizeof s->node_id];
    int rc = -EINVAL;
    if (fgets(a, sizeof a, f) && fgets(b, sizeof b, f)) {
        a[strcspn(a, "\n")] = 0;
        b[strcspn(b, "\n")] = 0;
        if (cid_parse(a, strlen(a), &s->synced_local) == 0 &&
            cid_parse(b, strlen(b), &s->synced_remote) == 0) {
            s->have_state = true;
            rc = 0;
        }
        if (rc == 0 && fgets(id, sizeof id, f)) { /* the node's identity: since 0.1.0 */
            id[strcspn(id, "\n")] = 0;
            snprintf(s->node_id, sizeof s->node_id, "%s", id);
        }
        /* The --mfs-root synced with (a fourth line, since 0.1.0 too): the state of one
         * folder on the node says nothing of another. A mount with another --mfs-root merges
         * the names with it as on a first mount (nothing is removed, neither here nor there),
         * not as if every name the new folder lacks had been removed on the node. */
        char root[PATH_MAX];
        if (rc == 0 && fgets(root, sizeof root, f)) {
            root[strcspn(root, "\n")] = 0;
            if (root[0] && strcmp(root, s->mfs_root) != 0) {
                log_warn("%s was recorded with --mfs-root=%s, this mount's is %s: the names "
                         "here are merged with the node's %s as on a first mount, nothing is "
                         "removed", s->state_path, root, s->mfs_root, s->mfs_root);
                s->have_state = false;
                s->node_id[0] = '\0';
            }
        }
    }
    fclose(f);
    if (rc < 0)
        log_warn("%s is damaged: the names will be merged with the node's as on a first mount",
                 s->state_path);
    return 0;
}

static int save_state(struct sync *s, const struct cid *local, const struct cid *remote)
{
    char a[CID_STR_MAX], b[CID_STR_MAX], tmp[PATH_MAX + 16];
    if (cid_format(local, a, sizeof a) < 0 || cid_format(remote, b, sizeof b) < 0)
        return -EINVAL;
    snprintf(tmp, sizeof tmp, "%s.tmp", s->state_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char line[2 * CID_STR_MAX + sizeof s->node_id + PATH_MAX + 4];
    int n = snprintf(line, sizeof line, "%s\n%s\n%s\n%s\n", a, b, s->node_id, s->mfs_root);
    int rc = n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) == n ? 0 : -EIO;
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, s->state_path) < 0)
        rc = -errno;
    if (rc == 0)
        s->rebase = false; /* recorded for the node node_id names */
    if (rc == 0) { /* the rename itself durable: the record must not go back after a crash */
        int dfd = open(node_store_dir(s->store), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) < 0)
                rc = -errno;
            close(dfd);
        }
    }
    if (rc < 0) {
        unlink(tmp);
        log_err("cannot record the sync state in %s: %s", s->state_path, strerror(-rc));
    }
    return rc;
}

/* ---- directory listings, sorted by name ---- */

struct ent {
    char *name;
    struct cid cid;
    enum node_kind kind;
};

struct ents {
    struct ent *v;
    size_t n, cap;
};

static void ents_free(struct ents *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].name);
    free(e->v);
    memset(e, 0, sizeof *e);
}

static int ents_add(void *ud, const struct node_entry *ne)
{
    struct ents *e = ud;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        struct ent *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        e->v = v;
        e->cap = cap;
    }
    char *name = strndup(ne->name, ne->name_len);
    if (!name)
        return -ENOMEM;
    e->v[e->n++] = (struct ent){.name = name, .cid = ne->cid, .kind = ne->kind};
    return 0;
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

static const struct ent *ents_find(const struct ents *e, const char *name)
{
    struct ent key = {.name = (char *)name};
    return e->n ? bsearch(&key, e->v, e->n, sizeof *e->v, ent_cmp) : NULL;
}

/* Whether c is the empty directory, in either CID version. */
static bool is_empty_dir(const struct sync *s, const struct cid *c)
{
    return c->codec == s->empty_dir.codec && c->mh_len == s->empty_dir.mh_len &&
           memcmp(c->mh, s->empty_dir.mh, c->mh_len) == 0;
}

/* List directory c from n (the store or the node). The empty directory needs no block. */
static int list_dir_on(struct sync *s, struct node *n, const struct cid *c, struct ents *out)
{
    memset(out, 0, sizeof *out);
    if (!c || is_empty_dir(s, c))
        return 0;
    int rc = n->ops->list(n, c, ents_add, out);
    if (rc < 0) {
        ents_free(out);
        return rc;
    }
    if (out->n > 1) /* an empty listing has no array at all */
        qsort(out->v, out->n, sizeof *out->v, ent_cmp);
    /* A kind the listing could not tell is asked. */
    for (size_t i = 0; i < out->n; i++) {
        if (out->v[i].kind != NODE_UNKNOWN)
            continue;
        struct node_stat st = {0};
        rc = n->ops->stat(n, &out->v[i].cid, &st);
        node_stat_clear(&st);
        if (rc < 0) {
            ents_free(out);
            return rc;
        }
        out->v[i].kind = st.kind;
    }
    return 0;
}

/* The names of directory c, through n. A directory the store holds (with what its listing
 * reads of its names: nothing is fetched for it) is listed there even when n is the node: the
 * listing of a CID is the same everywhere, costs no round trip here, and keeps every name's
 * bytes, where the node's JSON answer turns a name that is not UTF-8 (made on a store with no
 * node) into another (U+FFFD for each bad byte): compared with ours, that name would look
 * removed and ours new, and linking ours fails ("File exists"), every round. So the node's
 * version of a directory that came from here (what the last push made) compares exactly; one
 * changed on the node with such a name in it still reads through the JSON. */
static int list_dir(struct sync *s, struct node *n, const struct cid *c, struct ents *out)
{
    if (n != s->store && c && node_store_has(s->store, c)) {
        bool was = node_store_here_only(true);
        int rc = list_dir_on(s, s->store, c, out);
        node_store_here_only(was);
        if (rc == 0)
            return 0;
    }
    return list_dir_on(s, n, c, out);
}

static int join(char *buf, size_t len, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    int n = snprintf(buf, len, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- blocks: a CAR of what the local tree has and the node's does not ---- */

/* A set of blocks seen, by codec and multihash (open addressing, grows at half full). The
 * codec counts: one block's bytes read as raw link nothing, read as dag-pb they may, and a walk
 * that met them as raw first must still follow them as dag-pb. */
struct seen {
    struct cid *v;
    size_t cap, n;
};

static uint64_t mh_hash(const struct cid *c)
{
    uint64_t h = 1469598103934665603ull ^ c->codec;
    for (size_t i = 0; i < c->mh_len; i++)
        h = (h ^ c->mh[i]) * 1099511628211ull;
    return h;
}

/* 1 if c was there, 0 if added now, -ENOMEM. */
static int seen_add(struct seen *s, const struct cid *c)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        struct cid *v = calloc(cap, sizeof *v);
        if (!v)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->v[i].mh_len)
                continue;
            size_t j = mh_hash(&s->v[i]) & (cap - 1);
            while (v[j].mh_len)
                j = (j + 1) & (cap - 1);
            v[j] = s->v[i];
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    size_t j = mh_hash(c) & (s->cap - 1);
    while (s->v[j].mh_len) {
        if (s->v[j].mh_len == c->mh_len && s->v[j].codec == c->codec &&
            memcmp(s->v[j].mh, c->mh, c->mh_len) == 0)
            return 1;
        j = (j + 1) & (s->cap - 1);
    }
    s->v[j] = *c;
    s->n++;
    return 0;
}

/* A push's CAR, written by a thread of its own into a pipe that the upload reads (no file of
 * the push's size on disk, and the node takes the first blocks while the rest are read). The
 * header goes out with the first block: a push with no new block sends nothing. */
struct carw {
    struct sync *s;
    int fd; /* the pipe's write end */
    uint64_t size, blocks;
    struct seen seen;
    const struct cid *local, *remote;
    bool use_ahead; /* leave out what went ahead */
    /* Blocks left out because they went ahead (prepush_has): the roots of the files they
     * belong to, checked on the node once the names link them; and those reached by a name
     * themselves (a file that is one chunk of another), checked before. */
    struct seen ahead_roots, ahead_self;
    const struct cid *file_root; /* the file being walked (NULL: none) */
    /* A first push to another node (a new repo at the address): the subtrees the store does
     * not hold (adopted from the old node) may not be on this one. Noted, at most ABSENT_MAX,
     * and asked of the node after the push (send_blocks). */
    bool note_absent;
    struct seen absent;
    int rc; /* the thread's result */
};

#define ABSENT_MAX 64

static int car_out(void *ud, const void *data, size_t len)
{
    struct carw *w = ud;
    int rc = car_sink_fd(&w->fd, data, len);
    if (rc == 0)
        w->size += len;
    return rc;
}

static int send_tree(struct carw *w, const struct cid *l, const struct cid *r, unsigned depth);
static int send_shard(struct carw *w, const struct cid *c, const struct ents *remote,
                      struct seen *rset, unsigned depth);

/* The links of a directory (or HAMT shard) block: an entry whose CID the node's directory
 * has under any name (rset: the CIDs of remote, the node's listing of it) is skipped; a
 * changed subdirectory is compared with the node's one. rset is made once per directory, not
 * per shard: a HAMT of 10,000 names has ~256 shards. */
static int send_dir_links(struct carw *w, const struct dagpb_node *pb, bool hamt,
                          const struct ents *remote, struct seen *rset, unsigned depth)
{
    int rc = 0;
    for (size_t i = 0; i < pb->nlinks && rc >= 0; i++) {
        const struct dagpb_link *lk = &pb->links[i];
        struct cid c;
        if (cid_from_bytes(lk->hash, lk->hash_len, &c) < 0) {
            rc = -EIO;
            break;
        }
        size_t skip = hamt ? 2 : 0; /* a HAMT link name starts with the bucket's 2 hex digits */
        if (hamt && lk->name_len <= skip) { /* a sub-shard: same directory, deeper */
            rc = send_shard(w, &c, remote, rset, depth + 1);
            continue;
        }
        if (rset->n && seen_add(rset, &c) == 1)
            continue;
        const struct ent *re = NULL;
        if (lk->name_len > skip && lk->name_len - skip < 256) {
            char name[256];
            memcpy(name, lk->name + skip, lk->name_len - skip);
            name[lk->name_len - skip] = 0;
            re = ents_find(remote, name);
        }
        rc = send_tree(w, &c, re && re->kind == NODE_DIR ? &re->cid : NULL, depth + 1);
    }
    return rc;
}

/* Put c's block into the CAR, unless it is in already or the store does not hold it (then it
 * came from the node: adopted or fetched; the node has it, and everything under it).
 * Returns 1 and the block (*b, to free) when written, 0 when skipped, or -errno. */
static int emit_block(struct carw *w, const struct cid *c, unsigned depth, uint8_t **b,
                      size_t *len)
{
    if (depth > MAX_TREE_DEPTH)
        return -ELOOP;
    if (w->use_ahead && prepush_has(w->s->pre, c)) /* a leaf: nothing under it */
        return seen_add(w->file_root ? &w->ahead_roots : &w->ahead_self,
                        w->file_root ? w->file_root : c) < 0
                   ? -ENOMEM
                   : 0;
    if (!node_store_has(w->s->store, c)) {
        if (w->note_absent && w->absent.n < ABSENT_MAX && seen_add(&w->absent, c) < 0)
            return -ENOMEM;
        return 0;
    }
    int rc = seen_add(&w->seen, c);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    rc = node_store_block(w->s->store, c, b, len);
    if (rc < 0)
        return rc;
    if (w->blocks == 0 && (rc = car_write_header(car_out, w, w->local, 1)) < 0) {
        free(*b);
        return rc;
    }
    rc = car_write_block(car_out, w, c, *b, *len);
    w->blocks++;
    atomic_store(&w->s->moved_ms, clock_mono_ms());
    if (rc < 0) {
        free(*b);
        return rc;
    }
    return 1;
}

/* Put l's blocks that the node may lack into the CAR; r is the node's version of the same
 * directory, if any. */
static int send_tree(struct carw *w, const struct cid *l, const struct cid *r, unsigned depth)
{
    if (r && cid_equal(l, r))
        return 0;
    uint8_t *b;
    size_t len;
    int rc = emit_block(w, l, depth, &b, &len);
    if (rc <= 0)
        return rc;
    rc = 0;
    if (l->codec != CID_CODEC_DAG_PB) {
        free(b);
        return 0;
    }
    struct dagpb_node pb;
    struct unixfs_data u;
    if (dagpb_decode(b, len, &pb) < 0) {
        free(b);
        return -EIO;
    }
    if (!pb.has_data || unixfs_decode(pb.data, pb.data_len, &u) < 0) {
        rc = -EIO;
        goto out;
    }
    if (u.type == UNIXFS_DIRECTORY || u.type == UNIXFS_HAMT_SHARD) {
        struct ents remote = {0};
        struct seen rset = {0};
        if (r) {
            rc = list_dir(w->s, w->s->up, r, &remote);
            if (rc < 0) /* the node cannot list its own version: send ours whole */
                memset(&remote, 0, sizeof remote);
        }
        rc = 0;
        for (size_t i = 0; i < remote.n && rc >= 0; i++)
            rc = seen_add(&rset, &remote.v[i].cid);
        if (rc >= 0)
            rc = send_dir_links(w, &pb, u.type == UNIXFS_HAMT_SHARD, &remote, &rset, depth);
        free(rset.v);
        ents_free(&remote);
    } else {
        bool top = !w->file_root;
        if (top)
            w->file_root = l;
        for (size_t i = 0; i < pb.nlinks && rc >= 0; i++) {
            struct cid c;
            rc = cid_from_bytes(pb.links[i].hash, pb.links[i].hash_len, &c) < 0
                     ? -EIO
                     : send_tree(w, &c, NULL, depth + 1);
        }
        if (top)
            w->file_root = NULL;
    }
out:
    dagpb_node_free(&pb);
    free(b);
    return rc;
}

/* A HAMT sub-shard: its block, then its links compared with the whole directory's listing
 * on the node (entries are found by name, wherever they sit in the node's shards). */
static int send_shard(struct carw *w, const struct cid *c, const struct ents *remote,
                      struct seen *rset, unsigned depth)
{
    uint8_t *b;
    size_t len;
    int rc = emit_block(w, c, depth, &b, &len);
    if (rc <= 0)
        return rc;
    struct dagpb_node pb;
    if (c->codec == CID_CODEC_DAG_PB && dagpb_decode(b, len, &pb) == 0) {
        rc = send_dir_links(w, &pb, true, remote, rset, depth);
        dagpb_node_free(&pb);
    } else {
        rc = -EIO;
    }
    free(b);
    return rc;
}

static void *car_thread(void *arg)
{
    struct carw *w = arg;
    /* A write after the upload gave up is EPIPE here, not a SIGPIPE for the process (a
     * signal raised by a thread's own write goes to that thread; pending, it goes with it). */
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    w->rc = send_tree(w, w->local, w->remote, 0);
    close(w->fd);
    return NULL;
}

static void fmt(const struct cid *c, char *buf, size_t len);
static int up_has_dag(struct sync *s, const struct cid *c, unsigned depth);

/* After a first push to another node: the subtrees the names link that the store does not
 * hold (they came from the node that was there before, or were evicted once it had them:
 * --store-size) and this node lacks too. Their names are
 * on the node, but their content is not (reading them times out) until a node that has it is
 * reachable: say so, and count them (sync_absent), rather than call the names synced in
 * silence. */
static void check_absent(struct sync *s, const struct seen *absent)
{
    char list[8 * (CID_STR_MAX + 1)] = "";
    size_t missing = 0, k = 0;
    for (size_t i = 0; i < absent->cap; i++) {
        const struct cid *c = &absent->v[i];
        if (!c->mh_len || up_has_dag(s, c, 0) != 0)
            continue; /* an empty slot; there; or cannot tell */
        if (missing++ < 8) {
            char cs[CID_STR_MAX];
            fmt(c, cs, sizeof cs);
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? " " : "", cs);
        }
    }
    if (!missing)
        return;
    pthread_mutex_lock(&s->lock);
    s->absent += missing;
    pthread_mutex_unlock(&s->lock);
    log_warn("%s lacks the content of %zu%s subtrees the names link, which this store does "
             "not hold either (made on the node that was at this address before, or evicted "
             "once it had them): %s%s; reading them fails until a node that has them is "
             "reachable",
             s->up->description, missing, absent->n >= ABSENT_MAX ? " or more" : "", list,
             missing > 8 ? " ..." : "");
}

/* Send the blocks of local that the node's tree remote lacks, in one dag/import. With
 * use_ahead, blocks that went ahead are left out: the files they belong to go into ahead[0],
 * those a name reaches directly into ahead[1] (to free; NULL: dropped). */
static int send_blocks(struct sync *s, const struct cid *local, const struct cid *remote,
                       bool use_ahead, uint64_t *nblocks, uint64_t *nbytes, struct seen *ahead,
                       char *err, size_t errlen)
{
    /* The large files' blocks on their way already: answered first, then left out. Within
     * the timeout, and within what is left of the unmount's wait. */
    unsigned drain_ms = s->timeout_ms;
    pthread_mutex_lock(&s->lock);
    if (s->stop) {
        uint64_t now = clock_mono_ms();
        uint64_t left = now < s->stop_deadline_ms ? s->stop_deadline_ms - now : 0;
        if (left < drain_ms)
            drain_ms = (unsigned)left;
    }
    pthread_mutex_unlock(&s->lock);
    prepush_drain_moving(s->pre, drain_ms, &s->moved_ms);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot make a pipe for the CAR: %s", strerror(e));
        return -e;
    }
    /* Room for a few blocks, so that the CAR's thread reads and checks the next ones while the
     * upload sends (a 64 KiB pipe had it wait for the upload four times a 256 KiB block). Best
     * effort: /proc/sys/fs/pipe-max-size bounds it for an unprivileged process. */
    (void)fcntl(p[1], F_SETPIPE_SZ, CAR_PIPE_BYTES);
    struct carw w = {.s = s, .fd = p[1], .local = local, .remote = remote,
                     .use_ahead = use_ahead, .note_absent = s->rebase};
    pthread_t t;
    int rc = pthread_create(&t, NULL, car_thread, &w);
    if (rc != 0) {
        close(p[0]);
        close(p[1]);
        snprintf(err, errlen, "cannot start the CAR's thread: %s", strerror(rc));
        return -rc;
    }
    /* The first byte, or the end with none (nothing new: no call). */
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int avail = 0;
    while (poll(&pf, 1, -1) < 0 && errno == EINTR)
        ;
    if (ioctl(p[0], FIONREAD, &avail) < 0)
        avail = 1; /* cannot tell: the upload finds out */
    rc = 0;
    if (avail > 0)
        rc = s->up->ops->put_car(s->up, p[0], NODE_CAR_STREAM, err, errlen);
    close(p[0]); /* an upload that gave up: the thread's next write fails, and it ends */
    pthread_join(t, NULL);
    if (w.rc < 0 && (rc == 0 || w.rc != -EPIPE)) {
        /* The CAR was cut short by the reading: that is the error, whatever the node did. */
        snprintf(err, errlen, "reading the local blocks: %s", strerror(-w.rc));
        rc = w.rc;
    }
    *nblocks = w.blocks;
    *nbytes = w.size;
    if (rc == 0 && w.absent.n) {
        atomic_store(&s->moved_ms, clock_mono_ms()); /* the CAR went: its checks start now */
        check_absent(s, &w.absent);
    }
    free(w.absent.v);
    free(w.seen.v);
    if (ahead) {
        ahead[0] = w.ahead_roots;
        ahead[1] = w.ahead_self;
    } else {
        free(w.ahead_roots.v);
        free(w.ahead_self.v);
    }
    return rc;
}

static void fmt(const struct cid *c, char *buf, size_t len);

/* Whether the node (up) has c and everything under it, by its has_dag or, without one, by
 * reading each block with get_block: 1, 0, or -errno. */
static int up_has_dag(struct sync *s, const struct cid *c, unsigned depth)
{
    if (s->up->ops->has_dag)
        return s->up->ops->has_dag(s->up, c);
    if (depth > MAX_TREE_DEPTH)
        return -ELOOP;
    uint8_t *b;
    size_t len;
    int rc = s->up->ops->get_block ? s->up->ops->get_block(s->up, c, &b, &len) : -ENOSYS;
    if (rc < 0)
        return rc == -ENOENT ? 0 : rc;
    struct dagpb_node pb;
    rc = 1;
    if (c->codec == CID_CODEC_DAG_PB && dagpb_decode(b, len, &pb) == 0) {
        for (size_t i = 0; i < pb.nlinks && rc == 1; i++) {
            struct cid cc;
            rc = cid_from_bytes(pb.links[i].hash, pb.links[i].hash_len, &cc) < 0
                     ? -EIO
                     : up_has_dag(s, &cc, depth + 1);
        }
        dagpb_node_free(&pb);
    }
    free(b);
    return rc;
}

/* The blocks that went ahead were not pinned, and the node may have dropped some before a
 * name linked them (a repo gc, a node started again on an empty repo), while linking a name
 * (files/cp) loads only the file's root. So the push asks the node, for each root in ahead,
 * whether it has every block under it: before the names for blocks a name links directly
 * (files/cp would fail on them), after the names for the files whose leaves were left out
 * (once linked, what the node has stays: Kubo's collector keeps what the MFS root reaches).
 * Where it lacks one, or cannot tell, what went ahead is forgotten and the blocks go again,
 * whole (*resent). A node that cannot answer at all (no such call, refused) gets nothing ahead
 * any more. */
static int check_ahead(struct sync *s, const struct seen *ahead, const struct cid *local,
                       const struct cid *remote, uint64_t *nblocks, uint64_t *nbytes,
                       bool *resent, char *err, size_t errlen)
{
    if (*resent)
        return 0; /* everything went whole already */
    int has = 1;
    const struct cid *which = NULL;
    for (size_t i = 0; has == 1 && i < ahead->cap; i++)
        if (ahead->v[i].mh_len)
            has = up_has_dag(s, which = &ahead->v[i], 0);
    if (has == 1)
        return 0;
    char cs[CID_STR_MAX];
    fmt(which, cs, sizeof cs);
    if (has == -ENOSYS || has == -EOPNOTSUPP || has == -EACCES || has == -EPERM) {
        log_warn("%s cannot tell whether it still has the blocks sent ahead (%s: %s): they go "
                 "with the names from now on",
                 s->up->description, cs, strerror(-has));
        s->ahead_unchecked = true;
        prepush_off(s->pre);
    } else if (has < 0) {
        log_info("%s could not tell whether it has the blocks of %s sent ahead (%s): sending "
                 "them again",
                 s->up->description, cs, strerror(-has));
    } else {
        log_info("%s lacks blocks of %s it took ahead of their names (dropped since): sending "
                 "them again",
                 s->up->description, cs);
        pthread_mutex_lock(&s->lock);
        s->ahead_missing++;
        pthread_mutex_unlock(&s->lock);
    }
    prepush_forget(s->pre);
    uint64_t nb = 0, nby = 0;
    int rc = send_blocks(s, local, remote, false, &nb, &nby, NULL, err, errlen);
    *nblocks += nb;
    *nbytes += nby;
    *resent = true;
    return rc;
}

/* ---- names: make the node's directory at path (now remote) equal the local one ---- */

static int name_failed(char *err, size_t errlen, const char *what, const char *path, int rc)
{
    snprintf(err, errlen, "%s %.300s: %s", what, path, strerror(-rc));
    return rc;
}

static int dir_meta_equal(struct sync *s, const struct cid *l, const struct cid *r)
{
    struct node_stat a = {0}, b = {0};
    int rc = s->store->ops->stat(s->store, l, &a);
    if (rc == 0)
        rc = s->up->ops->stat(s->up, r, &b);
    node_stat_clear(&a);
    node_stat_clear(&b);
    if (rc < 0)
        return rc;
    return a.mode == b.mode && a.has_mtime == b.has_mtime &&
           (!a.has_mtime || (a.mtime == b.mtime && a.mtime_nsec == b.mtime_nsec));
}

/* The mount root's own mode and mtime (chmod, touch of the mount point) go to --mfs-root.
 * A failure is logged, not retried: the names matter more than the root's metadata. */
static void push_root_meta(struct sync *s, const char *path, const struct cid *remote,
                           const struct cid *local)
{
    struct node_stat a = {0}, b = {0};
    if (s->store->ops->stat(s->store, local, &a) == 0 &&
        s->up->ops->stat(s->up, remote, &b) == 0) {
        int rc = 0;
        if (a.mode && a.mode != b.mode)
            rc = s->up->ops->mfs_chmod(s->up, path, a.mode);
        if (rc == 0 && a.has_mtime &&
            (!b.has_mtime || a.mtime != b.mtime || a.mtime_nsec != b.mtime_nsec))
            rc = s->up->ops->mfs_touch(s->up, path,
                                       &(struct timespec){a.mtime, a.mtime_nsec});
        if (rc < 0)
            log_warn("the mode or mtime of the mount root did not reach %s: %s",
                     s->up->description, strerror(-rc));
    }
    node_stat_clear(&a);
    node_stat_clear(&b);
}

/* A directory with this many names to change goes to the node whole: one files/rm and one
 * files/cp instead of one or two calls per name. Kubo takes ~30 ms per name in a directory of
 * thousands (it re-encodes the directory each time): 10,000 files copied into one directory
 * took 3 minutes to reach the node, name by name. */
#define PUSH_WHOLE_MIN 32

/* push_names for a directory below the root with many changed names (re: the node's names
 * in remote, le: ours in local): replace the node's directory at path with ours whole (its
 * blocks are on the node: send_blocks sent them). Only if the node's directory is still
 * remote: a change made there since it was listed is merged name by name instead. MFS has no
 * compare-and-swap: a change made on the node in the moment between that check and the
 * replacement is lost (the name-by-name path has the same moment for each name it replaces).
 * If ours cannot be linked, the node's version goes back. Returns 1 when done, 0 when not for
 * this directory, -errno. */
static int push_whole(struct sync *s, const char *path, const struct cid *remote,
                      const struct cid *local, const struct ents *re, const struct ents *le)
{
    size_t changes = 0;
    for (size_t i = 0; i < re->n && changes < PUSH_WHOLE_MIN; i++)
        changes += !ents_find(le, re->v[i].name);
    for (size_t i = 0; i < le->n && changes < PUSH_WHOLE_MIN; i++) {
        const struct ent *r = ents_find(re, le->v[i].name);
        changes += !r || !cid_equal(&r->cid, &le->v[i].cid);
    }
    if (changes < PUSH_WHOLE_MIN)
        return 0;
    struct node_stat st = {0};
    struct cid now;
    int rc = s->up->ops->mfs_stat(s->up, path, &st, &now);
    node_stat_clear(&st);
    if (rc < 0)
        return rc;
    if (!cid_equal(&now, remote))
        return 0;
    rc = s->up->ops->mfs_rm(s->up, path, true);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    rc = s->up->ops->mfs_link(s->up, local, path);
    if (rc < 0 && s->up->ops->mfs_link(s->up, remote, path) < 0)
        /* Not even the node's own version went back: the next round finds the directory
         * gone from the node but changed here, keeps ours (merge_dir) and sends it again. */
        log_warn("%s on %s: neither ours nor its own version could be linked again",
                 path, s->up->description);
    return rc < 0 ? rc : 1;
}

/* Make the node's directory at path (now remote) equal the local one. With dry, change
 * nothing: return 1 at the first difference in the names (0: the same names and content). */
static int push_names(struct sync *s, const char *path, const struct cid *remote,
                      const struct cid *local, unsigned depth, bool dry, char *err,
                      size_t errlen)
{
    if (depth > MAX_TREE_DEPTH)
        return -ELOOP;
    if (dry && cid_equal(remote, local))
        return 0;
    struct ents re, le;
    int rc = list_dir(s, s->up, remote, &re);
    if (rc < 0)
        return name_failed(err, errlen, "listing the node's", path, rc);
    rc = list_dir(s, s->store, local, &le);
    if (rc < 0) {
        ents_free(&re);
        return name_failed(err, errlen, "listing the local", path, rc);
    }
    char child[MAX_PATH];
    if (!dry && depth > 0 && (rc = push_whole(s, path, remote, local, &re, &le)) != 0) {
        rc = rc > 0 ? 0 : name_failed(err, errlen, "replacing", path, rc);
        goto out;
    }
    for (size_t i = 0; i < re.n && rc == 0; i++) {
        if (ents_find(&le, re.v[i].name))
            continue;
        if (dry) {
            rc = 1;
            break;
        }
        rc = join(child, sizeof child, path, re.v[i].name);
        if (rc == 0)
            rc = s->up->ops->mfs_rm(s->up, child, true);
        if (rc < 0 && rc != -ENOENT)
            name_failed(err, errlen, "removing", child, rc);
        else
            rc = 0;
    }
    for (size_t i = 0; i < le.n && rc == 0; i++) {
        const struct ent *l = &le.v[i], *r = ents_find(&re, l->name);
        if (r && cid_equal(&r->cid, &l->cid))
            continue;
        rc = join(child, sizeof child, path, l->name);
        if (rc < 0)
            break;
        if (r && r->kind == NODE_DIR && l->kind == NODE_DIR) {
            int same = dir_meta_equal(s, &l->cid, &r->cid);
            if (same < 0) {
                rc = name_failed(err, errlen, "comparing", child, same);
                break;
            }
            if (same) {
                rc = push_names(s, child, &r->cid, &l->cid, depth + 1, dry, err, errlen);
                continue;
            }
        }
        if (dry) {
            rc = 1;
            break;
        }
        if (r) {
            rc = s->up->ops->mfs_rm(s->up, child, true);
            if (rc < 0 && rc != -ENOENT) {
                name_failed(err, errlen, "replacing", child, rc);
                break;
            }
        }
        rc = s->up->ops->mfs_link(s->up, &l->cid, child);
        if (rc < 0)
            name_failed(err, errlen, "linking", child, rc);
    }
out:
    ents_free(&re);
    ents_free(&le);
    if (rc == 0 && depth == 0 && !dry)
        push_root_meta(s, path, remote, local);
    return rc;
}

/* ---- changes made on the node ---- */

static int conflict_name(struct sync *s, const char *dir, const char *name, char *out,
                         size_t len)
{
    return sync_conflict_name(s->store, dir, name, out, len);
}

int sync_conflict_name(struct node *store, const char *dir, const char *name, char *out,
                       size_t len)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (int i = 0; i < 100; i++) {
        char leaf[300];
        if (i)
            snprintf(leaf, sizeof leaf, "%.200s.conflict-%s-%d", name, stamp, i);
        else
            snprintf(leaf, sizeof leaf, "%.200s.conflict-%s", name, stamp);
        int rc = join(out, len, dir, leaf);
        if (rc < 0)
            return rc;
        struct node_stat st = {0};
        struct cid c;
        rc = store->ops->mfs_stat(store, out, &st, &c);
        node_stat_clear(&st);
        if (rc == -ENOENT)
            return 0;
        if (rc < 0)
            return rc;
    }
    return -EEXIST;
}

/* Whether ours has a conflict copy of name ("name.conflict-...") holding c already. */
static bool has_conflict_copy(const struct ents *oe, const char *name, const struct cid *c)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < oe->n; i++)
        if (strncmp(oe->v[i].name, name, nl) == 0 &&
            strncmp(oe->v[i].name + nl, ".conflict-", 10) == 0 && cid_equal(&oe->v[i].cid, c))
            return true;
    return false;
}

/* Whether the store's name at path is still o (NULL: still absent). */
static bool still_same(struct sync *s, const char *path, const struct ent *o, struct ent *now)
{
    struct node_stat st = {0};
    int rc = s->store->ops->mfs_stat(s->store, path, &st, &now->cid);
    node_stat_clear(&st);
    if (rc == -ENOENT)
        return o == NULL;
    return rc == 0 && o && cid_equal(&now->cid, &o->cid);
}

static bool same_ent(const struct ent *a, const struct ent *b)
{
    if (!a || !b)
        return !a && !b;
    return cid_equal(&a->cid, &b->cid);
}

/* Three-way merge into the store at path (a local path): base is what both sides had, theirs
 * the node's version now, and the store's current directory at path is ours. */
static int merge_dir(struct sync *s, const char *path, const struct cid *base,
                     const struct cid *theirs, unsigned depth, char *err, size_t errlen)
{
    if (depth > MAX_TREE_DEPTH)
        return -ELOOP;
    struct ents be = {0}, te = {0}, oe = {0};
    int rc = list_dir(s, s->store, base, &be);
    if (rc == 0)
        rc = list_dir(s, s->up, theirs, &te);
    if (rc == 0) {
        rc = s->store->ops->mfs_list(s->store, path, ents_add, &oe);
        if (rc == 0)
            if (oe.n > 1)
                qsort(oe.v, oe.n, sizeof *oe.v, ent_cmp);
    }
    if (rc < 0) {
        name_failed(err, errlen, "merging", path, rc);
        goto out;
    }
    char child[MAX_PATH], other[MAX_PATH];
    for (int pass = 0; pass < 2 && rc >= 0; pass++) {
        /* pass 0: names the node has; pass 1: names only the base had (deleted there) */
        const struct ents *src = pass == 0 ? &te : &be;
        for (size_t i = 0; i < src->n && rc >= 0; i++) {
            const char *name = src->v[i].name;
            if (pass == 1 && ents_find(&te, name))
                continue;
            const struct ent *b = ents_find(&be, name), *t = ents_find(&te, name),
                             *o = ents_find(&oe, name);
            if (same_ent(t, b) || same_ent(o, t))
                continue;
            rc = join(child, sizeof child, path, name);
            if (rc < 0)
                break;
            if (same_ent(o, b)) { /* only the node changed it: take theirs */
                /* Unless it changed here since the listing (a write racing the merge): then
                 * the next round sees both changed, and keeps a conflict copy. */
                struct ent now = {0};
                if (!still_same(s, child, o, &now))
                    continue;
                if (o) {
                    rc = s->store->ops->mfs_rm(s->store, child, true);
                    if (rc < 0 && rc != -ENOENT)
                        break;
                }
                rc = t ? s->store->ops->mfs_link(s->store, &t->cid, child) : 0;
                continue;
            }
            if (o && t && o->kind == NODE_DIR && t->kind == NODE_DIR) {
                rc = merge_dir(s, child, b && b->kind == NODE_DIR ? &b->cid : NULL, &t->cid,
                               depth + 1, err, errlen);
                continue;
            }
            if (!t) /* deleted there, changed here: ours stays */
                continue;
            if (has_conflict_copy(&oe, name, &t->cid))
                continue; /* kept by an earlier merge whose push then failed */
            rc = conflict_name(s, path, name, other, sizeof other);
            if (rc == 0)
                rc = s->store->ops->mfs_link(s->store, &t->cid, other);
            if (rc == 0) {
                log_warn("%s changed both here and on the node: the local version stays, the "
                         "node's is %s", child, other);
                pthread_mutex_lock(&s->lock);
                s->conflicts++;
                pthread_mutex_unlock(&s->lock);
            }
        }
    }
    if (rc < 0 && !err[0])
        name_failed(err, errlen, "merging", path, rc);
out:
    ents_free(&be);
    ents_free(&te);
    ents_free(&oe);
    return rc;
}

/* ---- one round ---- */

static int remote_root(struct sync *s, struct cid *out, char *err, size_t errlen)
{
    struct node_stat st = {0};
    int rc = s->up->ops->mfs_stat(s->up, s->mfs_root, &st, out);
    node_stat_clear(&st);
    if (rc == -ENOENT) {
        /* First use of --mfs-root: make it (and its parents), empty. */
        char p[MAX_PATH];
        snprintf(p, sizeof p, "%s", s->mfs_root);
        for (char *q = p + 1; rc == -ENOENT || rc == -EEXIST || rc == 0; q++) {
            char *slash = strchr(q, '/');
            if (slash)
                *slash = 0;
            rc = s->up->ops->mfs_mkdir(s->up, p);
            if (!slash)
                break;
            *slash = '/';
            q = slash;
        }
        if (rc == -EEXIST)
            rc = 0;
        if (rc == 0)
            rc = s->up->ops->mfs_stat(s->up, s->mfs_root, &st, out);
        node_stat_clear(&st);
        /* Made now: with the CID version of the store's names. Kubo makes a directory
         * CIDv0 whatever the imports' version, and the names' root then had another CID on
         * the node than user.ipfs.cid of the mount root (--cid-version=1; same content). */
        struct cid local;
        node_store_roots(s->store, &local, NULL, NULL);
        if (rc == 0 && s->up->ops->mfs_chcid && local.mh_len && local.version != out->version &&
            s->up->ops->mfs_chcid(s->up, s->mfs_root, (int)local.version) == 0) {
            rc = s->up->ops->mfs_stat(s->up, s->mfs_root, &st, out);
            node_stat_clear(&st);
        }
    }
    if (rc == 0 && st.kind != NODE_DIR)
        rc = -ENOTDIR;
    /* The log line names the node already ("sync to Kubo ... at URL: ..."). rpc's EIO is a
     * node it cannot reach, or one that failed in a way it cannot name. */
    if (rc < 0)
        snprintf(err, errlen, "files/stat %s: %s", s->mfs_root,
                 rc == -EIO || rc == -ENOTCONN || rc == -ECONNREFUSED
                     ? "the node cannot be reached, or failed"
                     : strerror(-rc));
    return rc;
}

static void fmt(const struct cid *c, char *buf, size_t len)
{
    if (cid_format(c, buf, len) < 0)
        snprintf(buf, len, "?");
}

/* The node has the store's commit seq (or a later one). Call with s->lock. */
static void note_pushed_locked(struct sync *s, uint64_t seq)
{
    if (!s->pushed_valid || seq > s->pushed_seq)
        s->pushed_seq = seq;
    s->pushed_valid = true;
}

/* Push committed (the store's committed root, commit seq) over remote (the node's names
 * now): blocks first, then names, then the record. */
static int push(struct sync *s, const struct cid *committed, const struct cid *remote,
                uint64_t seq, char *err, size_t errlen)
{
    char a[CID_STR_MAX], b[CID_STR_MAX];
    uint64_t nblocks = 0, nbytes = 0;
    struct seen ahead[2] = {{0}};
    bool resent = false;
    int rc = send_blocks(s, committed, remote, s->pre && !s->ahead_unchecked, &nblocks, &nbytes,
                         ahead, err, errlen);
    if (rc == 0)
        rc = check_ahead(s, &ahead[1], committed, remote, &nblocks, &nbytes, &resent, err,
                         errlen);
    if (rc == 0) {
        /* Kubo flushes the names once per batch, not once per name */
        bool batch = s->up->ops->mfs_batch && s->up->ops->mfs_batch(s->up, true) == 0;
        rc = push_names(s, s->mfs_root, remote, committed, 0, false, err, errlen);
        int frc = batch ? s->up->ops->mfs_batch(s->up, false) : 0;
        if (rc == 0 && frc < 0) {
            snprintf(err, errlen, "flushing the names on the node: %s", strerror(-frc));
            rc = frc;
        }
    }
    if (rc == 0)
        rc = check_ahead(s, &ahead[0], committed, remote, &nblocks, &nbytes, &resent, err,
                         errlen);
    free(ahead[0].v);
    free(ahead[1].v);
    if (rc < 0)
        return rc;
    struct cid after;
    rc = remote_root(s, &after, err, errlen);
    if (rc < 0)
        return rc;
    /* A change made on the node while we pushed must not pass for ours: if its names are not
     * exactly ours, keep the old record of the node's root, and the next round sees the
     * difference as a change made there (adopted, or merged). */
    int differs = push_names(s, s->mfs_root, &after, committed, 0, true, err, errlen);
    if (differs < 0)
        return differs;
    if (differs) {
        log_info("%s changed on the node during the push: merged next", s->mfs_root);
        after = *remote;
    }
    rc = save_state(s, committed, &after);
    if (rc < 0) {
        snprintf(err, errlen, "recording the sync state: %s", strerror(-rc));
        return rc;
    }
    fmt(committed, a, sizeof a);
    fmt(&after, b, sizeof b);
    if (differs)
        log_info("pushed %s to %s (%" PRIu64 " blocks, %" PRIu64 " bytes); the node's "
                 "directory changed meanwhile: merged next",
                 a, s->up->description, nblocks, nbytes);
    else if (!cid_equal(committed, &after))
        log_info("pushed %s to %s (%" PRIu64 " blocks, %" PRIu64 " bytes); the node's "
                 "directory is %s (its own encoding of the same names)",
                 a, s->up->description, nblocks, nbytes, b);
    else
        log_info("pushed %s to %s (%" PRIu64 " blocks, %" PRIu64 " bytes)", a,
                 s->up->description, nblocks, nbytes);
    pthread_mutex_lock(&s->lock);
    s->have_state = true;
    s->synced_local = *committed;
    s->synced_remote = after;
    note_pushed_locked(s, seq);
    s->pushes++;
    s->blocks_sent += nblocks;
    s->bytes_sent += nbytes;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* For a walk of tree against old (NULL: none) in the store: list both (old as empty when it
 * cannot be listed). 1: nothing to walk (the same tree, or too deep), 0: listed (free both),
 * -errno: tree cannot be listed. */
static int list_both(struct sync *s, const struct cid *old, const struct cid *tree,
                     unsigned depth, struct ents *ne, struct ents *oe)
{
    if ((old && cid_equal(old, tree)) || depth > MAX_TREE_DEPTH)
        return 1;
    int rc = list_dir(s, s->store, tree, ne);
    if (rc < 0)
        return rc;
    if (!old || list_dir(s, s->store, old, oe) < 0)
        memset(oe, 0, sizeof *oe);
    return 0;
}

/* Load the directory blocks of tree that old (the local tree it replaced) does not have:
 * names are read locally, and the store's collector follows only the blocks that are here
 * (under a missing one, the old tree's blocks would look unused). Listing a directory loads its
 * entries' first blocks too (their kinds and sizes). Best effort: what is not fetched now is
 * fetched when read. */
static int localize(struct sync *s, const struct cid *old, const struct cid *tree, unsigned depth)
{
    struct ents ne, oe;
    if (old && cid_equal(old, tree))
        return 0;
    int rc = list_both(s, old && node_store_has(s->store, old) ? old : NULL, tree, depth, &ne,
                       &oe);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    for (size_t i = 0; rc == 0 && i < ne.n; i++) {
        if (ne.v[i].kind != NODE_DIR)
            continue;
        const struct ent *o = ents_find(&oe, ne.v[i].name);
        rc = localize(s, o && o->kind == NODE_DIR ? &o->cid : NULL, &ne.v[i].cid, depth + 1);
    }
    ents_free(&ne);
    ents_free(&oe);
    return rc;
}

/* What an unmount leaves unsent, for its message: the names that differ between the last
 * synced tree and the committed one, "N names changed or added, M removed (a/b, c ...)". */
struct left {
    uint64_t changed, removed;
    char paths[512]; /* the first few, ", "-separated */
    bool more;       /* paths were left out */
    char text[640];
};

static void left_path(struct left *w, const char *dir, const char *name)
{
    size_t n = strlen(w->paths);
    if (n + strlen(dir) + strlen(name) + 4 >= sizeof w->paths || n > 300) {
        w->more = true;
        return;
    }
    snprintf(w->paths + n, sizeof w->paths - n, "%s%s%s", n ? ", " : "", dir, name);
}

static int tell_left(struct sync *s, const struct cid *old, const struct cid *tree,
                     const char *dir, unsigned depth, struct left *w)
{
    struct ents ne, oe;
    int rc = list_both(s, old, tree, depth, &ne, &oe);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    for (size_t i = 0; rc == 0 && i < ne.n; i++) {
        const struct ent *o = ents_find(&oe, ne.v[i].name);
        if (o && cid_equal(&o->cid, &ne.v[i].cid))
            continue;
        if (o && o->kind == NODE_DIR && ne.v[i].kind == NODE_DIR) {
            char sub[MAX_PATH];
            if (snprintf(sub, sizeof sub, "%s%s/", dir, ne.v[i].name) >= (int)sizeof sub)
                continue;
            rc = tell_left(s, &o->cid, &ne.v[i].cid, sub, depth + 1, w);
            continue;
        }
        w->changed++;
        left_path(w, dir, ne.v[i].name);
    }
    for (size_t i = 0; rc == 0 && i < oe.n; i++)
        if (!ents_find(&ne, oe.v[i].name)) {
            w->removed++;
            left_path(w, dir, oe.v[i].name);
        }
    ents_free(&ne);
    ents_free(&oe);
    return rc;
}

/* Adopt remote (the node's names) in place of current (nothing pending here). */
static int adopt(struct sync *s, const struct cid *current, const struct cid *remote,
                 uint64_t *seq, char *err, size_t errlen)
{
    char a[CID_STR_MAX];
    fmt(remote, a, sizeof a);
    int rc = node_store_swap_root(s->store, current, remote);
    if (rc == -EAGAIN)
        return 0; /* changed here meanwhile: next round merges */
    if (rc == 0)
        rc = node_store_commit(s->store);
    if (rc == 0)
        rc = save_state(s, remote, remote);
    if (rc < 0) {
        snprintf(err, errlen, "adopting the node's %s (%s): %s", s->mfs_root, a,
                 strerror(-rc));
        return rc;
    }
    struct cid now;
    node_store_roots(s->store, NULL, &now, seq);
    log_info("%s on the node changed to %s: adopted", s->mfs_root, a);
    pthread_mutex_lock(&s->lock);
    s->have_state = true;
    s->synced_local = s->synced_remote = *remote;
    /* The commit may hold a change made here since the swap: that one is pending. */
    if (cid_equal(&now, remote))
        note_pushed_locked(s, *seq);
    else
        s->kicked = true;
    s->adopted++;
    pthread_mutex_unlock(&s->lock);
    /* An empty old tree had no blocks to keep: a first mount does not load the node's whole
     * tree. */
    rc = cid_equal(current, &s->empty_dir) ? 0 : localize(s, current, remote, 0);
    if (rc < 0)
        log_info("the directories of the node's %s are not all here (%s): they are fetched "
                 "when read", s->mfs_root, strerror(-rc));
    return 0;
}

/* The node's identity into buf ("" when it has none or cannot say now). 0 or -errno. */
static int node_identity(struct sync *s, char *buf, size_t len)
{
    int rc = s->up->ops->identity ? s->up->ops->identity(s->up, buf, len) : -ENOSYS;
    if (rc == -ENOSYS || rc == -EACCES)
        s->no_identity = true; /* not asked again (a secret whose AllowedPaths lack id: 403) */
    if (rc < 0)
        buf[0] = '\0';
    return rc;
}

/* Whether the node is the one DIR/synced was recorded with: 1 (also when it has no identity,
 * or none was recorded), 0 when it is another (node_id takes the new identity, was the old
 * one), -errno when it cannot say now. */
static int same_node(struct sync *s, char *was, size_t len)
{
    char id[sizeof s->node_id];
    if (s->no_identity || !s->node_id[0])
        return 1;
    int rc = node_identity(s, id, sizeof id);
    if (rc < 0)
        return s->no_identity ? 1 : rc;
    if (strcmp(id, s->node_id) == 0)
        return 1;
    snprintf(was, len, "%s", s->node_id);
    snprintf(s->node_id, sizeof s->node_id, "%s", id);
    return 0;
}

static int round_once(struct sync *s, char *err, size_t errlen)
{
    struct cid current, committed, remote;
    uint64_t seq;
    char a[CID_STR_MAX];
    node_store_roots(s->store, &current, &committed, &seq);
    int rc = remote_root(s, &remote, err, errlen);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&s->lock);
    bool have = s->have_state;
    struct cid sl = s->synced_local, sr = s->synced_remote;
    pthread_mutex_unlock(&s->lock);

    char was[sizeof s->node_id];
    int same = have && !cid_equal(&remote, &sr) ? same_node(s, was, sizeof was) : 1;
    if (same < 0) {
        snprintf(err, errlen, "asking the node its identity (id): %s", strerror(-same));
        return same;
    }
    if (!same)
        s->rebase = true;
    if (!same) {
        /* A new repo at the address, or another node: its names are no change made to those
         * synced with the old one (an empty MFS would empty the mount). Merged as on a first
         * contact: nothing here is removed, a name both have with other content is kept here
         * and theirs beside it. */
        fmt(&remote, a, sizeof a);
        log_warn("%s is not the node this store last synced with (it was %s): its %s (%s) is "
                 "merged with the names here as on a first mount, nothing is removed",
                 s->up->description, was, s->mfs_root, a);
        have = false;
        pthread_mutex_lock(&s->lock);
        s->other_node++;
        /* What the old node confirmed says nothing of this one: every name is pending (the
         * attribute, an unmount's wait) and an fsync waits for the push to it. */
        s->pushed_valid = false;
        s->synced_local = s->synced_remote = s->empty_dir;
        pthread_mutex_unlock(&s->lock);
    }
    if (s->rebase)
        have = false; /* until the new node's state is recorded (a failed push retries) */
    bool learned = false; /* the node's identity, to record */
    if ((!s->node_id[0] || (!have && same)) && !s->no_identity) {
        char id[sizeof s->node_id];
        learned = node_identity(s, id, sizeof id) == 0;
        if (learned)
            memcpy(s->node_id, id, sizeof id);
    }
    if (!have) {
        /* First contact between this store and this MFS directory: base is empty (in the
         * version of either side's empty directory: --cid-version=1 makes CIDv1 ones, and
         * those were a change of names to merge). */
        sl = is_empty_dir(s, &current) ? current : s->empty_dir;
        sr = is_empty_dir(s, &remote) ? remote : s->empty_dir;
    }
    if (!cid_equal(&remote, &sr)) {
        fmt(&remote, a, sizeof a);
        if (cid_equal(&current, &sl) && cid_equal(&committed, &current)) {
            /* Nothing pending here: the node's names become ours. The old tree stays (held
             * from the store's collector) until the new one's directories are here. */
            rc = node_store_hold(s->store, &current);
            if (rc < 0) {
                snprintf(err, errlen, "adopting the node's %s: %s", s->mfs_root, strerror(-rc));
                return rc;
            }
            rc = adopt(s, &current, &remote, &seq, err, errlen);
            node_store_release(s->store, &current);
            return rc;
        }
        /* Both changed: merge theirs into ours, then push the result against theirs. */
        rc = merge_dir(s, "/", &sl, &remote, 0, err, errlen);
        if (rc == 0)
            rc = node_store_commit(s->store);
        if (rc < 0)
            return rc;
        log_info("%s on the node changed to %s while names changed here: merged", s->mfs_root,
                 a);
        pthread_mutex_lock(&s->lock);
        s->merged++;
        pthread_mutex_unlock(&s->lock);
        node_store_roots(s->store, &current, &committed, &seq);
    } else if (cid_equal(&committed, &sl)) {
        /* In step (also on a first contact: both empty). */
        if ((!have || learned) && (rc = save_state(s, &sl, &sr)) < 0) {
            snprintf(err, errlen, "recording the sync state: %s", strerror(-rc));
            return rc;
        }
        pthread_mutex_lock(&s->lock);
        s->have_state = true;
        s->synced_local = sl;
        s->synced_remote = sr;
        note_pushed_locked(s, seq);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }

    /* The pushed root stays in the store while it is pushed (the collector), whatever is
     * committed meanwhile, until DIR/synced records it; the root recorded before stays until
     * that record is durable. */
    rc = node_store_hold(s->store, &committed);
    if (rc == 0 && (rc = node_store_hold(s->store, &sl)) < 0)
        node_store_release(s->store, &committed);
    if (rc < 0) {
        snprintf(err, errlen, "pushing: %s", strerror(-rc));
        return rc;
    }
    rc = push(s, &committed, &remote, seq, err, errlen);
    node_store_release(s->store, &sl);
    node_store_release(s->store, &committed);
    return rc;
}

static bool pending(struct sync *s)
{
    struct cid committed;
    node_store_roots(s->store, NULL, &committed, NULL);
    pthread_mutex_lock(&s->lock);
    /* Before a first contact the base is the empty directory, as in round_once: a store
     * that holds nothing has nothing to send (a mount whose node went away at once). */
    bool p = !cid_equal(&committed, s->have_state ? &s->synced_local : &s->empty_dir);
    pthread_mutex_unlock(&s->lock);
    return p;
}

/* --store-size: past it, delete local copies of file blocks the node has (those of the last
 * synced tree), until 90% of it is used. Directory blocks stay (names are read locally);
 * what is evicted is fetched from the node when read again. Blocks no name references any
 * more (old versions) are the store's collector's (node_store.c). Runs in the engine's
 * thread, at most every 5 s. */
static void trim(struct sync *s)
{
    uint64_t used;
    if (!s->max_bytes || clock_mono_ms() < s->next_trim)
        return;
    s->next_trim = clock_mono_ms() + 5000;
    if (node_store_usage(s->store, &used) < 0 || used <= s->max_bytes)
        return;
    uint64_t target = s->max_bytes / 10 * 9, nblocks = 0, nbytes = 0;
    pthread_mutex_lock(&s->lock);
    struct cid root = s->synced_local;
    bool have = s->have_state;
    pthread_mutex_unlock(&s->lock);
    struct seen seen = {0};
    size_t n = 0, cap = 256;
    struct cid *stack = have ? malloc(cap * sizeof *stack) : NULL;
    if (!stack)
        return;
    stack[n++] = root;
    /* Depth first from the synced root, on local blocks only (a missing one: the node's). */
    while (n && used > target) {
        struct cid c = stack[--n];
        if (!node_store_has(s->store, &c) || seen_add(&seen, &c) != 0)
            continue;
        uint64_t freed = 0;
        bool evict = c.codec == CID_CODEC_RAW;
        if (!evict) {
            uint8_t *b;
            size_t len;
            struct dagpb_node pb;
            struct unixfs_data u;
            if (node_store_block(s->store, &c, &b, &len) < 0)
                continue;
            if (dagpb_decode(b, len, &pb) < 0) {
                free(b);
                continue;
            }
            evict = pb.has_data && unixfs_decode(pb.data, pb.data_len, &u) == 0 &&
                    (u.type == UNIXFS_FILE || u.type == UNIXFS_RAW);
            for (size_t i = 0; i < pb.nlinks; i++) {
                if (n == cap) {
                    struct cid *v = realloc(stack, cap * 2 * sizeof *v);
                    if (!v)
                        break;
                    stack = v;
                    cap *= 2;
                }
                if (cid_from_bytes(pb.links[i].hash, pb.links[i].hash_len, &stack[n]) == 0)
                    n++;
            }
            dagpb_node_free(&pb);
            free(b);
        }
        if (evict && node_store_evict(s->store, &c, &freed) == 0) {
            used -= freed < used ? freed : used;
            nblocks++;
            nbytes += freed;
        }
    }
    free(stack);
    free(seen.v);
    if (nblocks)
        log_info("the store is over --store-size: %" PRIu64 " blocks (%" PRIu64
                 " KiB) that %s has were evicted locally",
                 nblocks, nbytes >> 10, s->up->description);
    pthread_mutex_lock(&s->lock);
    s->evicted_blocks += nblocks;
    s->evicted_bytes += nbytes;
    pthread_mutex_unlock(&s->lock);
}

/* After a good round: the names' root the node has (the store's encoding: the CIDs users see in
 * user.ipfs.cid; the node holds those blocks too) and its top names pinned through the cluster,
 * and old pins retired when their time has come. A refusal is not the round's failure (the node
 * has the names): it shows in user.ipfs.pins and is tried again PIN_RETRY_MS later. */
struct repl;
static void repl_free(struct repl *r, size_t n);

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cluster_name *)a)->name, ((const struct cluster_name *)b)->name);
}

static void pin_root(struct sync *s)
{
    if (!s->cluster || clock_mono_ms() < s->next_pin_ms)
        return;
    pthread_mutex_lock(&s->lock);
    bool have = s->have_state, force = s->repin;
    s->repin = false;
    struct cid root = s->synced_local;
    /* the folders with factors of their own, copied out */
    size_t nr = s->nrepl;
    struct repl *rv = nr ? calloc(nr, sizeof *rv) : NULL;
    for (size_t i = 0; rv && i < nr; i++) {
        rv[i] = s->repl[i];
        rv[i].path = strdup(s->repl[i].path);
        if (!rv[i].path) {
            repl_free(rv, i);
            rv = NULL;
        }
    }
    if (nr && !rv) {
        s->repin = force; /* try again */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_unlock(&s->lock);
    if (!have || (!force && s->pinned_valid && cid_equal(&s->pinned, &root))) {
        repl_free(rv, nr);
        if (have)
            cluster_tick(s->cluster);
        return;
    }
    char err[256] = "";
    struct ents e;
    int rc = list_dir(s, s->store, &root, &e);
    if (rc < 0) {
        snprintf(err, sizeof err, "listing the names' root: %s", strerror(-rc));
    } else {
        /* The top names (up to CLUSTER_MAX_TOP: past that the root covers them), each with
         * its own factors if it has some, and the deeper folders that have. */
        size_t ntop = e.n <= CLUSTER_MAX_TOP ? e.n : 0;
        if (e.n > CLUSTER_MAX_TOP && !s->pinned_valid)
            log_info("%zu names at the top: past %d, only the root of the names is pinned "
                     "(it covers them), and the folders with factors of their own",
                     e.n, CLUSTER_MAX_TOP);
        struct cluster_name *top = calloc(ntop + nr + 1, sizeof *top);
        size_t n = 0;
        if (!top) {
            rc = -ENOMEM;
            snprintf(err, sizeof err, "out of memory");
        } else {
            for (size_t i = 0; i < ntop; i++)
                top[n++] = (struct cluster_name){.name = e.v[i].name, .cid = e.v[i].cid};
            for (size_t i = 0; i < nr; i++) {
                struct cluster_name *t = NULL;
                for (size_t k = 0; k < ntop && !t; k++)
                    if (strcmp(top[k].name, rv[i].path) == 0)
                        t = &top[k];
                /* (a top name too, when there are too many for each to have its own pin:
                 * one with factors of its own keeps its pin) */
                if (!t) {
                    char full[PATH_MAX];
                    struct cid c;
                    snprintf(full, sizeof full, "/%s", rv[i].path);
                    if (node_store_resolve(s->store, &root, full, &c) == 0) {
                        t = &top[n++];
                        *t = (struct cluster_name){.name = rv[i].path, .cid = c};
                    }
                }
                if (t) {
                    t->rmin = rv[i].rmin;
                    t->rmax = rv[i].rmax;
                }
            }
            if (n > 1)
                qsort(top, n, sizeof *top, name_cmp);
            rc = cluster_pin_names(s->cluster, &root, top, n, err, sizeof err);
            free(top);
        }
        ents_free(&e);
    }
    repl_free(rv, nr);
    if (rc < 0) {
        if (s->next_pin_ms == 0)
            log_warn("cannot pin the names through the cluster at %s (retrying): %s",
                     cluster_display(s->cluster), err);
        s->next_pin_ms = clock_mono_ms() + PIN_RETRY_MS;
        /* The root itself is pinned (only a name's own pin was refused): the root before it
         * may retire, and owed unpins go on, as after a round that worked. */
        struct cid cr;
        if (cluster_root(s->cluster, &cr) && cid_equal(&cr, &root))
            cluster_tick(s->cluster);
        pthread_mutex_lock(&s->lock);
        s->repin = s->repin || force;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (s->next_pin_ms)
        log_info("the cluster takes pins again");
    s->next_pin_ms = 0;
    s->pinned = root;
    s->pinned_valid = true;
    cluster_tick(s->cluster);
}

/* ---- user.ipfs.replication: factors of a folder's own, kept by path in DIR/replication ----
 * One line per folder: "MIN MAX PATH", PATH with '%' and newlines escaped as %25 and %0A. */

static void repl_free(struct repl *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].path);
    free(r);
}

static int repl_cmp(const void *a, const void *b)
{
    return strcmp(((const struct repl *)a)->path, ((const struct repl *)b)->path);
}

static void repl_file(struct sync *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/replication", node_store_dir(s->store));
}

/* Call with s->lock. */
static int repl_save_locked(struct sync *s)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    repl_file(s, path, sizeof path);
    if (s->nrepl == 0)
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    for (size_t i = 0; i < s->nrepl; i++) {
        fprintf(f, "%d %d ", s->repl[i].rmin, s->repl[i].rmax);
        for (const char *p = s->repl[i].path; *p; p++)
            if (*p == '%')
                fputs("%25", f);
            else if (*p == '\n')
                fputs("%0A", f);
            else
                fputc(*p, f);
        fputc('\n', f);
    }
    int rc = fflush(f) == 0 && fdatasync(fileno(f)) == 0 ? 0 : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static void repl_load(struct sync *s)
{
    char path[PATH_MAX], line[PATH_MAX + 64];
    repl_file(s, path, sizeof path);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        int lo, hi, off = 0;
        if (sscanf(line, "%d %d %n", &lo, &hi, &off) != 2 || off <= 0 || !line[off])
            continue;
        char *p = malloc(strlen(line + off) + 1), *q = p;
        if (!p)
            break;
        for (const char *r = line + off; *r; r++) {
            if (r[0] == '%' && r[1] == '2' && r[2] == '5') {
                *q++ = '%';
                r += 2;
            } else if (r[0] == '%' && r[1] == '0' && r[2] == 'A') {
                *q++ = '\n';
                r += 2;
            } else {
                *q++ = *r;
            }
        }
        *q = 0;
        if (s->nrepl == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct repl *v = realloc(s->repl, nc * sizeof *v);
            if (!v) {
                free(p);
                break;
            }
            s->repl = v;
            cap = nc;
        }
        s->repl[s->nrepl++] = (struct repl){.path = p, .rmin = lo, .rmax = hi};
    }
    fclose(f);
    if (s->nrepl > 1)
        qsort(s->repl, s->nrepl, sizeof *s->repl, repl_cmp);
}

int sync_replication(struct sync *s, const char *path, char *buf, size_t len)
{
    if (!s->cluster)
        return -ENOSYS;
    while (*path == '/')
        path++;
    int n = -ENODATA;
    pthread_mutex_lock(&s->lock);
    struct repl key = {.path = (char *)path};
    const struct repl *r =
        s->nrepl ? bsearch(&key, s->repl, s->nrepl, sizeof *s->repl, repl_cmp) : NULL;
    if (r)
        n = snprintf(buf, len, "%d:%d", r->rmin, r->rmax);
    pthread_mutex_unlock(&s->lock);
    return n;
}

int sync_set_replication(struct sync *s, const char *path, const char *value, size_t size,
                         int flags)
{
    if (!s->cluster)
        return -ENOSYS;
    while (*path == '/')
        path++;
    if (!*path)
        return -EINVAL; /* the root's factors are --replication */
    int lo = 0, hi = 0;
    if (value) {
        char v[32];
        if (size == 0 || size >= sizeof v)
            return -EINVAL;
        memcpy(v, value, size);
        v[size] = 0;
        if (v[size - 1] == '\n') /* echo 2:3 | setfattr ... */
            v[size - 1] = 0;
        if (cluster_parse_replication(v, &lo, &hi) < 0)
            return -EINVAL;
        /* only on names that exist */
        struct cid current, c;
        char full[PATH_MAX];
        snprintf(full, sizeof full, "/%s", path);
        node_store_roots(s->store, &current, NULL, NULL);
        int rc = node_store_resolve(s->store, &current, full, &c);
        if (rc < 0)
            return rc;
    }
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    struct repl key = {.path = (char *)path};
    struct repl *r =
        s->nrepl ? bsearch(&key, s->repl, s->nrepl, sizeof *s->repl, repl_cmp) : NULL;
    if (!value) {
        if (!r) {
            rc = -ENODATA;
        } else {
            free(r->path);
            size_t i = (size_t)(r - s->repl);
            memmove(r, r + 1, (s->nrepl - i - 1) * sizeof *r);
            s->nrepl--;
        }
    } else if (r ? (flags & XATTR_CREATE) : (flags & XATTR_REPLACE)) {
        rc = r ? -EEXIST : -ENODATA;
    } else if (r) {
        r->rmin = lo;
        r->rmax = hi;
    } else {
        struct repl *v = realloc(s->repl, (s->nrepl + 1) * sizeof *v);
        char *p = strdup(path);
        if (!v || !p) {
            free(p);
            if (v)
                s->repl = v;
            rc = -ENOMEM;
        } else {
            s->repl = v;
            s->repl[s->nrepl++] = (struct repl){.path = p, .rmin = lo, .rmax = hi};
            qsort(s->repl, s->nrepl, sizeof *s->repl, repl_cmp);
        }
    }
    if (rc == 0)
        rc = repl_save_locked(s);
    if (rc == 0) {
        s->repin = true;
        s->kicked = true;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* --publish: the names' root the node has, published under the key (at most every
 * PUBLISH_EVERY_MS; a failure is tried again PIN_RETRY_MS later). `force` skips the wait (the
 * last publish at unmount). */
static void publish_root(struct sync *s, bool force)
{
    if (!s->publish_key || (!force && clock_mono_ms() < s->next_publish_ms))
        return;
    pthread_mutex_lock(&s->lock);
    bool have = s->have_state;
    struct cid root = s->synced_local;
    bool done = s->published_valid && cid_equal(&s->published, &root);
    pthread_mutex_unlock(&s->lock);
    if (!have || done)
        return;
    char name[128] = "", err[256] = "", c[CID_STR_MAX];
    int rc = node_rpc_publish(s->publish_rpc, s->publish_key, &root, name, sizeof name, err,
                              sizeof err);
    s->next_publish_ms = clock_mono_ms() + (rc < 0 ? PIN_RETRY_MS : PUBLISH_EVERY_MS);
    fmt(&root, c, sizeof c);
    pthread_mutex_lock(&s->lock);
    bool first_error = rc < 0 && !s->publish_error[0];
    if (rc < 0) {
        snprintf(s->publish_error, sizeof s->publish_error, "%s", err[0] ? err : strerror(-rc));
    } else {
        s->publish_error[0] = 0;
        s->published = root;
        s->published_valid = true;
        snprintf(s->publish_name, sizeof s->publish_name, "%s", name);
        s->publishes++;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc < 0 && first_error)
        log_warn("cannot publish the names under the key %s (retrying): %s", s->publish_key,
                 err[0] ? err : strerror(-rc));
    else if (rc == 0)
        log_info("published the names (%s) as /ipns/%s", c, name);
}

static void *sync_thread(void *arg)
{
    struct sync *s = arg;
    unsigned backoff = 0;
    bool failing = false;
    uint64_t next_poll = 0; /* when the node is next asked for outside changes */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        /* A local commit is pushed within LOCAL_TICK_MS (an in-memory check); the node is
         * asked for its changes every poll_ms. */
        uint64_t wait = backoff ? backoff : LOCAL_TICK_MS;
        if (s->stop) {
            uint64_t now = clock_mono_ms();
            wait = now >= s->stop_deadline_ms ? 0 : s->stop_deadline_ms - now;
            if (backoff && backoff < wait)
                wait = backoff;
        }
        if (!s->kicked && wait && !(s->stop && !backoff)) {
            struct timespec ts;
            deadline_ts(wait, &ts);
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        bool kicked = s->kicked;
        s->kicked = false;
        bool stopping = s->stop;
        uint64_t stop_deadline = s->stop_deadline_ms; /* join_or_cut may move it */
        pthread_mutex_unlock(&s->lock);
        if (stopping && (!pending(s) || clock_mono_ms() >= stop_deadline))
            break;
        if (!kicked && !stopping && !backoff && clock_mono_ms() < next_poll && !pending(s)) {
            pthread_mutex_lock(&s->lock);
            continue;
        }
        next_poll = clock_mono_ms() + s->poll_ms;
        char err[1024] = "";
        pthread_mutex_lock(&s->lock);
        uint64_t round_no = ++s->begun;
        pthread_mutex_unlock(&s->lock);
        int rc = round_once(s, err, sizeof err);
        pthread_mutex_lock(&s->lock);
        s->attempts++;
        if (rc < 0) {
            if (!err[0])
                snprintf(err, sizeof err, "%s", strerror(-rc));
            if (!failing || strcmp(err, s->error) != 0)
                log_warn("sync to %s: %s (kept locally, retrying)", s->up->description, err);
            snprintf(s->error, sizeof s->error, "%s", err);
            s->failed_round = round_no;
            s->failed++;
            prepush_forget(s->pre); /* the node may have lost what it confirmed */
            failing = true;
            backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                              : BACKOFF_MIN_MS;
        } else {
            /* fsync's waiters first: the node has the names; what follows is housekeeping */
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            if (!stopping)
                trim(s);
            pthread_mutex_lock(&s->lock);
            s->aux_kick = true;
            pthread_cond_signal(&s->aux_cond);
            if (failing)
                log_info("sync to %s works again", s->up->description);
            s->error[0] = 0;
            failing = false;
            backoff = 0;
        }
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* The aux thread: pins and publishing after good rounds (kicked), the pins' housekeeping every
 * second, and at the end one last of each for the names the node has. */
static void *aux_thread(void *arg)
{
    struct sync *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (!s->aux_kick && !s->aux_stop) {
            struct timespec ts;
            deadline_ts(1000, &ts);
            pthread_cond_timedwait(&s->aux_cond, &s->lock, &ts);
        }
        bool stop = s->aux_stop;
        s->aux_kick = false;
        pthread_mutex_unlock(&s->lock);
        pin_root(s);
        publish_root(s, stop && !pending(s)); /* the last names, before the mount goes */
        pthread_mutex_lock(&s->lock);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* The CPUs this process may run on (its affinity: a container's cpuset), else those online. */
static long usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return sysconf(_SC_NPROCESSORS_ONLN);
}

int sync_new(struct node *store, struct node *up, const struct sync_config *cfg,
             struct sync **out)
{
    if (!up->ops->put_car)
        return -ENOTSUP;
    struct sync *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->store = store;
    s->up = up;
    s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    s->poll_ms = cfg->poll_ms ? cfg->poll_ms : 2000;
    s->max_bytes = cfg->max_bytes;
    s->ahead = cfg->ahead < 0 ? usable_cpus() >= 4 : cfg->ahead > 0;
    s->cluster = cfg->cluster;
    s->publish_rpc = cfg->publish_key ? cfg->publish_rpc : NULL;
    if (s->publish_rpc && !(s->publish_key = strdup(cfg->publish_key))) {
        free(s);
        return -ENOMEM;
    }
    s->wait_replication = cfg->wait_replication && cfg->cluster;
    s->mfs_root = strdup(cfg->mfs_root ? cfg->mfs_root : "/");
    cid_parse(EMPTY_DIR, strlen(EMPTY_DIR), &s->empty_dir);
    snprintf(s->state_path, sizeof s->state_path, "%s/synced", node_store_dir(store));
    pthread_mutex_init(&s->lock, NULL);
    (void)cond_init_monotonic(&s->cond);
    (void)cond_init_monotonic(&s->aux_cond);
    int rc = s->mfs_root ? load_state(s) : -ENOMEM;
    if (rc == 0 && s->cluster)
        repl_load(s);
    if (rc < 0) {
        pthread_cond_destroy(&s->cond);
        pthread_cond_destroy(&s->aux_cond);
        pthread_mutex_destroy(&s->lock);
        free(s->mfs_root);
        free(s->publish_key);
        repl_free(s->repl, s->nrepl);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void block_hook(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    prepush_block(ud, c, data, len);
}

int sync_start(struct sync *s)
{
    /* The first round runs in the thread: the mount serves at once. Names made on the node
     * since the last mount show as soon as it is done; wait a little for that here, so that
     * a quick node has them there before the first ls. */
    pthread_mutex_lock(&s->lock);
    s->kicked = true;
    pthread_mutex_unlock(&s->lock);
    int rc = s->ahead ? prepush_new(s->up, &s->pre) : 0;
    if (rc < 0)
        log_warn("large files' blocks will go with the names only: %s", strerror(-rc));
    else if (s->pre)
        node_store_set_block_hook(s->store, block_hook, s->pre);
    log_info("sync to %s: a large file's blocks go %s", s->up->description,
             s->pre ? "while it is written (--sync-ahead)" : "with its name");
    rc = -pthread_create(&s->thread, NULL, sync_thread, s);
    if (rc < 0) {
        node_store_set_block_hook(s->store, NULL, NULL);
        prepush_free(s->pre);
        s->pre = NULL;
        return rc;
    }
    s->started = true;
    if (s->cluster || s->publish_key) {
        rc = -pthread_create(&s->aux_thread, NULL, aux_thread, s);
        if (rc < 0)
            log_warn("cannot start the pinning and publishing thread: %s", strerror(-rc));
        else
            s->aux_started = true;
    }
    struct timespec ts;
    deadline_ts(FIRST_ROUND_WAIT_MS, &ts);
    pthread_mutex_lock(&s->lock);
    while (s->attempts == 0)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int sync_wait(struct sync *s)
{
    int rc = node_store_commit(s->store);
    if (rc < 0 || !s->started)
        return rc < 0 ? rc : -EIO;
    uint64_t seq, t0 = clock_mono_ms();
    node_store_roots(s->store, NULL, NULL, &seq);
    struct timespec ts;
    deadline_ts(s->timeout_ms, &ts);
    pthread_mutex_lock(&s->lock);
    uint64_t start = s->begun;
    s->kicked = true;
    pthread_cond_broadcast(&s->cond);
    /* Done when a round has confirmed our commit (or a later one). A round that began after
     * this call (one that pushes our commit: a round under way when it came may fail for
     * what it met before, a node gone for a while) and fails, or a timeout with no progress,
     * is EIO: the data stays queued and the log says why. While the push moves (the node takes the upload), the wait goes on: a file
     * of gigabytes takes longer than --timeout to send to a healthy node. */
    while (!s->pushed_valid || s->pushed_seq < seq || !s->have_state) {
        if (s->failed_round > start) {
            rc = -EIO;
            break;
        }
        if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT) {
            uint64_t moved = atomic_load(&s->moved_ms), now = clock_mono_ms();
            /* The CAR's last blocks leave us long before they reach a node on a slow link:
             * the upload moving is the push moving. */
            uint64_t up = s->up->ops->upload_moved_ms ? s->up->ops->upload_moved_ms(s->up) : 0;
            if (up > moved)
                moved = up;
            if (moved > t0 && now - moved < s->timeout_ms) {
                deadline_ts(moved + s->timeout_ms - now, &ts);
                continue;
            }
            rc = s->pushed_valid && s->pushed_seq >= seq && s->have_state ? 0 : -EIO;
            /* What user.ipfsfs.sync says until the round under way ends (its own failure
             * replaces it, a success clears it): not "pending" right after fsync's EIO. */
            if (rc < 0 && !s->error[0])
                snprintf(s->error, sizeof s->error, "%s has not confirmed the changes "
                         "within %u s (still trying)", s->up->description,
                         s->timeout_ms / 1000u);
            if (rc < 0)
                log_warn("fsync: %s does not have the changes after %llu s%s%s%s (kept "
                         "locally)", s->up->description,
                         (unsigned long long)((now - t0) / 1000),
                         moved > t0 ? ", the push stalled" : "", s->error[0] ? ": " : "",
                         s->error);
            break;
        }
    }
    struct cid root = s->synced_local;
    pthread_mutex_unlock(&s->lock);
    if (rc == 0 && s->wait_replication) {
        /* and the names' root (ours, or a later one) pinned on enough peers, within what is
         * left of the same timeout */
        char err[512];
        uint64_t moved = atomic_load(&s->moved_ms);
        uint64_t spent = clock_mono_ms() - (moved > t0 ? moved : t0); /* since the push moved */
        unsigned left = spent < s->timeout_ms ? s->timeout_ms - (unsigned)spent : 0;
        rc = cluster_wait(s->cluster, &root, left, err, sizeof err);
        if (rc < 0) {
            log_warn("fsync: the cluster has not replicated the names: %s", err);
            rc = -EIO;
        } else if (cluster_failing(s->cluster, err, sizeof err)) {
            /* the root is, but a name's own pin (a folder's factors) was refused */
            log_warn("fsync: the cluster refuses a pin of the names: %s", err);
            rc = -EIO;
        }
    }
    return rc;
}

int sync_pins(struct sync *s, const char *path, char *buf, size_t len)
{
    if (!s->cluster)
        return -ENOSYS;
    char state[64];
    int rc = sync_state(s, path, state, sizeof state);
    if (rc < 0)
        return rc;
    if (strcmp(state, "synced") != 0)
        return snprintf(buf, len, "pending: not on the node yet, so not pinned");
    struct cid pin, root;
    /* A refusal shows here too, not only in the log (retried every 5 s). */
    char why[200], note[sizeof why + 3] = "";
    if (cluster_failing(s->cluster, why, sizeof why))
        snprintf(note, sizeof note, " (%s)", why);
    if (!cluster_pin_for(s->cluster, path, &pin) || !cluster_root(s->cluster, &root))
        return snprintf(buf, len, "pending: not pinned through the cluster yet%s", note);
    pthread_mutex_lock(&s->lock);
    bool newer = !cid_equal(&root, &s->synced_local);
    pthread_mutex_unlock(&s->lock);
    struct cluster_status st;
    char err[256];
    rc = cluster_status(s->cluster, &pin, &st, err, sizeof err);
    if (rc < 0)
        return snprintf(buf, len, "error: %s", err);
    int n = cluster_status_text(&st, buf, len);
    if (newer && n >= 0 && (size_t)n < len) /* the latest root's pins are being asked for */
        n += snprintf(buf + n, len - (size_t)n, "; newer names not pinned yet%s", note);
    else if (note[0] && n >= 0 && (size_t)n < len) /* e.g. a folder's factors, refused */
        n += snprintf(buf + n, len - (size_t)n, "; a pin is refused, retried%s", note);
    return n;
}

int sync_state(struct sync *s, const char *path, char *buf, size_t len)
{
    struct cid current, here, there;
    pthread_mutex_lock(&s->lock);
    bool have = s->have_state;
    struct cid synced = s->synced_local;
    char error[sizeof s->error];
    snprintf(error, sizeof error, "%s", s->error);
    pthread_mutex_unlock(&s->lock);
    node_store_roots(s->store, &current, NULL, NULL);
    int rc = node_store_resolve(s->store, &current, path, &here);
    if (rc < 0)
        return rc;
    bool same = have && node_store_resolve(s->store, &synced, path, &there) == 0 &&
                cid_equal(&here, &there);
    if (same)
        return snprintf(buf, len, "synced");
    if (error[0])
        return snprintf(buf, len, "error: %s", error);
    return snprintf(buf, len, "pending");
}

int sync_stats(struct sync *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->lock);
    int n = snprintf(buf, len,
                     "sync_pushes %" PRIu64 "\nsync_blocks_sent %" PRIu64
                     "\nsync_bytes_sent %" PRIu64 "\nsync_adopted %" PRIu64
                     "\nsync_merged %" PRIu64 "\nsync_conflicts %" PRIu64
                     "\nsync_failed_rounds %" PRIu64 "\nsync_other_node %" PRIu64
                     "\nsync_absent %" PRIu64 "\nsync_evicted_blocks %" PRIu64
                     "\nsync_evicted_bytes %" PRIu64 "\nsync_store_size_limit %" PRIu64
                     "\nsync_error %s\n",
                     s->pushes, s->blocks_sent, s->bytes_sent, s->adopted, s->merged,
                     s->conflicts, s->failed, s->other_node, s->absent, s->evicted_blocks,
                     s->evicted_bytes, s->max_bytes,
                     s->error[0] ? s->error : "none");
    pthread_mutex_unlock(&s->lock);
    if (s->pre && n >= 0 && (size_t)n < len) {
        int k = prepush_stats(s->pre, buf + n, len - (size_t)n);
        if (k > 0)
            n += k;
        pthread_mutex_lock(&s->lock);
        k = 0;
        if ((size_t)n < len)
            k = snprintf(buf + n, len - (size_t)n, "sync_ahead_missing %" PRIu64 "\n",
                         s->ahead_missing);
        pthread_mutex_unlock(&s->lock);
        if (k > 0)
            n += k;
    }
    if (s->publish_key && n >= 0 && (size_t)n < len) {
        pthread_mutex_lock(&s->lock);
        char c[CID_STR_MAX] = "none";
        if (s->published_valid)
            fmt(&s->published, c, sizeof c);
        n += snprintf(buf + n, len - (size_t)n,
                      "publish_key %s\npublish_name %s\npublish_root %s\npublishes %" PRIu64
                      "\npublish_error %s\n",
                      s->publish_key, s->publish_name[0] ? s->publish_name : "none", c,
                      s->publishes, s->publish_error[0] ? s->publish_error : "none");
        pthread_mutex_unlock(&s->lock);
    }
    if (s->cluster && n >= 0 && (size_t)n < len) {
        int k = cluster_stats(s->cluster, buf + n, len - (size_t)n);
        if (k > 0)
            n += k;
    }
    return n;
}

static const atomic_int *cut_flag; /* set once, before any sync_stop */

void sync_set_cut_flag(const atomic_int *flag)
{
    cut_flag = flag;
}

/* Join the sync thread; if the cut flag goes up meanwhile, end its wait now (its deadline and
 * the request in flight's). */
static void join_or_cut(struct sync *s)
{
    bool cut = false;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = cut || !cut_flag ? pthread_join(s->thread, NULL)
                                  : pthread_timedjoin_np(s->thread, NULL, &ts);
        if (rc != ETIMEDOUT)
            return;
        if (!atomic_load(cut_flag))
            continue;
        cut = true;
        uint64_t now = clock_mono_ms();
        log_warn("unmount: signal %d: not waiting for %s any longer", atomic_load(cut_flag),
                 s->up->description);
        pthread_mutex_lock(&s->lock);
        s->stop_deadline_ms = now;
        s->kicked = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (s->up->ops->end_by)
            s->up->ops->end_by(s->up, now);
    }
}

int sync_stop(struct sync *s, unsigned wait_ms)
{
    int rc = node_store_commit(s->store);
    if (rc < 0)
        log_err("cannot commit the names locally: %s", strerror(-rc));
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    s->stop_deadline_ms = clock_mono_ms() + wait_ms;
    uint64_t deadline = s->stop_deadline_ms;
    s->kicked = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    /* A request in flight (a stopped node's) must not hold the unmount past its wait. */
    if (s->up->ops->end_by)
        s->up->ops->end_by(s->up, deadline);
    if (!s->started) {
        if (pending(s))
            log_warn("unmount: the node does not have every change: they are kept in %s and "
                     "the next mount sends them", node_store_dir(s->store));
        pthread_cond_destroy(&s->cond);
        pthread_cond_destroy(&s->aux_cond);
        pthread_mutex_destroy(&s->lock);
        free(s->mfs_root);
        free(s->publish_key);
        repl_free(s->repl, s->nrepl);
        free(s);
        return 0;
    }
    if (pending(s))
        log_info("unmount: sending the pending changes to %s (up to %u s)", s->up->description,
                 wait_ms / 1000);
    join_or_cut(s);
    node_store_set_block_hook(s->store, NULL, NULL); /* the mount serves no more: no import */
    prepush_free(s->pre);
    s->pre = NULL;
    if (s->aux_started) {
        pthread_mutex_lock(&s->lock);
        s->aux_stop = true;
        pthread_cond_signal(&s->aux_cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->aux_thread, NULL);
    }
    bool left = pending(s);
    if (left) {
        struct left what = {0};
        struct cid committed;
        node_store_roots(s->store, NULL, &committed, NULL);
        if (tell_left(s, s->have_state ? &s->synced_local : NULL, &committed, "", 0, &what) < 0)
            snprintf(what.text, sizeof what.text, "they");
        else
            snprintf(what.text, sizeof what.text,
                     "%" PRIu64 " name%s added or changed and %" PRIu64 " removed (%s%s)",
                     what.changed, what.changed == 1 ? "" : "s", what.removed, what.paths,
                     what.more ? ", ..." : "");
        log_warn("unmount: %s does not have every change yet%s%s: %s are kept in %s, and the "
                 "next mount sends them",
                 s->up->description, s->error[0] ? ": " : "", s->error, what.text,
                 node_store_dir(s->store));
    }
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->aux_cond);
    pthread_mutex_destroy(&s->lock);
    free(s->mfs_root);
    free(s->publish_key);
    repl_free(s->repl, s->nrepl);
    free(s);
    return left ? -EAGAIN : 0;
}

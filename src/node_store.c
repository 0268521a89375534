/* node_store.c - see node_store.h.
 *
 * Reads decode blocks straight from the block store: stat decodes the root block, list walks a
 * directory's links (and HAMT shards), read walks a file's DAG using the UnixFS blocksizes.
 *
 * Names: DIR/root holds the CID of the last committed root directory (text, one line),
 * replaced atomically (temporary file, fsync, rename, fsync DIR) after the blocks it points to
 * are durable. A change rewrites the directories from the changed entry up to the root
 * (copy-on-write) and replaces the root in memory only; its blocks are put with the block
 * store's deferred durability. A group commit (the commit thread, within commit_ms of the first
 * change not yet committed, or node_store_commit at once) makes the blocks durable
 * (blockstore_sync) and then writes DIR/root, so a crash leaves the root of the last finished
 * commit, complete. Directory links are sorted by name bytes, as boxo encodes them, so the CIDs
 * equal Kubo's for the same tree.
 *
 * Threads: blocks are immutable, so stat/list/read and imports run concurrently without locks.
 * The locks are described next to struct node_store. A missing block may be fetched (the
 * config's fetch hook) by any walker, with no lock held: a name change lets go of change_lock
 * while it fetches, and installs its new root only if the root it started from is still the
 * current one (else it starts again).
 *
 * Collection: old versions and removed files leave blocks no name uses. The collector (its own
 * thread, gc_main: at most every gc_interval_ms, after a commit; or node_store_gc) marks what
 * the live roots reach and removes every other block file that is not young.
 * - Live roots, taken while no commit runs (commit_run): the current root, the committed one,
 *   the held ones (node_store_hold: the sync engine holds the root it pushes), and the local
 *   root recorded in DIR/synced (the sync engine's record, also read when no engine runs: the
 *   base of the next three-way merge stays).
 * - The mark follows every dag-pb link of local blocks: staged ones in memory (under
 *   commit_run, so none is dropped meanwhile), stored ones from disk, where a block with no
 *   links costs only its first bytes. A block not here is the node's (fetched, or adopted from
 *   there): what is under it is not followed, and is fetched again if it is needed.
 * - Young blocks are never removed: those put (written, or found there already) within
 *   gc_young_ms (10 s), and those put before an add or a name change still under way began (or
 *   just before: an add, then the change that links it; struct busy: a large file's add, a
 *   link that waits on a fetch). blockstore_put records the key before it looks for the file,
 *   and the sweep looks at it under the same lock just before each unlink: a block put again
 *   during a sweep is kept, or written again.
 * - So the mark need not be a snapshot kept true during the sweep: a root installed after it
 *   began is made of blocks a marked root reaches, young blocks, and trees linked from the node
 *   or from a held or recorded root.
 * - A crash during a collection loses only unreachable blocks; the next one finishes the work.
 * - Not kept: the content of a file still open after its name was removed or replaced, once it
 *   is no longer young (a read of it then fails, unless the node has it).
 */
#include "config.h"

#include "node_store.h"

#include "blockstore.h"
#include "car.h"
#include "clock.h"
#include "dagpb.h"
#include "gateway.h"
#include "hamt.h"
#include "importer.h"
#include "log.h"
#include "unixfs_enc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 64       /* DAG depth we follow (files: ~7 levels; HAMT: 8) */
#define MAX_COMPONENTS 256 /* path components in a name */
#define CID_BIN_MAX (CID_MAX_MH + 20)

/* Bounds on what one request may make the store walk, whatever the blocks say. Blocks are
 * keyed by multihash, so anyone who can put bytes in the store (a file copied in) can make
 * them be read as dag-pb through the dag-pb CID of the same bytes: every walk below must stay
 * cheap on any bytes. A listing loads at most LIST_MAX_SHARDS HAMT shards (a 1M-entry HAMT has
 * ~5k) of at most SHARD_MAX_BYTES, each at most once, and gives at most LIST_MAX_ENTRIES
 * entries; the child blocks it reads to tell kinds and sizes stop at LIST_DETAIL_BYTES (later
 * entries say NODE_UNKNOWN: the caller asks stat). A read of len bytes loads at most
 * READ_MAX_LOADS(len) blocks and READ_MAX_BYTES(len) bytes of them: a real DAG, even made with
 * a 1-byte chunker, needs about len loads, and its bytes are the leaves the range touches
 * (two at most beyond len, under 2 MiB each) plus inner nodes of a few KiB; a hostile one that
 * links one big block many times is refused (EIO). */
#define LIST_MAX_SHARDS 65536
#define SHARD_MAX_BYTES (256u << 10) /* 256 links of the longest names: ~120 KB */
#define LIST_MAX_ENTRIES (4u << 20)
#define LIST_DETAIL_BYTES (64u << 20)
#define READ_MAX_LOADS(len) ((uint64_t)(len) + (uint64_t)(len) / 4 + 4096)
#define READ_MAX_BYTES(len) ((uint64_t)(16u << 20) + 16 * (uint64_t)(len))

/* Locks, in the order they are taken (never the other way round):
 *   gc_run       serializes collections (gc_collect); taken before commit_run, never by a
 *                thread holding another of these locks.
 *   commit_run   serializes commits: writing the blocks out and DIR/root (do_commit, which
 *                takes change_lock briefly for its snapshot). No thread that holds change_lock
 *                takes it: a change commits (commit_gate) before it takes change_lock.
 *   change_lock  serializes name changes: held while a change computes a new root from the
 *                current one (and let go while a block is fetched for it, see run_change).
 *   names_lock   guards the fields below it up to stop, and goes with commit_cond. Held only to
 *                copy or set them: never across I/O or a fetch.
 *   stage_lock   guards the staged blocks' table, stage_bytes and epoch (not the entries' bytes:
 *                immutable, and freed only by do_commit under commit_run). Takes no other lock.
 * The block store has its own locks (blockstore.h), taken inside any of these.
 *
 * Staged blocks: the directory blocks that name changes make stay in memory (most are
 * replaced by the next change: cp -r of 1,000 files makes ~10,000) until a commit writes the
 * ones its root reaches to the block store and drops the rest. epoch tells them apart: a commit
 * takes its snapshot and starts a new epoch under change_lock (so no change is half done), a
 * block put (or put again) is tagged with the epoch, and the commit drops only the blocks of
 * earlier epochs. A change that let go of change_lock to fetch starts again if the epoch moved. */
/* The directory block cache: at most BC_BUDGET bytes of blocks of at most BC_MAX_ENTRY bytes
 * each, least recently used first out. Blocks are immutable and were verified when read, so
 * an entry's bytes are always right; but the cache is no proof that the block is still in the
 * store (the collector or an eviction may have removed the file since), and a change that
 * links a block relies on it being there: a hit counts only while the block file exists.
 * That is known without a system call while no block file was removed since it was last seen
 * (blockstore_removals), else asked (blockstore_has: one faccessat, not open, read, hash). */
#define BC_MAX_ENTRY (64u << 10)
#define BC_BUDGET (8u << 20)
#define BC_BUCKETS 16384u

struct bc_entry {
    struct bc_entry *hnext;      /* in its bucket */
    struct bc_entry *prev, *next; /* in the use list: head most recent */
    uint64_t key;
    uint64_t gen; /* blockstore_removals when the block file was last seen there */
    struct cid cid;
    size_t len;
    uint8_t data[];
};

struct bcache {
    struct bc_entry *tab[BC_BUCKETS];
    struct bc_entry *head, *tail;
    uint64_t bytes; /* entries' len plus their headers */
};

#define DC_SLOTS 8 /* directories changed lately, kept (see "directories changed lately") */

struct node_store {
    struct node base; /* first: struct node * casts to struct node_store * */
    struct blockstore *bs;
    struct import_opts defaults;
    struct node_add_opts add_defaults;
    char *dir;
    char description[PATH_MAX + 64];
    int lock_fd; /* DIR/lock, flock()ed: one process per store */
    uint64_t shard_bytes; /* a directory estimated larger than this is a HAMT */
    bool block_est;       /* the estimate counts block bytes (hamt_entry_est) */
    unsigned commit_ms;
    int (*fetch)(void *ud, const struct cid *c, uint8_t **data, size_t *len);
    void *fetch_ud;
    int (*fetch_stats)(void *ud, char *buf, size_t len); /* cfg->fetch_stats */
    /* The range fetch (with fetch: a gateway's CAR of a file's byte range), or NULL. */
    int (*fetch_range)(void *ud, const struct cid *root, uint64_t from, uint64_t to, size_t max,
                       car_block_cb cb, void *cbud);
    int (*fetch_many)(void *ud, const struct cid *cids, size_t n, unsigned parallel,
                      int (*cb)(void *ud, size_t i, uint8_t *data, size_t len), void *cbud);
    void (*fetch_release)(void *ud, uint8_t *data);
    void (*fetch_cap)(void *ud, bool on); /* cfg->fetch_cap (read_range) */
    /* The bound on the block files (cache_max_bytes; 0: none), see cache_evict. cache_est
     * estimates what they take (exact after each eviction, plus what was fetched since);
     * past cache_trigger an eviction runs (evict_run: one at a time, taken before gc_run).
     * lru_lock guards lru (block key -> the lru_clock of its last use; takes no other lock). */
    uint64_t cache_max;
    atomic_uint_fast64_t cache_est, cache_trigger;
    pthread_mutex_t evict_run;
    pthread_mutex_t lru_lock;
    struct lru_map {
        uint64_t *k, *v;
        size_t n, cap;
    } lru;
    uint64_t lru_clock;
    atomic_uint_fast64_t evict_runs, evicted_blocks, evicted_bytes;
    struct node_ops ops; /* store_ops, plus read_stream with a range or batch fetch */
    pthread_mutex_t change_lock;
    /* encode_basic's scratch, kept from one change to the next (change_lock): a directory of
     * thousands of names is encoded again on every change, and fresh buffers of its size each
     * time cost page faults and munmaps (malloc maps them: M_MMAP_THRESHOLD, main.c). */
    struct bytebuf enc_buf;
    struct pb_link_out *enc_links;
    size_t enc_links_cap;
    pthread_mutex_t commit_run;
    pthread_mutex_t names_lock;
    pthread_cond_t commit_cond; /* wakes the commit thread: a first change, or stop */
    struct cid root;            /* the current root, in memory */
    struct cid committed;       /* the root in DIR/root */
    uint64_t changes;           /* root changes so far */
    uint64_t durable;           /* changes covered by the last commit that worked */
    uint64_t taken;             /* changes covered by the last commit begun */
    uint64_t seq;               /* commits that made a new root durable */
    uint64_t pending_since;     /* CLOCK_MONOTONIC ns of the first change past taken */
    int commit_err;             /* a background commit's failure, for the next node_store_commit */
    bool commit_failing;        /* the last background commit failed (logged once per streak) */
    bool stop;                  /* destroy: the commit thread exits */
    bool thread_started;        /* the commit thread runs (started by the first change) */
    bool thread_failed;         /* pthread_create failed (logged once) */
    pthread_t commit_thread;
    struct busy *busy;          /* the adds and name changes under way (see struct busy) */
    struct cid *holds;          /* node_store_hold's roots (a root held twice is there twice) */
    size_t nholds, holds_cap;
    pthread_cond_t gc_cond;     /* wakes the collector: a commit, or stop */
    bool gc_started, gc_failed; /* the collector's thread runs / could not start */
    bool gc_again;              /* the last collection kept young garbage: collect again */
    /* A commit has run since the last collection began: there may be garbage. Any commit, also
     * one that finds the root it had (a file made and removed within one interval leaves its
     * blocks, but no new root); what an earlier mount left (a crash during an add) goes with
     * the first collection after a change. Not at open: blocks put in the store by other means
     * than this mount's names stay until then. */
    bool gc_wanted;
    uint64_t gc_last;           /* CLOCK_MONOTONIC ns when the last collection began */
    uint64_t gc_took;           /* how long it took (ns) */
    pthread_t gc_thread;
    pthread_mutex_t gc_run;
    unsigned gc_interval_ms, gc_young_ms;
    atomic_bool gc_abort; /* destroy: a collection under way stops (and removes nothing) */
    /* Small directory blocks read from the block store lately (directories, HAMT shards: what
     * every path walk of a name reads again), verified when they were read,
     * so that walking a hot path opens no file and hashes nothing (struct bcache). bc_lock
     * guards bc; it takes no other lock. */
    pthread_mutex_t bc_lock;
    struct bcache bc;
    atomic_uint_fast64_t bc_hits, bc_misses;
    /* What stat found for file and directory blocks, by CID (struct attr_slot): a listing or a
     * stat after the blocks left the page cache (drop_caches, memory pressure) reads none of
     * them from disk. attr_lock guards attrs; it takes no other lock. */
    pthread_mutex_t attr_lock;
    struct attr_slot *attrs; /* ATTR_SLOTS of them, or NULL (no memory: no cache) */
    atomic_uint_fast64_t attr_hits, attr_misses;
    /* The plain directories dir_set made lately, their entries sorted, by CID (struct dc_slot):
     * the next change of one starts from them. dc_lock guards dc and dc_tick; it takes no
     * other lock. */
    pthread_mutex_t dc_lock;
    struct dc_slot *dc; /* DC_SLOTS of them, or NULL (no memory: no cache) */
    uint64_t dc_tick;
    /* The size estimates (sum of names and binary CIDs) of the HAMT directories dir_set made
     * lately, by CID: a removal tells from it whether the directory goes back to a plain one
     * without walking every shard. Guarded by dc_lock too. */
    struct est_slot {
        struct cid cid;
        uint64_t estimate, tick;
    } est[DC_SLOTS];
    atomic_uint_fast64_t dc_hits, dc_misses;
    pthread_mutex_t stage_lock;
    struct staged **stage_tab; /* buckets, stage_cap of them (a power of two) */
    size_t stage_cap, stage_n;
    uint64_t stage_bytes;
    uint64_t stage_keep_bytes; /* of those, file content's (keep): the next commit writes all */
    uint64_t epoch;
    /* node_store_set_block_hook: set before the mount serves and cleared after, so read
     * without a lock (each import's pipe copies it when it opens). */
    node_store_block_hook block_hook;
    void *block_hook_ud;
    atomic_uint_fast64_t adds, add_bytes, add_streams, name_changes, commits, commit_errors, fetches,
        fetch_errors, gc_runs, gc_blocks, gc_bytes, gc_errors, gc_ms, gc_live, range_fetches,
        range_errors, range_blocks, range_bytes, list_prefetched;
    atomic_bool room_low_logged; /* commit_gate refused a change for want of room (logged) */
    atomic_bool reserve_missing; /* DIR/reserve is not there (see RESERVE_BYTES) */
    atomic_bool reserve_used;    /* given back for a commit, not made again yet */
};

/* An add or a name change under way, since when (on its caller's stack, in ns->busy). The
 * young sets are not aged out while one that began before them runs: an add's blocks stay young
 * however long the add takes and the change that links them then waits (on a fetch). */
struct busy {
    struct busy *prev, *next;
    uint64_t since;
};

static struct node_store *to_store(struct node *n)
{
    return (struct node_store *)n;
}

static void busy_begin(struct node_store *ns, struct busy *b)
{
    pthread_mutex_lock(&ns->names_lock);
    b->since = clock_mono_ns();
    b->prev = NULL;
    b->next = ns->busy;
    if (ns->busy)
        ns->busy->prev = b;
    ns->busy = b;
    pthread_mutex_unlock(&ns->names_lock);
}

static void busy_end(struct node_store *ns, struct busy *b)
{
    pthread_mutex_lock(&ns->names_lock);
    if (b->prev)
        b->prev->next = b->next;
    else
        ns->busy = b->next;
    if (b->next)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&ns->names_lock);
}

/* A block and, for dag-pb, its decoded node and UnixFS data. */
struct loaded {
    uint8_t *block;
    size_t len;
    bool raw;
    struct dagpb_node pb;
    struct unixfs_data u;
};

static void loaded_free(struct loaded *l)
{
    if (!l->raw && l->block)
        dagpb_node_free(&l->pb);
    free(l->block);
    memset(l, 0, sizeof *l);
}

/* The store this thread is making a name change in, while it holds change_lock (run_change):
 * a fetch lets go of the lock for as long as it waits on the hook. */
static __thread struct node_store *tls_changing;
/* Set by store_mfs_stat_here: this thread's walk answers from what is here, fetching nothing. */
static __thread bool tls_here_only;

/* Whether data is the block c names: its sha2-256 digest is c's (the store keeps no other
 * hash; identity blocks are never missing). */
static bool block_matches(const struct cid *c, const uint8_t *data, size_t len)
{
    struct cid got;
    if (c->mh_code != MH_SHA2_256 || len > BLOCKSTORE_MAX_BLOCK)
        return false;
    if (block_cid(1, CID_CODEC_RAW, data, len, &got) < 0)
        return false;
    return got.mh_len == c->mh_len && memcmp(got.mh, c->mh, c->mh_len) == 0;
}

static void cache_touch(struct node_store *ns, const struct cid *c);
static void cache_account(struct node_store *ns, size_t len, bool may_evict);

/* The store whose read_range armed the fetch hook's read bound in this thread (fetch_cap): a
 * block that comes arms it again (progress). */
static __thread struct node_store *tls_capped;

/* Ask the fetch hook for c, verify it, keep it (best effort: a block that cannot be stored is
 * still used). Called with no lock held, except change_lock by a change (let go meanwhile). */
static int fetch_block(struct node_store *ns, const struct cid *c, uint8_t **data, size_t *len)
{
    char cs[CID_STR_MAX];
    bool changing = tls_changing == ns;
    *data = NULL;
    *len = 0;
    if (changing)
        pthread_mutex_unlock(&ns->change_lock);
    uint8_t *d = NULL;
    size_t n = 0;
    int rc = ns->fetch(ns->fetch_ud, c, &d, &n);
    if (changing)
        pthread_mutex_lock(&ns->change_lock);
    atomic_fetch_add(&ns->fetches, 1);
    if (rc > 0 || rc <= -4096)
        rc = -EIO; /* not an errno */
    if (rc == 0 && !block_matches(c, d, n)) {
        cid_format(c, cs, sizeof cs);
        log_err("fetched block %s does not match its hash: refused", cs);
        rc = -EIO;
    }
    if (rc < 0) {
        atomic_fetch_add(&ns->fetch_errors, 1);
        free(d);
        return rc;
    }
    if (tls_capped == ns)
        ns->fetch_cap(ns->fetch_ud, true); /* progress: the read's bound starts again */
    /* A gateway's blocks are a cache (the sync engine's node's are put as any block). */
    int prc = ns->fetch_many ? blockstore_put_cache(ns->bs, c, d, n)
                             : blockstore_put(ns->bs, c, d, n);
    if (prc < 0) {
        cid_format(c, cs, sizeof cs);
        log_warn("block %s: fetched but not kept: %s", cs, strerror(-prc));
    } else {
        cache_touch(ns, c);
        if (prc > 0 || !ns->fetch_many)
            cache_account(ns, n, !changing);
    }
    *data = d;
    *len = n;
    return 0;
}

/* ---- the bound on a gateway store (--store-size) ----
 * Fetched blocks are a cache: past cache_max bytes of block files, cache_evict removes the
 * least recently used ones (read or fetched longest ago in this process; before those, the
 * ones not used since it started, oldest file first) down to 90 % of the bound. Only fetched
 * copies (blockstore_put_cache's), never a block the names reach (the current, committed and
 * synced roots, marked as the collector does). A block evicted while a read or a name change
 * still wants it is fetched again. */

static uint64_t lru_slot(const struct lru_map *m, uint64_t k)
{
    return (k * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
}

/* lru_lock held. Set k's last use to v. */
static void lru_set_locked(struct lru_map *m, uint64_t k, uint64_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 4096;
        uint64_t *nk = calloc(nc, sizeof *nk), *nv = calloc(nc, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return; /* recency is advice: this use is forgotten */
        }
        struct lru_map o = *m;
        *m = (struct lru_map){.k = nk, .v = nv, .cap = nc};
        for (size_t i = 0; i < o.cap; i++)
            if (o.k[i])
                lru_set_locked(m, o.k[i], o.v[i]);
        free(o.k);
        free(o.v);
    }
    for (uint64_t i = lru_slot(m, k);; i = (i + 1) & (m->cap - 1)) {
        if (m->k[i] == k || m->k[i] == 0) {
            if (m->k[i] == 0)
                m->n++;
            m->k[i] = k;
            m->v[i] = v;
            return;
        }
    }
}

static void cache_touch(struct node_store *ns, const struct cid *c)
{
    if (!ns->cache_max)
        return;
    uint64_t k = blockstore_key(c);
    pthread_mutex_lock(&ns->lru_lock);
    lru_set_locked(&ns->lru, k, ++ns->lru_clock);
    pthread_mutex_unlock(&ns->lru_lock);
}

/* blockstore_evict's recency (lru_lock is held by cache_evict meanwhile). */
static uint64_t lru_rank(void *ud, uint64_t k)
{
    struct lru_map *m = ud;
    if (!m->cap)
        return 0;
    for (uint64_t i = lru_slot(m, k);; i = (i + 1) & (m->cap - 1)) {
        if (m->k[i] == k)
            return m->v[i];
        if (m->k[i] == 0)
            return 0;
    }
}

static void cache_evict(struct node_store *ns);

/* A fetched block of len bytes was written: count it, and evict when past the bound (not from
 * a thread that holds a store lock: may_evict false). */
static void cache_account(struct node_store *ns, size_t len, bool may_evict)
{
    if (!ns->cache_max)
        return;
    uint64_t est = atomic_fetch_add(&ns->cache_est, (len + 4095) & ~(uint64_t)4095) + len;
    if (may_evict && est > atomic_load(&ns->cache_trigger))
        cache_evict(ns);
}

/* ---- staged blocks (see struct node_store) ---- */

/* Staged bytes past which the commit thread commits at once (not commit_ms later). */
#define STAGE_MAX_BYTES (64u << 20)
/* Free space a staged content block leaves on the store's disk, for the directory blocks and
 * DIR/root that the commit writes with it. */
#define STAGE_ROOM_MARGIN (4u << 20)
/* Staged directory blocks counted, at most, as what a commit writes (content_room). */
#define STAGE_DIR_ROOM (8u << 20)

struct staged {
    struct staged *next; /* hash chain */
    uint64_t key;
    uint64_t epoch; /* the epoch of its last put */
    uint64_t mark;  /* the last commit walk that reached it (commit_run) */
    uint64_t tmark; /* the last stage_touch that reached it (stage_lock) */
    bool keep;      /* file content: goes to the block store even if no root reaches it */
    bool written;   /* put in the block store (commit_run) */
    struct cid cid;
    size_t len;
    uint8_t data[];
};

/* Keyed by multihash, as the block store is (the v0 and v1 CIDs of one block are one block). */
static uint64_t stage_key(const struct cid *c)
{
    struct cid k = *c;
    k.version = 1;
    k.codec = CID_CODEC_DAG_PB;
    return cid_hash(&k);
}

/* Call with stage_lock held. */
static struct staged *stage_find(struct node_store *ns, const struct cid *c)
{
    if (!ns->stage_cap)
        return NULL;
    uint64_t k = stage_key(c);
    for (struct staged *e = ns->stage_tab[k & (ns->stage_cap - 1)]; e; e = e->next)
        if (e->key == k && e->cid.mh_len == c->mh_len && memcmp(e->cid.mh, c->mh, c->mh_len) == 0)
            return e;
    return NULL;
}

static void wake_committer(struct node_store *ns);

/* Keep block b (CID c) in memory until a commit. A block staged already is tagged again. keep:
 * file content, which a commit writes to the block store even if its root does not reach it
 * (a name may link it later). */
static int stage_put(struct node_store *ns, const struct cid *c, const uint8_t *b, size_t len,
                     bool keep)
{
    if (c->mh_code != MH_SHA2_256)
        return blockstore_put(ns->bs, c, b, len);
    pthread_mutex_lock(&ns->stage_lock);
    struct staged *e = stage_find(ns, c);
    if (e) {
        e->epoch = ns->epoch;
        if (keep && !e->keep)
            ns->stage_keep_bytes += e->len;
        e->keep |= keep;
        pthread_mutex_unlock(&ns->stage_lock);
        return 0;
    }
    if (ns->stage_n >= ns->stage_cap) {
        size_t cap = ns->stage_cap ? 2 * ns->stage_cap : 1024;
        struct staged **t = calloc(cap, sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&ns->stage_lock);
            return -ENOMEM;
        }
        for (size_t i = 0; i < ns->stage_cap; i++)
            for (struct staged *x = ns->stage_tab[i], *nx; x; x = nx) {
                nx = x->next;
                x->next = t[x->key & (cap - 1)];
                t[x->key & (cap - 1)] = x;
            }
        free(ns->stage_tab);
        ns->stage_tab = t;
        ns->stage_cap = cap;
    }
    e = malloc(sizeof *e + (len ? len : 1));
    if (!e) {
        pthread_mutex_unlock(&ns->stage_lock);
        return -ENOMEM;
    }
    *e = (struct staged){
        .key = stage_key(c), .epoch = ns->epoch, .cid = *c, .len = len, .keep = keep};
    memcpy(e->data, b, len);
    e->next = ns->stage_tab[e->key & (ns->stage_cap - 1)];
    ns->stage_tab[e->key & (ns->stage_cap - 1)] = e;
    ns->stage_n++;
    ns->stage_bytes += len;
    if (keep)
        ns->stage_keep_bytes += len;
    bool full = ns->stage_bytes > STAGE_MAX_BYTES;
    pthread_mutex_unlock(&ns->stage_lock);
    if (full)
        wake_committer(ns);
    return 0;
}

/* A copy of the staged block c: 0, or -ENOENT if it is not staged. */
static int stage_get(struct node_store *ns, const struct cid *c, uint8_t **data, size_t *len)
{
    pthread_mutex_lock(&ns->stage_lock);
    struct staged *e = stage_find(ns, c);
    uint8_t *d = e ? malloc(e->len ? e->len : 1) : NULL;
    if (d)
        memcpy(d, e->data, e->len);
    size_t n = e ? e->len : 0;
    pthread_mutex_unlock(&ns->stage_lock);
    if (!e)
        return -ENOENT;
    if (!d)
        return -ENOMEM;
    *data = d;
    *len = n;
    return 0;
}

static atomic_uint_fast64_t stage_marks; /* walk numbers (any store: only distinctness counts) */

/* The staged blocks that root reaches through staged blocks (blocks in the block store only
 * link to blocks there, or to remote ones): each is handed to fn once per walk (mark), with
 * stage_lock not held. Call with commit_run held (only then do the entries stay). */
static int stage_walk(struct node_store *ns, const struct cid *root, uint64_t mark,
                      int (*fn)(struct node_store *ns, struct staged *e))
{
    struct staged **todo = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    pthread_mutex_lock(&ns->stage_lock);
    struct staged *e = stage_find(ns, root);
    if (e && e->mark != mark) {
        e->mark = mark;
        todo = malloc(64 * sizeof *todo);
        cap = 64;
        if (todo)
            todo[n++] = e;
        else
            rc = -ENOMEM;
    }
    pthread_mutex_unlock(&ns->stage_lock);
    while (rc == 0 && n > 0) {
        e = todo[--n];
        struct dagpb_node pb;
        if (e->cid.codec == CID_CODEC_DAG_PB && dagpb_decode(e->data, e->len, &pb) == 0) {
            pthread_mutex_lock(&ns->stage_lock);
            for (size_t i = 0; rc == 0 && i < pb.nlinks; i++) {
                struct cid cc;
                struct staged *x;
                if (cid_from_bytes(pb.links[i].hash, pb.links[i].hash_len, &cc) < 0 ||
                    !(x = stage_find(ns, &cc)) || x->mark == mark)
                    continue;
                x->mark = mark;
                if (n == cap) {
                    struct staged **t = realloc(todo, 2 * cap * sizeof *t);
                    if (!t) {
                        rc = -ENOMEM;
                        break;
                    }
                    todo = t;
                    cap *= 2;
                }
                todo[n++] = x;
            }
            pthread_mutex_unlock(&ns->stage_lock);
            dagpb_node_free(&pb);
        }
        if (rc == 0)
            rc = fn(ns, e);
    }
    free(todo);
    return rc;
}

static int stage_write_one(struct node_store *ns, struct staged *e)
{
    int rc = blockstore_put(ns->bs, &e->cid, e->data, e->len);
    e->written = rc == 0;
    return rc;
}

/* Tag the staged blocks root reaches with the current epoch: a change that links an existing
 * tree (mfs_link, swap_root) keeps it from being dropped by a commit that began before. All
 * under stage_lock: a commit may be dropping blocks meanwhile. Call with change_lock held. */
static int stage_touch(struct node_store *ns, const struct cid *root)
{
    struct staged **todo = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    uint64_t mark = atomic_fetch_add(&stage_marks, 1) + 1;
    pthread_mutex_lock(&ns->stage_lock);
    struct staged *e = stage_find(ns, root);
    if (e) {
        e->tmark = mark;
        cap = 64;
        if ((todo = malloc(cap * sizeof *todo)))
            todo[n++] = e;
        else
            rc = -ENOMEM;
    }
    while (rc == 0 && n > 0) {
        e = todo[--n];
        e->epoch = ns->epoch;
        struct dagpb_node pb;
        if (e->cid.codec != CID_CODEC_DAG_PB || dagpb_decode(e->data, e->len, &pb) < 0)
            continue;
        for (size_t i = 0; rc == 0 && i < pb.nlinks; i++) {
            struct cid cc;
            struct staged *x;
            if (cid_from_bytes(pb.links[i].hash, pb.links[i].hash_len, &cc) < 0 ||
                !(x = stage_find(ns, &cc)) || x->tmark == mark)
                continue;
            x->tmark = mark;
            if (n == cap) {
                struct staged **t = realloc(todo, 2 * cap * sizeof *t);
                if (!t) {
                    rc = -ENOMEM;
                    break;
                }
                todo = t;
                cap *= 2;
            }
            todo[n++] = x;
        }
        dagpb_node_free(&pb);
    }
    pthread_mutex_unlock(&ns->stage_lock);
    free(todo);
    return rc;
}

/* Write the file content staged before epoch that no commit wrote yet to the block store (a
 * commit covers every add before it, linked or not). Call with commit_run held. */
static int stage_write_content(struct node_store *ns, uint64_t epoch)
{
    struct staged **v = NULL;
    size_t n = 0;
    int rc = 0;
    pthread_mutex_lock(&ns->stage_lock);
    if (ns->stage_n && !(v = malloc(ns->stage_n * sizeof *v)))
        rc = -ENOMEM;
    for (size_t i = 0; v && i < ns->stage_cap; i++)
        for (struct staged *e = ns->stage_tab[i]; e; e = e->next)
            if (e->epoch < epoch && e->keep && !e->written)
                v[n++] = e;
    pthread_mutex_unlock(&ns->stage_lock);
    for (size_t i = 0; rc == 0 && i < n; i++) /* the entries stay: only this thread frees them */
        rc = stage_write_one(ns, v[i]);
    free(v);
    return rc;
}

/* After a failed commit: every staged block is written again by the next one. */
static void stage_unwritten(struct node_store *ns)
{
    pthread_mutex_lock(&ns->stage_lock);
    for (size_t i = 0; i < ns->stage_cap; i++)
        for (struct staged *e = ns->stage_tab[i]; e; e = e->next)
            e->written = false;
    pthread_mutex_unlock(&ns->stage_lock);
}

/* Drop the staged blocks of epochs before epoch (after a commit wrote what must be written).
 * all: drop everything (the store is closing). Call with commit_run held. */
static void stage_drop(struct node_store *ns, uint64_t epoch, bool all)
{
    pthread_mutex_lock(&ns->stage_lock);
    for (size_t i = 0; i < ns->stage_cap; i++)
        for (struct staged **pp = &ns->stage_tab[i]; *pp;) {
            struct staged *e = *pp;
            if (!all && (e->epoch >= epoch || (e->keep && !e->written))) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            ns->stage_n--;
            ns->stage_bytes -= e->len;
            if (e->keep)
                ns->stage_keep_bytes -= e->len;
            free(e);
        }
    pthread_mutex_unlock(&ns->stage_lock);
}

static bool same_mh(const struct cid *a, const struct cid *b);

static void bc_unlink_locked(struct bcache *bc, struct bc_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        bc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        bc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void bc_push_locked(struct bcache *bc, struct bc_entry *e)
{
    e->prev = NULL;
    e->next = bc->head;
    if (bc->head)
        bc->head->prev = e;
    bc->head = e;
    if (!bc->tail)
        bc->tail = e;
}

static struct bc_entry *bc_find_locked(struct bcache *bc, uint64_t key, const struct cid *c)
{
    for (struct bc_entry *e = bc->tab[key % BC_BUCKETS]; e; e = e->hnext)
        if (e->key == key && same_mh(&e->cid, c))
            return e;
    return NULL;
}

/* Take e out of the cache and free it. */
static void bc_remove_locked(struct bcache *bc, struct bc_entry *e)
{
    bc_unlink_locked(bc, e);
    struct bc_entry **pp = &bc->tab[e->key % BC_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    bc->bytes -= sizeof *e + e->len;
    free(e);
}

/* A copy of c's block if the cache holds it and its block file is still there: 0, -ENOENT,
 * or -ENOMEM. */
static int bc_get(struct node_store *ns, const struct cid *c, uint8_t **data, size_t *len)
{
    uint64_t key = stage_key(c), gen = blockstore_removals(ns->bs);
    pthread_mutex_lock(&ns->bc_lock);
    struct bc_entry *e = bc_find_locked(&ns->bc, key, c);
    uint8_t *d = e ? malloc(e->len ? e->len : 1) : NULL;
    size_t n = e ? e->len : 0;
    bool seen = e && e->gen == gen;
    if (d) {
        memcpy(d, e->data, n);
        bc_unlink_locked(&ns->bc, e);
        bc_push_locked(&ns->bc, e);
    }
    pthread_mutex_unlock(&ns->bc_lock);
    if (!e)
        return -ENOENT;
    if (!d)
        return -ENOMEM;
    if (!seen) {
        bool there = blockstore_has(ns->bs, c);
        pthread_mutex_lock(&ns->bc_lock);
        if ((e = bc_find_locked(&ns->bc, key, c)) && there)
            e->gen = gen;
        else if (e)
            bc_remove_locked(&ns->bc, e); /* its block file is gone */
        pthread_mutex_unlock(&ns->bc_lock);
        if (!there) {
            free(d);
            return -ENOENT;
        }
    }
    atomic_fetch_add(&ns->bc_hits, 1);
    *data = d;
    *len = n;
    return 0;
}

/* Keep a copy of a verified directory block read from the block store, if it is small. Best
 * effort: out of memory, it is simply not kept. */
static void bc_put(struct node_store *ns, const struct cid *c, const uint8_t *data, size_t len,
                   uint64_t gen)
{
    if (c->codec != CID_CODEC_DAG_PB || len > BC_MAX_ENTRY)
        return;
    uint64_t key = stage_key(c);
    struct bc_entry *e = malloc(sizeof *e + (len ? len : 1));
    if (!e)
        return;
    e->key = key;
    e->gen = gen;
    e->cid = *c;
    e->len = len;
    memcpy(e->data, data, len);
    struct bcache *bc = &ns->bc;
    pthread_mutex_lock(&ns->bc_lock);
    if (bc_find_locked(bc, key, c)) {
        pthread_mutex_unlock(&ns->bc_lock);
        free(e);
        return;
    }
    e->hnext = bc->tab[key % BC_BUCKETS];
    bc->tab[key % BC_BUCKETS] = e;
    bc_push_locked(bc, e);
    bc->bytes += sizeof *e + len;
    while (bc->bytes > BC_BUDGET && bc->tail)
        bc_remove_locked(bc, bc->tail);
    pthread_mutex_unlock(&ns->bc_lock);
}

static void bc_free(struct bcache *bc)
{
    for (struct bc_entry *e = bc->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    memset(bc, 0, sizeof *bc);
}

/* A block, verified: staged, from the directory block cache, from the block store (*from_disk
 * set), else (if fetch) from the fetch hook (if any). In a gateway store a block file found corrupt is removed and fetched again: a fetched
 * copy is never fsynced (blockstore_put_cache), so a crash may leave one cut short. */
static int get_block_from(struct node_store *ns, const struct cid *c, uint8_t **data,
                          size_t *len, bool fetch, bool *from_disk, uint64_t *gen)
{
    *from_disk = false;
    *gen = blockstore_removals(ns->bs); /* before the read: a removal after it is seen */
    if (stage_get(ns, c, data, len) == 0)
        return 0; /* made here, from verified blocks */
    if (bc_get(ns, c, data, len) == 0) {
        cache_touch(ns, c); /* a gateway store's eviction order sees the use */
        return 0;
    }
    uint64_t freed = 0;
    int rc = blockstore_get(ns->bs, c, data, len);
    if (rc == 0) {
        cache_touch(ns, c);
        *from_disk = true;
    }
    if (rc == -EIO && ns->fetch_many && blockstore_drop_corrupt_cache(ns->bs, c, &freed) == 0)
        rc = -ENOENT; /* never a block of the names', nor one an error only failed to read */
    if (rc == -ENOENT && fetch && ns->fetch && !tls_here_only)
        rc = fetch_block(ns, c, data, len);
    return rc;
}

static int get_block_ex(struct node_store *ns, const struct cid *c, uint8_t **data, size_t *len,
                        bool fetch)
{
    bool from_disk;
    uint64_t gen;
    return get_block_from(ns, c, data, len, fetch, &from_disk, &gen);
}

static int get_block(struct node_store *ns, const struct cid *c, uint8_t **data, size_t *len)
{
    return get_block_ex(ns, c, data, len, true);
}

/* Blocks are keyed by multihash alone, as in Kubo: the raw CID and the dag-pb CID of the
 * same bytes name one block file, and load decodes it as the CID's codec says. That is what a
 * CID means (Kubo answers the same), so it is not refused; it is made harmless instead: a
 * dag-pb decode costs at most 32 bytes per link and one pass per field, and every walker is
 * bounded (see the bounds above), so crafted bytes cost no more than any other block. */
static int load_ex(struct node_store *ns, const struct cid *c, struct loaded *l, bool fetch);
/* load_ex, telling whether the block was read from its block file (*from_disk) and
 * blockstore_removals before the read (*gen): what attr_note needs. */
static int load_at(struct node_store *ns, const struct cid *c, struct loaded *l, bool fetch,
                   bool *from_disk, uint64_t *gen);

static int load(struct node_store *ns, const struct cid *c, struct loaded *l)
{
    return load_ex(ns, c, l, true);
}

/* A block already in hand (copied into l), decoded as load does. */
static int decode_loaded(const struct cid *c, struct loaded *l);

static bool is_dir_type(const struct loaded *l);

static int load_ex(struct node_store *ns, const struct cid *c, struct loaded *l, bool fetch)
{
    bool from_disk;
    uint64_t gen;
    return load_at(ns, c, l, fetch, &from_disk, &gen);
}

static int load_at(struct node_store *ns, const struct cid *c, struct loaded *l, bool fetch,
                   bool *from_disk_out, uint64_t *gen_out)
{
    char cs[CID_STR_MAX];
    *from_disk_out = false;
    *gen_out = 0;
    memset(l, 0, sizeof *l);
    if (c->codec != CID_CODEC_RAW && c->codec != CID_CODEC_DAG_PB) {
        cid_format(c, cs, sizeof cs);
        log_warn("CID %s: codec 0x%" PRIx64 " is not UnixFS (only dag-pb and raw are)", cs,
                 c->codec);
        return -EOPNOTSUPP; /* no file or directory: not a fault of the store (EIO) */
    }
    bool from_disk;
    uint64_t gen;
    int rc = get_block_from(ns, c, &l->block, &l->len, fetch, &from_disk, &gen);
    if (rc < 0)
        return rc;
    *from_disk_out = from_disk;
    *gen_out = gen;
    rc = decode_loaded(c, l);
    /* Directories only: path walks read them again and again. A file's blocks are read from
     * disk (and checked) each time, so that a file damaged on disk reads as EIO at once. */
    if (rc == 0 && from_disk && is_dir_type(l)) {
        atomic_fetch_add(&ns->bc_misses, 1);
        bc_put(ns, c, l->block, l->len, gen);
    }
    return rc;
}

static int decode_loaded(const struct cid *c, struct loaded *l)
{
    char cs[CID_STR_MAX];
    if (c->codec == CID_CODEC_RAW) {
        l->raw = true;
        return 0;
    }
    if (dagpb_decode(l->block, l->len, &l->pb) < 0) {
        cid_format(c, cs, sizeof cs);
        log_warn("block %s is not valid dag-pb", cs);
        free(l->block);
        l->block = NULL;
        return -EIO;
    }
    if (!l->pb.has_data || unixfs_decode(l->pb.data, l->pb.data_len, &l->u) < 0) {
        cid_format(c, cs, sizeof cs);
        log_warn("block %s has no valid UnixFS data", cs);
        loaded_free(l);
        return -EIO;
    }
    return 0;
}

static bool is_dir_type(const struct loaded *l)
{
    return !l->raw && (l->u.type == UNIXFS_DIRECTORY || l->u.type == UNIXFS_HAMT_SHARD);
}

/* The bytes a file node holds: its own data plus what its children declare (the blocksizes,
 * summed by unixfs_decode in the same pass that validated them: no rescan per entry). A node
 * whose filesize disagrees, or whose links and blocksizes do not pair up, is broken or
 * hostile: refused (as node_rpc.c does) rather than served cut short or padded. */
static int file_size(const struct cid *c, const struct loaded *l, uint64_t *out)
{
    if (l->raw) {
        *out = l->len;
        return 0;
    }
    uint64_t own = l->u.has_data ? l->u.data_len : 0;
    uint64_t sum = l->u.blocksizes_sum;
    uint64_t total = own + sum < own ? UINT64_MAX : own + sum;
    if (l->u.nblocksizes != l->pb.nlinks || (l->u.has_filesize && l->u.filesize != total)) {
        char cs[CID_STR_MAX];
        cid_format(c, cs, sizeof cs);
        log_warn("file %s is inconsistent (filesize %llu, data and children %llu, %zu links "
                 "for %zu blocksizes)",
                 cs, (unsigned long long)l->u.filesize, (unsigned long long)total, l->pb.nlinks,
                 l->u.nblocksizes);
        return -EIO;
    }
    *out = total;
    return 0;
}

/* ---- attributes by CID ---- */

/* A CID's block never changes, so neither do the attributes stat_loaded reads from it: what
 * it found for a file or a directory is kept here, by CID. Direct-mapped by blockstore_key (a
 * newer CID takes an older one's slot), compared on the whole multihash, codec and version
 * (a block made to share a key cannot borrow another's attributes). Symlinks (their target)
 * and multihashes longer than a sha2-256 one are not kept. 16,384 slots, about 1.3 MiB. As
 * in the directory block cache, only blocks read from their block files are kept, and an entry
 * counts only while that file is still there: known without a system call while no block file
 * was removed since it was seen (gen), else asked (blockstore_has). (A staged block may be
 * dropped unwritten, and a fetched one is kept only once it is read back from its file.) A block damaged on disk after its attributes were kept still stats;
 * reading it is EIO. */
#define ATTR_SLOTS 16384u
#define ATTR_MH_MAX 34u

struct attr_slot {
    uint8_t mh[ATTR_MH_MAX];
    uint8_t mh_len; /* 0: a free slot */
    uint8_t version;
    uint8_t kind;   /* enum node_kind: NODE_FILE or NODE_DIR */
    bool has_mtime;
    bool nonempty;  /* a directory with links */
    uint32_t mode;
    uint32_t mtime_nsec;
    uint64_t codec, size, tsize;
    int64_t mtime;
    uint64_t gen; /* blockstore_removals when the block was last known to be here */
};

static bool attr_same(const struct attr_slot *a, const struct cid *c)
{
    return a->mh_len == c->mh_len && a->version == c->version && a->codec == c->codec &&
           memcmp(a->mh, c->mh, c->mh_len) == 0;
}

/* Copy c's attributes to *out if they are kept and its block is still here. */
static bool attr_get(struct node_store *ns, const struct cid *c, struct attr_slot *out)
{
    if (!ns->attrs || c->mh_len == 0 || c->mh_len > ATTR_MH_MAX)
        return false;
    uint64_t gen = blockstore_removals(ns->bs);
    struct attr_slot *a = &ns->attrs[blockstore_key(c) & (ATTR_SLOTS - 1)];
    pthread_mutex_lock(&ns->attr_lock);
    bool hit = attr_same(a, c);
    if (hit)
        *out = *a;
    pthread_mutex_unlock(&ns->attr_lock);
    if (hit && out->gen != gen) {
        bool there = blockstore_has(ns->bs, c);
        pthread_mutex_lock(&ns->attr_lock);
        if (attr_same(a, c)) {
            if (there)
                a->gen = gen;
            else
                a->mh_len = 0; /* its block is gone: the slot is free */
        }
        pthread_mutex_unlock(&ns->attr_lock);
        hit = there;
    }
    atomic_fetch_add(hit ? &ns->attr_hits : &ns->attr_misses, 1);
    return hit;
}

static int stat_loaded(const struct cid *c, const struct loaded *l, struct node_stat *out);

/* Keep what block l (c's, read from its block file when blockstore_removals was gen: see
 * load_at) says, st if already stat'ed (else it is stat'ed here). Anything that does not
 * stat cleanly is not kept. */
static void attr_note(struct node_store *ns, const struct cid *c, const struct loaded *l,
                      const struct node_stat *st, uint64_t gen)
{
    struct node_stat own;
    uint64_t tsize;
    if (!ns->attrs || c->mh_len == 0 || c->mh_len > ATTR_MH_MAX)
        return;
    if (!st) {
        if (stat_loaded(c, l, &own) < 0)
            return;
        st = &own;
    }
    if ((st->kind == NODE_FILE || st->kind == NODE_DIR) &&
        block_tsize(c->codec, l->block, l->len, &tsize) == 0) {
        struct attr_slot v = {.mh_len = (uint8_t)c->mh_len,
                              .version = (uint8_t)c->version,
                              .kind = (uint8_t)st->kind,
                              .has_mtime = st->has_mtime,
                              .nonempty = st->kind == NODE_DIR && !l->raw && l->pb.nlinks > 0,
                              .mode = st->mode,
                              .codec = c->codec,
                              .size = st->size,
                              .tsize = tsize,
                              .mtime = st->mtime,
                              .mtime_nsec = st->mtime_nsec,
                              .gen = gen};
        memcpy(v.mh, c->mh, c->mh_len);
        pthread_mutex_lock(&ns->attr_lock);
        ns->attrs[blockstore_key(c) & (ATTR_SLOTS - 1)] = v;
        pthread_mutex_unlock(&ns->attr_lock);
    }
    if (st == &own)
        node_stat_clear(&own);
}

static int stat_loaded(const struct cid *c, const struct loaded *l, struct node_stat *out)
{
    char cs[CID_STR_MAX];
    memset(out, 0, sizeof *out);
    if (l->raw) {
        out->kind = NODE_FILE;
        out->size = l->len;
        return 0;
    }
    out->mode = l->u.has_mode ? (l->u.mode & 07777) : 0;
    out->has_mtime = l->u.has_mtime;
    out->mtime = l->u.mtime_sec;
    out->mtime_nsec = l->u.mtime_nsec;
    switch (l->u.type) {
    case UNIXFS_DIRECTORY:
    case UNIXFS_HAMT_SHARD:
        out->kind = NODE_DIR;
        return 0;
    case UNIXFS_FILE:
    case UNIXFS_RAW:
        out->kind = NODE_FILE;
        return file_size(c, l, &out->size);
    case UNIXFS_SYMLINK:
        if (!l->u.has_data || l->u.data_len == 0 || l->u.data_len > 4095 ||
            memchr(l->u.data, '\0', l->u.data_len)) {
            cid_format(c, cs, sizeof cs);
            log_warn("symlink %s has an invalid target", cs);
            return -EIO;
        }
        out->kind = NODE_SYMLINK;
        out->size = l->u.data_len;
        out->target = strndup((const char *)l->u.data, l->u.data_len);
        return out->target ? 0 : -ENOMEM;
    default:
        cid_format(c, cs, sizeof cs);
        log_warn("block %s: UnixFS type %d is not supported", cs, (int)l->u.type);
        return -EIO;
    }
}

static bool same_name(const char *a, size_t al, const char *b, size_t bl);

/* store_lookup in a HAMT: the shards on name's path. A shard not as boxo writes them (a bucket
 * linked twice, a link that does not parse, a sub-shard that is none) is -EAGAIN; what loading
 * a shard returns (a fetch that failed: its error, once) is returned. */
static int hamt_lookup(struct node_store *ns, const struct loaded *shard, const char *name,
                       size_t len, unsigned depth, struct cid *out)
{
    const struct dagpb_link *found = NULL;
    int kind = hamt_shard_find(&shard->pb, name, len, depth, &found);
    if (kind < 0)
        return kind;
    struct cid c;
    if (cid_from_bytes(found->hash, found->hash_len, &c) < 0)
        return -EAGAIN;
    if (kind == 1) {
        *out = c;
        return 0;
    }
    struct loaded sub;
    int rc = load(ns, &c, &sub);
    if (rc < 0)
        return rc;
    rc = !sub.raw && sub.u.type == UNIXFS_HAMT_SHARD
             ? hamt_lookup(ns, &sub, name, len, depth + 1, out)
             : -EAGAIN;
    loaded_free(&sub);
    return rc;
}

/* node op lookup. Through gateways every block is a round trip: a stat of one name must not
 * list the directory (which reads a block per entry, or per HAMT shard). Anything the listing
 * treats its own way (a name given twice, a CID that does not parse, a malformed shard) is
 * -EAGAIN: the caller lists. */
static int store_lookup(struct node *base, const struct cid *c, const char *name, size_t len,
                        struct cid *out)
{
    struct node_store *ns = to_store(base);
    struct loaded l;
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (!is_dir_type(&l)) {
        rc = -ENOTDIR;
    } else if (l.u.type == UNIXFS_HAMT_SHARD) {
        rc = hamt_lookup(ns, &l, name, len, 0, out);
    } else {
        rc = -ENOENT;
        for (size_t i = 0; i < l.pb.nlinks; i++) {
            const struct dagpb_link *lk = &l.pb.links[i];
            if (!same_name(lk->name, lk->name_len, name, len))
                continue;
            if (rc != -ENOENT || cid_from_bytes(lk->hash, lk->hash_len, out) < 0) {
                rc = -EAGAIN;
                break;
            }
            rc = 0;
        }
    }
    loaded_free(&l);
    return rc;
}

static int store_stat(struct node *base, const struct cid *c, struct node_stat *out)
{
    struct node_store *ns = to_store(base);
    struct loaded l;
    struct attr_slot a;
    memset(out, 0, sizeof *out);
    if (attr_get(ns, c, &a)) {
        out->kind = (enum node_kind)a.kind;
        out->size = a.size;
        out->mode = a.mode;
        out->has_mtime = a.has_mtime;
        out->mtime = a.mtime;
        out->mtime_nsec = a.mtime_nsec;
        return 0;
    }
    bool from_disk;
    uint64_t gen;
    int rc = load_at(ns, c, &l, true, &from_disk, &gen);
    if (rc < 0)
        return rc;
    rc = stat_loaded(c, &l, out);
    if (rc == 0 && from_disk)
        attr_note(ns, c, &l, out, gen);
    loaded_free(&l);
    return rc;
}

/* ---- walking HAMTs ---- */

/* The shards one walk has loaded, by the hash of their multihash (the block's key: the CIDv0
 * and CIDv1 of one shard are one shard): open addressing, 0 marks a free slot. A canonical
 * HAMT never links one shard twice (its names would sit in two buckets), so a repeat is
 * skipped. Two distinct shards with one 64-bit hash (odds 2^-64 per pair, and multihashes are
 * sha2-256 digests, not chosen freely) would hide the second's entries. */
struct hamt_walk {
    uint64_t *seen;
    size_t nseen, cap;
    size_t shards, entries;
    unsigned repeats; /* shard links skipped as repeats */
};

static void walk_free(struct hamt_walk *w)
{
    free(w->seen);
    memset(w, 0, sizeof *w);
}

/* Returns 1 if c is new (and records it), 0 if already seen, -ENOMEM. */
static int walk_visit(struct hamt_walk *w, const struct cid *c)
{
    struct cid key = *c;
    key.version = 1;
    key.codec = CID_CODEC_DAG_PB;
    uint64_t h = cid_hash(&key);
    h = h ? h : 1;
    if (2 * (w->nseen + 1) > w->cap) {
        size_t ncap = w->cap ? 2 * w->cap : 64;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -ENOMEM;
        for (size_t i = 0; i < w->cap; i++) {
            if (!w->seen[i])
                continue;
            size_t j = (size_t)(w->seen[i] & (ncap - 1));
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = w->seen[i];
        }
        free(w->seen);
        w->seen = ns;
        w->cap = ncap;
    }
    size_t j = (size_t)(h & (w->cap - 1));
    while (w->seen[j]) {
        if (w->seen[j] == h)
            return 0;
        j = (j + 1) & (w->cap - 1);
    }
    w->seen[j] = h;
    w->nseen++;
    return 1;
}

/* Load the sub-shard lk links to, for a walk that has loaded the ones before. Returns 1 with
 * *sub loaded, 0 for a repeat (skip it), or -errno (-EIO: not a shard, or the walk is over
 * its bounds). */
static int walk_shard(struct node_store *ns, struct hamt_walk *w, const struct dagpb_link *lk,
                      struct loaded *sub)
{
    struct cid sc;
    char cs[CID_STR_MAX];
    if (cid_from_bytes(lk->hash, lk->hash_len, &sc) < 0)
        return -EIO;
    int rc = walk_visit(w, &sc);
    if (rc <= 0) {
        w->repeats += rc == 0;
        return rc;
    }
    if (++w->shards > LIST_MAX_SHARDS) {
        cid_format(&sc, cs, sizeof cs);
        log_warn("HAMT directory: more than %u shards (at %s): refused", LIST_MAX_SHARDS, cs);
        return -EIO;
    }
    rc = load(ns, &sc, sub);
    if (rc < 0)
        return rc;
    if (sub->raw || sub->u.type != UNIXFS_HAMT_SHARD || sub->pb.nlinks > HAMT_FANOUT ||
        sub->len > SHARD_MAX_BYTES) {
        cid_format(&sc, cs, sizeof cs);
        log_warn("HAMT directory: %s is not a valid shard", cs);
        loaded_free(sub);
        return -EIO;
    }
    return 1;
}

/* One more entry for a walk: -EIO past LIST_MAX_ENTRIES. */
static int walk_entry(struct hamt_walk *w)
{
    if (++w->entries <= LIST_MAX_ENTRIES)
        return 0;
    log_warn("directory with more than %u entries: refused", LIST_MAX_ENTRIES);
    return -EIO;
}

/* ---- listings ---- */

struct list_ctx {
    struct node_store *ns;
    node_entry_fn fn;
    void *ud;
    unsigned skipped;
    struct hamt_walk walk;
    uint64_t detail_bytes;   /* child blocks read so far to tell kinds and sizes */
    uint64_t prefetch_bytes; /* blocks list_prefetch brought (its callback's, while it runs) */
    struct cid *pf_cids;     /* list_prefetch's batch (LIST_AHEAD), made on first use */
};

/* What a listing through gateways asks for at once, ahead of emit_entry: the missing root
 * blocks of the next LIST_AHEAD entries (and the HAMT shards among them), LIST_PARALLEL
 * requests at a time. Without it each entry costs a round trip, one after another. */
#define LIST_AHEAD 256
#define LIST_PARALLEL 8

/* Whether emit_entry will want link's block to tell the entry's kind (not a raw block whose
 * Tsize is its length, not one whose attributes are known). */
static bool list_wants(struct node_store *ns, const char *name, size_t name_len,
                       const struct dagpb_link *link, struct cid *c)
{
    struct attr_slot a;
    return node_name_ok(name, name_len) && cid_from_bytes(link->hash, link->hash_len, c) == 0 &&
           !(c->codec == CID_CODEC_RAW && link->has_tsize) && !attr_get(ns, c, &a);
}

/* Whether c is among cids[0..n) already (files of the same bytes share a block). */
static bool list_asked(const struct cid *cids, size_t n, const struct cid *c)
{
    for (size_t i = 0; i < n; i++)
        if (cids[i].mh_len == c->mh_len && memcmp(cids[i].mh, c->mh, c->mh_len) == 0)
            return true;
    return false;
}

static void fetched_release(struct node_store *ns, uint8_t *data);

static int list_got(void *ud, size_t i, uint8_t *data, size_t len)
{
    struct list_ctx *lc = ud;
    struct node_store *ns = lc->ns;
    const struct cid *c = &lc->pf_cids[i];
    int prc = blockstore_put_cache(ns->bs, c, data, len);
    if (prc >= 0) {
        cache_touch(ns, c);
        if (prc > 0)
            cache_account(ns, len, true);
    }
    fetched_release(ns, data);
    atomic_fetch_add(&ns->list_prefetched, 1);
    lc->prefetch_bytes += len;
    return lc->prefetch_bytes < LIST_DETAIL_BYTES ? 0 : -ECANCELED;
}

/* Bring the blocks that emit_entry (and list_hamt, for shards) will read for links[0..n) of a
 * directory (hamt: of a HAMT shard) into the store, in one batch: best effort, what does not
 * come is fetched one by one as before (gw_blocks sets a failing gateway aside, so that costs
 * no second timeout). Not from a name change (no fetch under change_lock), and within the
 * listing's LIST_DETAIL_BYTES. */
static void list_prefetch(struct list_ctx *lc, const struct dagpb_link *links, size_t n,
                          bool hamt)
{
    struct node_store *ns = lc->ns;
    if (!ns->fetch_many || tls_changing == ns || lc->prefetch_bytes >= LIST_DETAIL_BYTES ||
        lc->detail_bytes >= LIST_DETAIL_BYTES)
        return;
    if (!lc->pf_cids && !(lc->pf_cids = malloc(LIST_AHEAD * sizeof *lc->pf_cids)))
        return;
    size_t k = 0;
    for (size_t i = 0; i < n && k < LIST_AHEAD; i++) {
        const struct dagpb_link *lk = &links[i];
        const char *name = lk->name;
        size_t nlen = lk->name_len;
        struct cid *c = &lc->pf_cids[k];
        if (hamt) {
            unsigned bucket;
            int t = hamt_link_name(lk->name, lk->name_len, &bucket, &name, &nlen);
            if (t < 0)
                continue;
            if (t == 0) { /* a shard */
                if (cid_from_bytes(lk->hash, lk->hash_len, c) == 0 && !blockstore_has(ns->bs, c))
                    k += !list_asked(lc->pf_cids, k, c);
                continue;
            }
        }
        if (list_wants(ns, name, nlen, lk, c) && !blockstore_has(ns->bs, c))
            k += !list_asked(lc->pf_cids, k, c);
    }
    if (k > 1) /* one block alone: emit_entry's own fetch is as quick */
        (void)ns->fetch_many(ns->fetch_ud, lc->pf_cids, k, LIST_PARALLEL, list_got, lc);
}

/* Tell the entry's kind, size and mode from its root block (within the listing's
 * LIST_DETAIL_BYTES: past it, the kind is left unknown for stat to tell). A block that is not
 * here is fetched: list_prefetch brought most of them, in batches. */
static int emit_entry(struct list_ctx *lc, const char *name, size_t name_len,
                      const struct dagpb_link *link)
{
    struct node_entry e = {.name = name, .name_len = name_len};
    if (!node_name_ok(name, name_len) || cid_from_bytes(link->hash, link->hash_len, &e.cid) < 0) {
        lc->skipped++;
        return 0;
    }
    int rc = walk_entry(&lc->walk);
    if (rc < 0)
        return rc;
    if (e.cid.codec == CID_CODEC_RAW && link->has_tsize) {
        e.kind = NODE_FILE;
        e.size = link->tsize; /* a raw block's Tsize is its length */
        return lc->fn(lc->ud, &e);
    }
    struct loaded l;
    struct node_stat st;
    struct attr_slot a;
    bool from_disk;
    uint64_t gen;
    if (attr_get(lc->ns, &e.cid, &a)) {
        e.kind = (enum node_kind)a.kind;
        e.size = a.kind == NODE_DIR ? 0 : a.size;
        e.mode = a.mode;
        e.mtime = a.mtime;
        e.mtime_nsec = a.mtime_nsec;
        e.has_mtime = a.has_mtime;
    } else if (lc->detail_bytes < LIST_DETAIL_BYTES &&
               load_at(lc->ns, &e.cid, &l, true, &from_disk, &gen) == 0) {
        lc->detail_bytes += l.len;
        if (stat_loaded(&e.cid, &l, &st) == 0) {
            e.kind = st.kind;
            e.size = st.kind == NODE_DIR ? 0 : st.size;
            e.mode = st.mode;
            e.mtime = st.mtime;
            e.mtime_nsec = st.mtime_nsec;
            e.has_mtime = st.has_mtime;
            if (from_disk)
                attr_note(lc->ns, &e.cid, &l, &st, gen);
            node_stat_clear(&st);
        }
        loaded_free(&l);
    }
    return lc->fn(lc->ud, &e);
}

static int list_hamt(struct list_ctx *lc, const struct loaded *shard, unsigned depth)
{
    if (depth > HAMT_MAX_DEPTH || shard->pb.nlinks > HAMT_FANOUT)
        return -EIO;
    list_prefetch(lc, shard->pb.links, shard->pb.nlinks, true);
    for (size_t i = 0; i < shard->pb.nlinks; i++) {
        const struct dagpb_link *lk = &shard->pb.links[i];
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0) {
            lc->skipped++;
            continue;
        }
        int rc;
        if (t == 1) {
            rc = emit_entry(lc, ename, elen, lk);
        } else {
            struct loaded sub;
            rc = walk_shard(lc->ns, &lc->walk, lk, &sub);
            if (rc > 0) {
                rc = list_hamt(lc, &sub, depth + 1);
                loaded_free(&sub);
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int store_list(struct node *base, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct node_store *ns = to_store(base);
    struct list_ctx lc = {.ns = ns, .fn = fn, .ud = ud};
    struct loaded l;
    char cs[CID_STR_MAX];
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (!is_dir_type(&l)) {
        rc = -ENOTDIR;
    } else if (l.u.type == UNIXFS_HAMT_SHARD) {
        rc = walk_visit(&lc.walk, c);
        if (rc >= 0)
            rc = list_hamt(&lc, &l, 0);
    } else {
        for (size_t i = 0; rc == 0 && i < l.pb.nlinks; i++) {
            if (i % LIST_AHEAD == 0)
                list_prefetch(&lc, &l.pb.links[i],
                              l.pb.nlinks - i < LIST_AHEAD ? l.pb.nlinks - i : LIST_AHEAD, false);
            rc = emit_entry(&lc, l.pb.links[i].name, l.pb.links[i].name_len, &l.pb.links[i]);
        }
    }
    loaded_free(&l);
    free(lc.pf_cids);
    if (lc.skipped || lc.walk.repeats) {
        cid_format(c, cs, sizeof cs);
        log_warn("directory %s: hid %u entries with invalid names or CIDs, %u repeated shards",
                 cs, lc.skipped, lc.walk.repeats);
    }
    walk_free(&lc.walk);
    return rc;
}

/* ---- reading files ---- */

/* A file node whose sizes do not add up: its DAG cannot give the bytes asked for. */
static int dag_short(const struct cid *c)
{
    char cs[CID_STR_MAX];
    cid_format(c, cs, sizeof cs);
    log_err("block %s: the DAG does not hold the bytes its sizes announce", cs);
    return -EIO;
}

/* One read's walk and what it may still cost (see READ_MAX_LOADS). */
struct read_ctx {
    struct node_store *ns;
    const struct cid *root;
    uint64_t loads, bytes, max_loads, max_bytes;
};

static int read_dag(struct read_ctx *rx, const struct cid *c, uint64_t off, size_t len,
                    uint8_t *dst, unsigned depth)
{
    struct loaded l;
    char cs[CID_STR_MAX];
    if (depth > MAX_DEPTH)
        return dag_short(rx->root);
    if (++rx->loads > rx->max_loads) {
        cid_format(rx->root, cs, sizeof cs);
        log_warn("file %s: reading %zu bytes needs more than %llu blocks: refused", cs, len,
                 (unsigned long long)rx->max_loads);
        return -EIO;
    }
    int rc = load(rx->ns, c, &l);
    if (rc < 0)
        return rc;
    rx->bytes += l.len;
    if (rx->bytes > rx->max_bytes) {
        cid_format(rx->root, cs, sizeof cs);
        log_warn("file %s: a read would load more than %llu bytes of blocks: refused", cs,
                 (unsigned long long)rx->max_bytes);
        rc = -EIO;
        goto out;
    }
    if (l.raw) {
        if (off > l.len || len > l.len - off) {
            rc = dag_short(c);
            goto out;
        }
        memcpy(dst, l.block + off, len);
        goto out;
    }
    if (is_dir_type(&l)) {
        rc = -EISDIR;
        goto out;
    }
    if (l.u.nblocksizes != l.pb.nlinks) {
        rc = dag_short(c);
        goto out;
    }
    uint64_t pos = 0, end = off + len;
    size_t done = 0;
    if (l.u.has_data && l.u.data_len > 0 && off < l.u.data_len) {
        size_t n = l.u.data_len - off < len ? (size_t)(l.u.data_len - off) : len;
        memcpy(dst, l.u.data + off, n);
        done += n;
    }
    pos = l.u.has_data ? l.u.data_len : 0;
    /* The blocksizes in one pass beside the links (not one rescan of the block per link). */
    struct unixfs_bs_iter it;
    unixfs_bs_begin(&it, l.pb.data, l.pb.data_len);
    for (size_t i = 0; i < l.pb.nlinks && pos < end; i++) {
        uint64_t bs;
        struct cid cc;
        if (unixfs_bs_next(&it, &bs) != 1 || bs > UINT64_MAX - pos) {
            rc = dag_short(c);
            goto out;
        }
        if (pos + bs > off && bs > 0) {
            if (cid_from_bytes(l.pb.links[i].hash, l.pb.links[i].hash_len, &cc) < 0) {
                rc = dag_short(c);
                goto out;
            }
            uint64_t from = off > pos ? off : pos;
            uint64_t to = end < pos + bs ? end : pos + bs;
            rc = read_dag(rx, &cc, from - pos, (size_t)(to - from), dst + (from - off),
                          depth + 1);
            if (rc < 0)
                goto out;
            done += (size_t)(to - from);
        }
        pos += bs;
    }
    if (done != len)
        rc = dag_short(c);
out:
    loaded_free(&l);
    return rc;
}

/* ---- reading through a range fetch (a gateway store) ----
 * A read walks the file's DAG over its range in file order, giving the bytes to a sink as it
 * goes, from the blocks the store has. At the first block missing, the rest of the range is
 * asked of the range fetch: one CAR with the blocks that hold it, in DFS order, each verified
 * by the hook against its CID, consumed as it streams. Each block must be the next one the walk
 * needs (or one the store has, which a gateway leaves out as a duplicate): anything else is
 * refused (-EBADMSG: the hook penalises that gateway). Its bytes go to the sink, the block to
 * the store (blockstore_put_cache: hashed once, by the hook, and never fsynced). What the CAR
 * did not bring (cut short, a wrong block, a gateway set aside) is asked again (at most
 * RANGE_TRIES CARs in all while they bring something), then block by block through the walk
 * (fetch_block: raced over the gateways). */
#define RANGE_TRIES 3

struct emit {
    int (*sink)(void *ud, const char *data, size_t len);
    void *ud;
    int sink_err;      /* the sink's own error: it ends the read */
    uint64_t pos, end; /* the next byte to give; the end of the range */
};

/* Give the part of the n bytes at file offset base that lies in [pos, end). -EIO: they begin
 * past pos (the DAG skips bytes); the sink's error. */
static int emit_bytes(struct emit *em, uint64_t base, const uint8_t *p, size_t n)
{
    if (n == 0 || base + n <= em->pos || em->pos >= em->end)
        return 0;
    if (base > em->pos)
        return -EIO;
    size_t from = (size_t)(em->pos - base);
    size_t to = base + n > em->end ? (size_t)(em->end - base) : n;
    int rc = em->sink(em->ud, (const char *)p + from, to - from);
    if (rc < 0) {
        em->sink_err = rc;
        return rc;
    }
    em->pos += to - from;
    return 0;
}

/* Count one block against the read's bounds (see READ_MAX_LOADS). */
static int range_charge(struct read_ctx *rx, size_t len)
{
    char cs[CID_STR_MAX];
    rx->bytes += len;
    if (++rx->loads > rx->max_loads || rx->bytes > rx->max_bytes) {
        cid_format(rx->root, cs, sizeof cs);
        log_warn("file %s: a read needs more than %llu blocks or %llu bytes of them: refused",
                 cs, (unsigned long long)rx->max_loads, (unsigned long long)rx->max_bytes);
        return -EIO;
    }
    return 0;
}

/* Walk c (whose bytes begin at file offset base) over [em->pos, em->end), giving bytes in
 * order. Without fetch, a block the store lacks is -ENOENT (what came before it was given). */
static int walk_range(struct read_ctx *rx, struct emit *em, const struct cid *c, uint64_t base,
                      unsigned depth, bool fetch)
{
    struct loaded l;
    if (depth > MAX_DEPTH)
        return dag_short(rx->root);
    int rc = load_ex(rx->ns, c, &l, fetch);
    if (rc < 0)
        return rc;
    if ((rc = range_charge(rx, l.len)) < 0)
        goto out;
    if (l.raw) {
        if ((rc = emit_bytes(em, base, l.block, l.len)) < 0 && !em->sink_err)
            rc = dag_short(c);
        goto out;
    }
    if (is_dir_type(&l)) {
        rc = -EISDIR;
        goto out;
    }
    if (l.u.nblocksizes != l.pb.nlinks) {
        rc = dag_short(c);
        goto out;
    }
    uint64_t pos = base;
    if (l.u.has_data) {
        if ((rc = emit_bytes(em, pos, l.u.data, l.u.data_len)) < 0) {
            if (!em->sink_err)
                rc = dag_short(c);
            goto out;
        }
        pos += l.u.data_len;
    }
    struct unixfs_bs_iter it;
    unixfs_bs_begin(&it, l.pb.data, l.pb.data_len);
    for (size_t i = 0; i < l.pb.nlinks && pos < em->end; i++) {
        uint64_t bs;
        struct cid cc;
        if (unixfs_bs_next(&it, &bs) != 1 || bs > UINT64_MAX - pos) {
            rc = dag_short(c);
            goto out;
        }
        if (bs > 0 && pos + bs > em->pos) {
            if (cid_from_bytes(l.pb.links[i].hash, l.pb.links[i].hash_len, &cc) < 0) {
                rc = dag_short(c);
                goto out;
            }
            if ((rc = walk_range(rx, em, &cc, pos, depth + 1, fetch)) < 0)
                goto out;
        }
        pos += bs;
    }
out:
    loaded_free(&l);
    return rc;
}

/* A CAR being consumed: the stack of the file nodes whose links are still to come. */
struct cf_frame {
    uint8_t *block; /* a copy: the links point into it */
    struct dagpb_node pb;
    struct unixfs_bs_iter it;
    size_t i;      /* the next link */
    uint64_t next; /* where link i's bytes begin */
};

struct car_fill {
    struct node_store *ns;
    struct read_ctx *rx;
    struct emit *em;
    struct cf_frame st[MAX_DEPTH + 1];
    size_t depth;
    bool have_want; /* the next block the walk needs: want, its bytes at want_base */
    struct cid want;
    uint64_t want_base;
};

static void cf_free(struct car_fill *cf)
{
    while (cf->depth > 0) {
        struct cf_frame *f = &cf->st[--cf->depth];
        dagpb_node_free(&f->pb);
        free(f->block);
    }
}

/* Find the next block needed: the next link over [pos, end) of the deepest node that has one. */
static int cf_next(struct car_fill *cf)
{
    cf->have_want = false;
    while (cf->depth > 0) {
        struct cf_frame *f = &cf->st[cf->depth - 1];
        while (f->i < f->pb.nlinks && f->next < cf->em->end) {
            uint64_t bs;
            size_t i = f->i++;
            if (unixfs_bs_next(&f->it, &bs) != 1 || bs > UINT64_MAX - f->next)
                return dag_short(cf->rx->root);
            uint64_t base = f->next;
            f->next += bs;
            if (bs == 0 || base + bs <= cf->em->pos)
                continue;
            if (cid_from_bytes(f->pb.links[i].hash, f->pb.links[i].hash_len, &cf->want) < 0)
                return dag_short(cf->rx->root);
            cf->want_base = base;
            cf->have_want = true;
            return 0;
        }
        cf->depth--;
        dagpb_node_free(&f->pb);
        free(f->block);
    }
    return 0;
}

/* Take block (verified: it is c's), whose bytes begin at base: give its bytes, and push it if
 * it has links. */
static int cf_take(struct car_fill *cf, const struct cid *c, uint64_t base, const uint8_t *block,
                   size_t len)
{
    char cs[CID_STR_MAX];
    int rc = range_charge(cf->rx, len);
    if (rc < 0)
        return rc;
    if (c->codec == CID_CODEC_RAW)
        return emit_bytes(cf->em, base, block, len) < 0 && !cf->em->sink_err ? dag_short(c)
                                                                              : cf->em->sink_err;
    struct dagpb_node pb;
    struct unixfs_data u = {0};
    if (c->codec != CID_CODEC_DAG_PB || dagpb_decode(block, len, &pb) < 0) {
        cid_format(c, cs, sizeof cs);
        log_warn("block %s is not a UnixFS file node", cs);
        return -EIO;
    }
    if (!pb.has_data || unixfs_decode(pb.data, pb.data_len, &u) < 0 ||
        u.type == UNIXFS_DIRECTORY || u.type == UNIXFS_HAMT_SHARD ||
        u.nblocksizes != pb.nlinks) {
        dagpb_node_free(&pb);
        return u.type == UNIXFS_DIRECTORY || u.type == UNIXFS_HAMT_SHARD ? -EISDIR
                                                                          : dag_short(c);
    }
    uint64_t pos = base;
    if (u.has_data) {
        if (emit_bytes(cf->em, pos, u.data, u.data_len) < 0) {
            dagpb_node_free(&pb);
            return cf->em->sink_err ? cf->em->sink_err : dag_short(c);
        }
        pos += u.data_len;
    }
    size_t nlinks = pb.nlinks;
    dagpb_node_free(&pb);
    if (nlinks == 0 || pos >= cf->em->end)
        return 0;
    if (cf->depth >= MAX_DEPTH)
        return dag_short(cf->rx->root);
    struct cf_frame *f = &cf->st[cf->depth];
    memset(f, 0, sizeof *f);
    if (!(f->block = malloc(len)))
        return -ENOMEM;
    memcpy(f->block, block, len);
    if (dagpb_decode(f->block, len, &f->pb) < 0) {
        free(f->block);
        return -EIO;
    }
    unixfs_bs_begin(&f->it, f->pb.data, f->pb.data_len);
    f->next = pos;
    cf->depth++;
    return 0;
}

static bool same_mh(const struct cid *a, const struct cid *b)
{
    return a->mh_len == b->mh_len && memcmp(a->mh, b->mh, a->mh_len) == 0;
}

/* The range fetch's callback: one verified block of the CAR. */
static int cf_block(void *ud, const struct cid *c, const uint8_t *block, size_t len)
{
    struct car_fill *cf = ud;
    for (;;) {
        if (!cf->have_want)
            return -EBADMSG; /* nothing more was asked */
        struct cid want = cf->want;
        int rc;
        if (same_mh(c, &want)) {
            int prc = blockstore_put_cache(cf->ns->bs, &want, block, len);
            if (prc < 0 && prc != -EINVAL)
                log_debug("a fetched block is not kept: %s", strerror(-prc));
            cache_touch(cf->ns, &want);
            if (prc > 0)
                cache_account(cf->ns, len, true);
            atomic_fetch_add(&cf->ns->range_blocks, 1);
            atomic_fetch_add(&cf->ns->range_bytes, len);
            if ((rc = cf_take(cf, &want, cf->want_base, block, len)) < 0)
                return rc == -EBADMSG ? -EIO : rc;
            return cf_next(cf);
        }
        /* Not the next block: a gateway leaves out one it sent before (dups=n), which the
         * store has now. Anything else was not asked for. */
        uint8_t *d = NULL;
        size_t n = 0;
        rc = get_block_ex(cf->ns, &want, &d, &n, false);
        if (rc == -ENOENT)
            return -EBADMSG;
        if (rc == 0)
            rc = cf_take(cf, &want, cf->want_base, d, n);
        free(d);
        if (rc == 0)
            rc = cf_next(cf);
        if (rc < 0)
            return rc == -EBADMSG ? -EIO : rc;
    }
}

/* ---- the leaves of a range, many at once (the batch fetch) ----
 * The nodes above the range's leaves are loaded (fetched one by one if missing: a few KiB
 * each, a handful per range); the leaves missing from the store are then asked all at once,
 * BATCH_PARALLEL requests at a time, and given in file order as they arrive. Which links are
 * leaves is judged without loading them: a raw CID, or a dag-pb link whose Tsize exceeds its
 * blocksize by at most LEAF_SLACK (a leaf's wrapper is ~14 bytes; a node with links adds
 * at least one link's ~40 bytes to its children's). A guess that is wrong costs only speed:
 * a "leaf" that has links stops the batch's giving there, and the walk goes on. */
#define BATCH_LEAVES 1024
#define BATCH_PARALLEL 8
#define BATCH_HELD_BYTES (16u << 20) /* fetched leaves kept in memory until their turn */
#define LEAF_SLACK 32

struct leaf {
    struct cid cid;
    uint64_t base;  /* where its bytes begin in the file */
    bool stored;    /* in the store (when planned, or fetched since) */
    uint8_t *data;  /* fetched, not given yet */
    size_t len;
};

struct plan {
    struct node_store *ns;
    struct read_ctx *rx;
    struct emit *em;
    struct leaf *v;
    size_t n, cap;
    size_t given;    /* leaves given so far */
    size_t *missing; /* the batch's blocks: indices into v */
    uint64_t held;   /* bytes of fetched leaves waiting for their turn */
    bool full;       /* the plan stops short of the range's end */
    bool stop;       /* a leaf could not be given here: the walk goes on from em->pos */
};

static int plan_node(struct plan *pl, const struct cid *c, uint64_t base, unsigned depth)
{
    struct loaded l;
    struct emit *em = pl->em;
    if (depth > MAX_DEPTH)
        return dag_short(pl->rx->root);
    int rc = load_ex(pl->ns, c, &l, true);
    if (rc < 0)
        return rc;
    if ((rc = range_charge(pl->rx, l.len)) < 0)
        goto out;
    if (l.raw || l.pb.nlinks == 0 || (l.u.has_data && l.u.data_len > 0)) {
        /* A leaf itself (or a node with bytes of its own: rare, the walk gives it). */
        if (l.raw || l.pb.nlinks == 0) {
            if (pl->n < pl->cap)
                pl->v[pl->n++] = (struct leaf){.cid = *c, .base = base, .stored = true};
            else
                pl->full = true;
        } else {
            pl->full = true;
        }
        goto out;
    }
    if (is_dir_type(&l)) {
        rc = -EISDIR;
        goto out;
    }
    if (l.u.nblocksizes != l.pb.nlinks) {
        rc = dag_short(c);
        goto out;
    }
    uint64_t pos = base;
    struct unixfs_bs_iter it;
    unixfs_bs_begin(&it, l.pb.data, l.pb.data_len);
    for (size_t i = 0; i < l.pb.nlinks && pos < em->end && !pl->full; i++) {
        uint64_t bs;
        struct cid cc;
        if (unixfs_bs_next(&it, &bs) != 1 || bs > UINT64_MAX - pos) {
            rc = dag_short(c);
            goto out;
        }
        if (bs > 0 && pos + bs > em->pos) {
            const struct dagpb_link *lk = &l.pb.links[i];
            if (cid_from_bytes(lk->hash, lk->hash_len, &cc) < 0) {
                rc = dag_short(c);
                goto out;
            }
            if (cc.codec == CID_CODEC_RAW ||
                (lk->has_tsize && lk->tsize >= bs && lk->tsize - bs <= LEAF_SLACK)) {
                if (pl->n == pl->cap) {
                    pl->full = true;
                    break;
                }
                pl->v[pl->n++] = (struct leaf){.cid = cc, .base = pos,
                                               .stored = blockstore_has(pl->ns->bs, &cc)};
            } else if ((rc = plan_node(pl, &cc, pos, depth + 1)) < 0) {
                goto out;
            }
        }
        pos += bs;
    }
out:
    loaded_free(&l);
    return rc;
}

/* A fetched block's buffer, done with. */
static void fetched_release(struct node_store *ns, uint8_t *data)
{
    if (ns->fetch_release)
        ns->fetch_release(ns->fetch_ud, data);
    else
        free(data);
}

/* Give the leaves that are next in file order and here (fetched, or in the store). */
static int plan_give(struct plan *pl)
{
    while (!pl->stop && pl->given < pl->n) {
        struct leaf *lf = &pl->v[pl->given];
        struct loaded l;
        int rc;
        bool fetched = lf->data != NULL;
        memset(&l, 0, sizeof l);
        if (fetched) {
            l.block = lf->data;
            l.len = lf->len;
            pl->held -= lf->len;
            lf->data = NULL;
            rc = decode_loaded(&lf->cid, &l);
        } else if (lf->stored) {
            rc = load_ex(pl->ns, &lf->cid, &l, false);
        } else {
            return 0; /* not here yet */
        }
        if (rc < 0 || (!l.raw && (is_dir_type(&l) || l.pb.nlinks > 0))) {
            loaded_free(&l);
            pl->stop = true; /* not a leaf after all, or unreadable: the walk's */
            return 0;
        }
        const uint8_t *p = l.raw ? l.block : l.u.data;
        size_t n = l.raw ? l.len : l.u.has_data ? l.u.data_len : 0;
        rc = range_charge(pl->rx, l.len);
        if (rc == 0)
            rc = emit_bytes(pl->em, lf->base, p, n);
        if (fetched) {
            if (!l.raw)
                dagpb_node_free(&l.pb);
            fetched_release(pl->ns, l.block);
            l.block = NULL;
        }
        loaded_free(&l);
        if (rc < 0) {
            pl->stop = true;
            return pl->em->sink_err;
        }
        pl->given++;
    }
    return 0;
}

/* The batch fetch's callback: block i of the batch, verified. */
static int plan_got(void *ud, size_t i, uint8_t *data, size_t len)
{
    struct plan *pl = ud;
    struct leaf *lf = &pl->v[pl->missing[i]];
    int prc = blockstore_put_cache(pl->ns->bs, &lf->cid, data, len);
    cache_touch(pl->ns, &lf->cid);
    if (prc > 0)
        cache_account(pl->ns, len, true);
    if (prc > 0)
        prc = 0;
    atomic_fetch_add(&pl->ns->range_blocks, 1);
    atomic_fetch_add(&pl->ns->range_bytes, len);
    if (pl->stop || pl->missing[i] < pl->given ||
        (pl->held + len > BATCH_HELD_BYTES && pl->missing[i] != pl->given && prc == 0)) {
        /* Not to be given from here (or too much waits already: the store has it). */
        lf->stored = prc == 0;
        fetched_release(pl->ns, data);
        return 0;
    }
    lf->data = data;
    lf->len = len;
    pl->held += len;
    return plan_give(pl);
}

/* Plan [em->pos, em->end) of c and fetch its missing leaves as one batch, giving what comes. */
static int batch_range(struct node_store *ns, const struct cid *c, struct read_ctx *rx,
                       struct emit *em)
{
    struct plan pl = {.ns = ns, .rx = rx, .em = em};
    uint64_t span = em->end - em->pos;
    /* Room for the range's leaves at 256 KiB, and more for smaller ones, within BATCH_LEAVES. */
    pl.cap = span / (64u << 10) + 16 < BATCH_LEAVES ? (size_t)(span / (64u << 10) + 16)
                                                    : BATCH_LEAVES;
    pl.v = calloc(pl.cap, sizeof *pl.v);
    pl.missing = calloc(pl.cap, sizeof *pl.missing);
    struct cid *cids = calloc(pl.cap, sizeof *cids);
    int rc = -ENOMEM;
    if (!pl.v || !pl.missing || !cids)
        goto out;
    rx->loads = rx->bytes = 0;
    if ((rc = plan_node(&pl, c, 0, 0)) < 0)
        goto out;
    size_t nmiss = 0;
    for (size_t i = 0; i < pl.n; i++)
        if (!pl.v[i].stored) {
            pl.missing[nmiss] = i;
            cids[nmiss++] = pl.v[i].cid;
        }
    if ((rc = plan_give(&pl)) < 0)
        goto out;
    if (nmiss > 0) {
        atomic_fetch_add(&ns->range_fetches, 1);
        rc = ns->fetch_many(ns->fetch_ud, cids, nmiss, BATCH_PARALLEL, plan_got, &pl);
        if (em->sink_err) {
            rc = em->sink_err;
            goto out;
        }
        if (rc < 0)
            atomic_fetch_add(&ns->range_errors, 1);
    }
    rc = plan_give(&pl);
out:
    if (pl.v)
        for (size_t i = 0; i < pl.n; i++)
            if (pl.v[i].data)
                fetched_release(ns, pl.v[i].data);
    free(pl.v);
    free(pl.missing);
    free(cids);
    return rc;
}

static int read_range_steps(struct node_store *ns, const struct cid *c, uint64_t off,
                            uint64_t len, struct emit *em);

/* Give the bytes [off, off + len) of file c to em's sink (see above). 0 or -errno. With a
 * fetch_cap hook, the steps below (a batch, a CAR, single blocks) wait one timeout without
 * progress in all, not one each. */
static int read_range(struct node_store *ns, const struct cid *c, uint64_t off, uint64_t len,
                      struct emit *em)
{
    bool mine = ns->fetch_cap && !tls_capped;
    if (mine) {
        tls_capped = ns;
        ns->fetch_cap(ns->fetch_ud, true);
    }
    int rc = read_range_steps(ns, c, off, len, em);
    if (mine) {
        ns->fetch_cap(ns->fetch_ud, false);
        tls_capped = NULL;
    }
    return rc;
}

static int read_range_steps(struct node_store *ns, const struct cid *c, uint64_t off,
                            uint64_t len, struct emit *em)
{
    em->pos = off;
    em->end = off + len;
    struct read_ctx rx = {.ns = ns, .root = c, .max_loads = READ_MAX_LOADS(len),
                          .max_bytes = READ_MAX_BYTES(len)};
    bool bad = false;
    int rc = -ENOENT;
    uint64_t armed_at = off;
    for (unsigned tries = 0; em->pos < em->end && tries < RANGE_TRIES; tries++) {
        if (tls_capped == ns && em->pos > armed_at) { /* progress: the bound starts again */
            ns->fetch_cap(ns->fetch_ud, true);
            armed_at = em->pos;
        }
        rx.loads = rx.bytes = 0;
        rc = walk_range(&rx, em, c, 0, 0, false);
        if (em->sink_err)
            return em->sink_err;
        if (rc != -ENOENT)
            break;
        uint64_t before = em->pos, left = em->end - em->pos;
        if (ns->fetch_many) {
            int brc = batch_range(ns, c, &rx, em);
            if (em->sink_err)
                return em->sink_err;
            if (brc < 0 && brc != -ETIMEDOUT && brc != -EIO && brc != -ENOENT)
                return brc; /* the DAG's own error (EISDIR...) */
            if (em->pos > before)
                continue;
            if (!ns->fetch_range)
                break;
        }
        struct car_fill cf = {.ns = ns, .rx = &rx, .em = em, .have_want = true, .want = *c};
        rx.loads = rx.bytes = 0;
        atomic_fetch_add(&ns->range_fetches, 1);
        /* The CAR: the range's leaves, the nodes above them, a few hundred bytes a block. */
        uint64_t max = left + left / 16 + (16u << 20);
        int frc = ns->fetch_range(ns->fetch_ud, c, em->pos, em->end - 1,
                                  max > SIZE_MAX ? SIZE_MAX : (size_t)max, cf_block, &cf);
        cf_free(&cf);
        if (em->sink_err)
            return em->sink_err;
        if (frc < 0)
            atomic_fetch_add(&ns->range_errors, 1);
        if (frc == -EIO)
            bad = true;
        if (frc < 0 && em->pos == before)
            break; /* it brought nothing: block by block */
    }
    if (em->pos >= em->end)
        return 0;
    if (rc == 0 || rc == -ENOENT) {
        rx.loads = rx.bytes = 0;
        rc = walk_range(&rx, em, c, 0, 0, true);
        if (em->sink_err)
            return em->sink_err;
        if (rc == -ETIMEDOUT && bad)
            rc = -EIO; /* only wrong answers: as gw_block says */
    }
    if (rc == 0 && em->pos < em->end)
        rc = dag_short(c);
    return rc;
}

static int copy_sink(void *ud, const char *data, size_t len)
{
    char **p = ud;
    memcpy(*p, data, len);
    *p += len;
    return 0;
}

static int store_read_stream(struct node *base, const struct cid *c, uint64_t off, uint64_t len,
                             int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    struct emit em = {.sink = sink, .ud = ud};
    return len == 0 ? 0 : read_range(to_store(base), c, off, len, &em);
}

static ssize_t store_read(struct node *base, const struct cid *c, uint64_t off, size_t len,
                          char *buf)
{
    if (len == 0)
        return 0;
    if (to_store(base)->fetch_range || to_store(base)->fetch_many) {
        char *p = buf;
        struct emit em = {.sink = copy_sink, .ud = &p};
        int rc = read_range(to_store(base), c, off, len, &em);
        return rc < 0 ? rc : (ssize_t)len;
    }
    struct read_ctx rx = {.ns = to_store(base),
                          .root = c,
                          .max_loads = READ_MAX_LOADS(len),
                          .max_bytes = READ_MAX_BYTES(len)};
    int rc = read_dag(&rx, c, off, len, (uint8_t *)buf, 0);
    return rc < 0 ? rc : (ssize_t)len;
}

/* ---- writing blocks ---- */

static int put_block(struct node_store *ns, unsigned version, uint64_t codec,
                     const struct bytebuf *b, struct cid *out)
{
    int rc = block_cid(version, codec, b->p, b->len, out);
    return rc < 0 ? rc : blockstore_put(ns->bs, out, b->p, b->len);
}

/* A block made by a name change: staged until a commit (see struct node_store). */
static int stage_block(struct node_store *ns, unsigned version, const struct bytebuf *b,
                       struct cid *out)
{
    int rc = block_cid(version, CID_CODEC_DAG_PB, b->p, b->len, out);
    return rc < 0 ? rc : stage_put(ns, out, b->p, b->len, false);
}

/* Encode a file or directory node (UnixFS fields f, links), stage it as a dag-pb block of CID
 * version, and give its CID and cumulative size (Tsize for a link to it). 0 or -errno. */
static int stage_node(struct node_store *ns, unsigned version, const struct unixfs_fields *f,
                      const struct pb_link_out *links, size_t n, struct cid *out,
                      uint64_t *tsize)
{
    struct bytebuf d = {0}, b = {0};
    int rc = unixfs_encode(f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, n, d.p, d.len, true, &b);
    if (rc == 0)
        rc = stage_block(ns, version, &b, out);
    if (rc == 0)
        rc = block_tsize(CID_CODEC_DAG_PB, b.p, b.len, tsize) < 0 ? -EIO : 0;
    bytebuf_free(&d);
    bytebuf_free(&b);
    return rc;
}

/* Whether len more bytes of file content leave the store's disk room for the next commit:
 * the staged blocks and the directories above them, and DIR/root (STAGE_ROOM_MARGIN). 0, or
 * -ENOSPC for the close(2) that stores it. Without this a burst of big files filled the disk
 * within one commit interval, the commit then failed, and every name whose close had said it
 * was stored since the last commit was lost at the next stop. */
static int content_room(struct node_store *ns, size_t len)
{
    pthread_mutex_lock(&ns->stage_lock);
    /* The commit writes every staged content block, and of the directory blocks only those
     * its root reaches: most staged ones were replaced by later changes (cp -r of 1,000 files
     * stages ~10,000), so they count up to STAGE_DIR_ROOM only (else a disk with tens of MiB
     * free would refuse files after a burst of small ones). */
    uint64_t dirs = ns->stage_bytes - ns->stage_keep_bytes;
    uint64_t need = ns->stage_keep_bytes + (dirs < STAGE_DIR_ROOM ? dirs : STAGE_DIR_ROOM);
    pthread_mutex_unlock(&ns->stage_lock);
    struct statvfs vf;
    if (statvfs(ns->dir, &vf) < 0)
        return 0; /* cannot tell: the write says */
    return (uint64_t)vf.f_bavail * vf.f_frsize >= need + len + STAGE_ROOM_MARGIN ? 0 : -ENOSPC;
}

/* A block of a new file's content, straight to the block store (room left for a commit). */
static int put_content(struct node_store *ns, const struct cid *c, const uint8_t *data,
                       size_t len)
{
    int rc = content_room(ns, len);
    return rc < 0 ? rc : blockstore_put(ns->bs, c, data, len);
}

static int pipe_put_direct(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    return put_content(ud, c, data, len);
}

/* A small file's blocks: staged (they are read again at once: linked, moved, stat'ed), written
 * to the block store by the next commit; straight to the block store while the staged blocks
 * are over STAGE_MAX_BYTES (a commit is due then). */
static int stage_put_content(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    struct node_store *ns = ud;
    pthread_mutex_lock(&ns->stage_lock);
    uint64_t staged = ns->stage_bytes;
    pthread_mutex_unlock(&ns->stage_lock);
    /* Only what the disk has room for waits in memory: a commit that cannot write it would
     * lose it (and every close would have said it was stored). Past that, ENOSPC at once, to
     * the close that stores it. */
    int rc = content_room(ns, len);
    if (rc < 0)
        return rc;
    return staged > STAGE_MAX_BYTES ? blockstore_put(ns->bs, c, data, len)
                                    : stage_put(ns, c, data, len, true);
}

/* Imports hash the next chunk while one writer thread stores (and fsyncs) the previous ones:
 * a bounded queue between the importer and the writer. lock guards every field below it.
 * The block copies' buffers are reused (spare): a buffer of a chunk's size is past malloc's
 * mmap threshold, and fresh pages for every block (page faults, zeroing) cost a third of a
 * large import's CPU. */
#define PIPE_DEPTH 8 /* blocks in flight: at most ~2 MiB with the default chunker */

struct pipe_item {
    struct cid cid;
    uint8_t *data;
    size_t len;
    size_t cap; /* bytes at data */
};

struct pipe {
    struct node_store *ns;
    node_store_block_hook hook; /* each block stored goes to it too (NULL: none) */
    void *hook_ud;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pipe_item q[PIPE_DEPTH];
    size_t head, count;
    bool done;
    int err; /* first error of the writer */
    struct pipe_item spare[PIPE_DEPTH + 1]; /* buffers given back (data, len: their size) */
    size_t nspare;
};

static void *pipe_writer(void *arg)
{
    struct pipe *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == 0 && !p->done)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->count == 0)
            break;
        struct pipe_item it = p->q[p->head];
        pthread_mutex_unlock(&p->lock);
        int rc = p->err ? 0 : put_content(p->ns, &it.cid, it.data, it.len);
        if (rc == 0 && !p->err && p->hook)
            p->hook(p->hook_ud, &it.cid, it.data, it.len);
        pthread_mutex_lock(&p->lock);
        if (p->nspare < PIPE_DEPTH + 1)
            p->spare[p->nspare++] = (struct pipe_item){.data = it.data, .len = it.cap};
        else
            free(it.data);
        if (rc < 0 && !p->err)
            p->err = rc;
        p->head = (p->head + 1) % PIPE_DEPTH;
        p->count--;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int pipe_put(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    struct pipe *p = ud;
    struct pipe_item it = {.cid = *c, .len = len};
    pthread_mutex_lock(&p->lock);
    while (p->count == PIPE_DEPTH && !p->err)
        pthread_cond_wait(&p->cond, &p->lock);
    /* A spare buffer big enough, if any (a file's chunks are all one size but its last, and
     * the nodes above the leaves are smaller). */
    for (size_t i = p->nspare; i-- > 0;)
        if (p->spare[i].len >= len) {
            it.data = p->spare[i].data;
            it.cap = p->spare[i].len;
            p->spare[i] = p->spare[--p->nspare];
            break;
        }
    pthread_mutex_unlock(&p->lock);
    if (!it.data) {
        it.cap = len ? len : 1;
        if (!(it.data = malloc(it.cap)))
            return -ENOMEM;
    }
    memcpy(it.data, data, len);
    pthread_mutex_lock(&p->lock);
    int rc = p->err;
    if (rc == 0) {
        p->q[(p->head + p->count) % PIPE_DEPTH] = it;
        p->count++;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0)
        free(it.data);
    return rc;
}

/* Start the pipe's writer thread. 0, or -errno (nothing to undo). */
static int pipe_open(struct pipe *p, struct node_store *ns)
{
    *p = (struct pipe){.ns = ns, .hook = ns->block_hook, .hook_ud = ns->block_hook_ud};
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    int rc = pthread_create(&p->thread, NULL, pipe_writer, p);
    if (rc != 0) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        return -rc;
    }
    return 0;
}

/* Let the writer store what is queued, stop it, and free the pipe: the writer's first error. */
static int pipe_close(struct pipe *p)
{
    pthread_mutex_lock(&p->lock);
    p->done = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->nspare; i++)
        free(p->spare[i].data);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    return p->err;
}

/* Import through the pipe: returns the importer's error, else the writer's. */
static int import_piped(struct node_store *ns, int fd, uint64_t size, const struct import_opts *io,
                        struct cid *out)
{
    /* A file of a few blocks gains nothing from a second thread (cp -r of small files would
     * start one per file). */
    if (size <= 4 * (uint64_t)io->chunk_size)
        return import_fd(fd, size, io, stage_put_content, ns, out, NULL);
    struct pipe p;
    if (pipe_open(&p, ns) < 0)
        return import_fd(fd, size, io, pipe_put_direct, ns, out, NULL);
    int rc = import_fd(fd, size, io, pipe_put, &p, out, NULL);
    int prc = pipe_close(&p);
    return rc < 0 ? rc : prc;
}

/* The import settings of an add with options o (NULL: the mount's). 0 or -errno. */
static int add_settings(struct node_store *ns, const struct node_add_opts *o,
                        struct import_opts *io)
{
    struct node_add_opts merged = ns->add_defaults;
    if (o) {
        if (o->cid_version >= 0)
            merged.cid_version = o->cid_version;
        if (o->raw_leaves >= 0)
            merged.raw_leaves = o->raw_leaves;
        if (o->chunker)
            merged.chunker = o->chunker;
        if (o->max_links)
            merged.max_links = o->max_links;
    }
    int rc = import_opts_from(&merged, io);
    if (rc < 0)
        log_warn("add: unsupported import settings (cid-version %d, chunker %s)",
                 merged.cid_version, merged.chunker ? merged.chunker : "default");
    return rc;
}

static int store_add(struct node *base, int fd, uint64_t size, const struct node_add_opts *o,
                     struct cid *out)
{
    struct node_store *ns = to_store(base);
    struct import_opts io;
    int rc = add_settings(ns, o, &io);
    if (rc < 0)
        return rc;
    /* Durable with the next commit (node_store_commit: the node's sync op), like names. */
    struct busy busy;
    busy_begin(ns, &busy);
    rc = import_piped(ns, fd, size, &io, out);
    busy_end(ns, &busy);
    if (rc < 0) {
        log_warn("add (%llu bytes): %s", (unsigned long long)size, strerror(-rc));
        return rc;
    }
    atomic_fetch_add(&ns->adds, 1);
    atomic_fetch_add(&ns->add_bytes, size);
    return 0;
}

/* An add that takes a file's chunks as they are written (node.h, struct add_stream): the same
 * importer and pipe as store_add, kept between calls. busy from start to release (which the
 * writer calls after linking the CID): the blocks it stored stay young, no sweep takes them,
 * until the name that holds them is in the names (writer.c ends an idle stream, so that it
 * does not hold back the young sets for long). One caller at a time: no lock. */
struct store_stream {
    struct add_stream base; /* first: the caller's pointer */
    struct node_store *ns;
    struct import_opts io;
    struct importer *im;
    struct pipe p;
    bool piped; /* p runs (until end) */
    struct busy busy;
};

static int stream_more(struct add_stream *s, int fd, uint64_t upto, uint64_t *done)
{
    struct store_stream *st = (struct store_stream *)s;
    int rc = 0;
    size_t chunk = st->base.chunk;
    while (rc == 0 && import_offset(st->im) + chunk <= upto)
        rc = import_next(st->im, fd, chunk);
    *done = import_offset(st->im);
    return rc;
}

static int stream_end(struct add_stream *s, int fd, uint64_t size, struct cid *out)
{
    struct store_stream *st = (struct store_stream *)s;
    size_t chunk = st->base.chunk;
    int rc = size < import_offset(st->im) ? -EINVAL : 0;
    while (rc == 0 && import_offset(st->im) < size) {
        uint64_t left = size - import_offset(st->im);
        rc = import_next(st->im, fd, left < chunk ? (size_t)left : chunk);
    }
    if (rc == 0)
        rc = import_end(st->im, out, NULL);
    struct node_store *ns = st->ns;
    int prc = pipe_close(&st->p); /* every block stored */
    st->piped = false;
    if (rc == 0)
        rc = prc;
    if (rc < 0) {
        log_warn("add (%llu bytes, as written): %s", (unsigned long long)size, strerror(-rc));
        return rc;
    }
    atomic_fetch_add(&ns->adds, 1);
    atomic_fetch_add(&ns->add_bytes, size);
    atomic_fetch_add(&ns->add_streams, 1);
    return 0;
}

static void stream_release(struct add_stream *s)
{
    struct store_stream *st = (struct store_stream *)s;
    if (st->piped)
        pipe_close(&st->p);
    import_free(st->im);
    busy_end(st->ns, &st->busy); /* after the link: its blocks are live, or garbage */
    free(st);
}

static const struct add_stream_ops store_stream_ops = {
    .more = stream_more,
    .end = stream_end,
    .release = stream_release,
};

static int store_add_stream(struct node *base, const struct node_add_opts *o,
                            struct add_stream **out)
{
    struct node_store *ns = to_store(base);
    *out = NULL;
    struct store_stream *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    int rc = add_settings(ns, o, &st->io);
    if (rc == 0)
        rc = import_begin(&st->io, UINT64_MAX, pipe_put, &st->p, &st->im);
    if (rc == 0)
        rc = pipe_open(&st->p, ns);
    if (rc < 0) {
        import_free(st->im); /* NULL-safe */
        free(st);
        return rc;
    }
    st->ns = ns;
    st->piped = true;
    st->base = (struct add_stream){.ops = &store_stream_ops, .chunk = st->io.chunk_size};
    busy_begin(ns, &st->busy);
    *out = &st->base;
    return 0;
}

static int store_put_symlink(struct node *base, const char *target, struct cid *out)
{
    struct node_store *ns = to_store(base);
    size_t tl = strlen(target);
    if (tl == 0 || tl > 4095)
        return -ENAMETOOLONG;
    struct unixfs_fields f = {
        .type = UNIXFS_SYMLINK, .data = (const uint8_t *)target, .data_len = tl, .has_data = true};
    struct bytebuf d = {0}, b = {0};
    int rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(NULL, 0, d.p, d.len, true, &b);
    if (rc == 0)
        rc = put_block(ns, ns->defaults.cid_version, CID_CODEC_DAG_PB, &b, out);
    bytebuf_free(&d);
    bytebuf_free(&b);
    return rc;
}

/* ---- names ---- */

struct path_parts {
    const char *comp[MAX_COMPONENTS];
    size_t len[MAX_COMPONENTS];
    size_t n;
};

/* Split an absolute path into its components (no copies: they point into path). */
static int split_path(const char *path, struct path_parts *pp)
{
    pp->n = 0;
    if (!path || path[0] != '/')
        return -EINVAL;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (pp->n == MAX_COMPONENTS)
            return -ENAMETOOLONG;
        if (n > 255)
            return -ENAMETOOLONG;
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return -EINVAL;
        pp->comp[pp->n] = p;
        pp->len[pp->n++] = n;
        p = e;
    }
    return 0;
}

static bool same_name(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

static int hamt_find(struct node_store *ns, const struct loaded *shard, const char *name,
                     size_t len, unsigned depth, struct cid *out)
{
    int idx = hamt_index(name, len, depth);
    if (idx < 0)
        return -ENOENT;
    if (shard->pb.nlinks > HAMT_FANOUT)
        return -EIO; /* not a shard: at most one link per bucket */
    for (size_t i = 0; i < shard->pb.nlinks; i++) {
        const struct dagpb_link *lk = &shard->pb.links[i];
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0 || bucket != (unsigned)idx)
            continue;
        if (t == 1) {
            if (!same_name(ename, elen, name, len))
                return -ENOENT;
            return cid_from_bytes(lk->hash, lk->hash_len, out) < 0 ? -EIO : 0;
        }
        struct cid sc;
        struct loaded sub;
        if (cid_from_bytes(lk->hash, lk->hash_len, &sc) < 0)
            return -EIO;
        int rc = load(ns, &sc, &sub);
        if (rc < 0)
            return rc;
        rc = !sub.raw && sub.u.type == UNIXFS_HAMT_SHARD
                 ? hamt_find(ns, &sub, name, len, depth + 1, out)
                 : -EIO;
        loaded_free(&sub);
        return rc;
    }
    return -ENOENT;
}

/* Find name in the (loaded) directory dir. */
static int dir_find(struct node_store *ns, const struct loaded *dir, const char *name, size_t len,
                    struct cid *out)
{
    if (!is_dir_type(dir))
        return -ENOTDIR;
    if (dir->u.type == UNIXFS_HAMT_SHARD)
        return hamt_find(ns, dir, name, len, 0, out);
    for (size_t i = 0; i < dir->pb.nlinks; i++) {
        const struct dagpb_link *lk = &dir->pb.links[i];
        if (same_name(lk->name, lk->name_len, name, len))
            return cid_from_bytes(lk->hash, lk->hash_len, out) < 0 ? -EIO : 0;
    }
    return -ENOENT;
}

static int dc_find(struct node_store *ns, const struct cid *c, const char *name, size_t len,
                   struct cid *out);

/* Find name in directory c: from the directories changed lately, else from c's block. */
static int child_of(struct node_store *ns, const struct cid *c, const char *name, size_t len,
                    struct cid *out)
{
    int rc = dc_find(ns, c, name, len, out);
    if (rc <= 0)
        return rc;
    struct loaded l;
    if ((rc = load(ns, c, &l)) < 0)
        return rc;
    rc = dir_find(ns, &l, name, len, out);
    loaded_free(&l);
    return rc;
}

/* Walk the first n components of pp from the directory root. */
static int resolve(struct node_store *ns, const struct cid *root, const struct path_parts *pp,
                   size_t n, struct cid *out)
{
    struct cid cur = *root;
    for (size_t i = 0; i < n; i++) {
        struct cid next;
        int rc = child_of(ns, &cur, pp->comp[i], pp->len[i], &next);
        if (rc < 0)
            return rc;
        cur = next;
    }
    *out = cur;
    return 0;
}

/* A directory's entries, copied out of its blocks (a HAMT spans many). */
struct entries {
    struct hamt_entry *e;
    size_t n, cap;
};

static void entries_free(struct entries *es)
{
    for (size_t i = 0; i < es->n; i++)
        free((void *)es->e[i].name); /* name and CID share one allocation */
    free(es->e);
    memset(es, 0, sizeof *es);
}

static int entries_add(struct entries *es, const char *name, size_t nlen, const uint8_t *cid,
                       size_t clen, uint64_t tsize)
{
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        struct hamt_entry *e = realloc(es->e, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        es->e = e;
        es->cap = cap;
    }
    char *mem = malloc(nlen + clen + 1);
    if (!mem)
        return -ENOMEM;
    if (nlen) /* a link may carry no name: name is NULL then */
        memcpy(mem, name, nlen);
    if (clen)
        memcpy(mem + nlen, cid, clen);
    es->e[es->n++] = (struct hamt_entry){.name = mem,
                                         .name_len = nlen,
                                         .cid = (const uint8_t *)mem + nlen,
                                         .cid_len = clen,
                                         .tsize = tsize};
    return 0;
}

static int collect_entries(struct node_store *ns, const struct loaded *dir, unsigned depth,
                           struct hamt_walk *w, struct entries *es)
{
    if (depth > HAMT_MAX_DEPTH ||
        (dir->u.type == UNIXFS_HAMT_SHARD && dir->pb.nlinks > HAMT_FANOUT))
        return -EIO;
    for (size_t i = 0; i < dir->pb.nlinks; i++) {
        const struct dagpb_link *lk = &dir->pb.links[i];
        if (dir->u.type == UNIXFS_DIRECTORY) {
            int rc = walk_entry(w);
            if (rc == 0)
                rc = entries_add(es, lk->name, lk->name_len, lk->hash, lk->hash_len, lk->tsize);
            if (rc < 0)
                return rc;
            continue;
        }
        unsigned bucket;
        const char *ename;
        size_t elen;
        int t = hamt_link_name(lk->name, lk->name_len, &bucket, &ename, &elen);
        if (t < 0)
            return -EIO;
        int rc;
        if (t == 1) {
            rc = walk_entry(w);
            if (rc == 0)
                rc = entries_add(es, ename, elen, lk->hash, lk->hash_len, lk->tsize);
        } else {
            struct loaded sub;
            rc = walk_shard(ns, w, lk, &sub);
            if (rc > 0) {
                rc = collect_entries(ns, &sub, depth + 1, w, es);
                loaded_free(&sub);
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct hamt_entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

struct shard_put_ctx {
    struct node_store *ns;
    unsigned version;
};

static int shard_put(void *ud, const uint8_t *block, size_t len, struct cid *out)
{
    struct shard_put_ctx *sp = ud;
    int rc = block_cid(sp->version, CID_CODEC_DAG_PB, block, len, out);
    return rc < 0 ? rc : stage_put(sp->ns, out, block, len, false);
}

/* A plain directory block over es (sorted by cmp_entry), with the UnixFS data given. */
#define ENC_KEEP_BYTES (1u << 20) /* scratch kept between changes, at most (each) */

static int encode_basic(struct node_store *ns, unsigned version, struct entries *es,
                        const uint8_t *data, size_t data_len, struct cid *out, uint64_t *tsize)
{
    if (ns->enc_links_cap < es->n) {
        size_t cap = es->n < 64 ? 64 : es->n + es->n / 4;
        struct pb_link_out *l = realloc(ns->enc_links, cap * sizeof *l);
        if (!l)
            return -ENOMEM;
        ns->enc_links = l;
        ns->enc_links_cap = cap;
    }
    struct pb_link_out *links = ns->enc_links;
    struct bytebuf *b = &ns->enc_buf;
    uint64_t total = 0;
    b->len = 0;
    for (size_t i = 0; i < es->n; i++) {
        const struct hamt_entry *e = &es->e[i];
        links[i] = (struct pb_link_out){.hash = e->cid,
                                        .hash_len = e->cid_len,
                                        .name = e->name,
                                        .name_len = e->name_len,
                                        .tsize = e->tsize};
        total += e->tsize;
    }
    int rc = dagpb_encode(links, es->n, data, data_len, true, b);
    if (rc == 0)
        rc = stage_block(ns, version, b, out);
    if (rc == 0)
        *tsize = total + b->len;
    if (b->cap > ENC_KEEP_BYTES)
        bytebuf_free(b);
    if (ns->enc_links_cap * sizeof *links > ENC_KEEP_BYTES) {
        free(ns->enc_links);
        ns->enc_links = NULL;
        ns->enc_links_cap = 0;
    }
    return rc;
}

/* ---- directories changed lately ----
 * Each name made, replaced or removed rewrites its directory: dir_set read the directory's
 * block, decoded it, copied and sorted its entries, to encode them again with one changed. In
 * cp -r of small files that was a quarter of the daemon's CPU, most of it in malloc. So the
 * entries of the plain directories dir_set makes are kept here, sorted, under the new CID: the
 * next change of that directory (the next file copied into it, its parent's rewrite) starts
 * from them. A CID names its bytes: a slot never goes stale, and one that is not found only
 * costs the read. A slot taken out (dc_take) is its taker's; DC_SLOTS x DC_SLOT_BYTES bounds
 * the memory (a larger directory is not kept). */
#define DC_SLOT_BYTES (1u << 20) /* a slot's entries, their names and CIDs, malloc's overhead */

struct dir_meta {
    const uint8_t *data; /* the block's PBNode.Data (the UnixFS fields) */
    size_t data_len;
    bool has_mode, has_mtime;
    uint32_t mode;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
};

struct dc_slot {
    bool used;
    uint64_t tick; /* dc_tick when put: the smallest goes first */
    struct cid cid;
    struct entries es; /* sorted by cmp_entry */
    struct dir_meta m; /* m.data: malloc'd copy */
};

static void dc_slot_free(struct dc_slot *d)
{
    entries_free(&d->es);
    free((void *)d->m.data);
    memset(d, 0, sizeof *d);
}

/* c's slot, or NULL (dc_lock held, ns->dc not NULL). */
static struct dc_slot *dc_slot_of(struct node_store *ns, const struct cid *c)
{
    for (unsigned i = 0; i < DC_SLOTS; i++)
        if (ns->dc[i].used && cid_equal(&ns->dc[i].cid, c))
            return &ns->dc[i];
    return NULL;
}

/* Take c's slot out of the cache into *out: true if it was there. */
static bool dc_take(struct node_store *ns, const struct cid *c, struct dc_slot *out)
{
    if (!ns->dc)
        return false;
    pthread_mutex_lock(&ns->dc_lock);
    struct dc_slot *d = dc_slot_of(ns, c);
    if (d) {
        *out = *d;
        memset(d, 0, sizeof *d);
    }
    pthread_mutex_unlock(&ns->dc_lock);
    bool found = d != NULL;
    atomic_fetch_add(found ? &ns->dc_hits : &ns->dc_misses, 1);
    return found;
}

/* Keep directory c (its sorted entries es and meta m) for its next change. Takes es in every
 * case (*es is emptied); copies m->data. */
static void dc_put(struct node_store *ns, const struct cid *c, struct entries *es,
                   const struct dir_meta *m)
{
    struct dc_slot in = {.used = true, .cid = *c, .es = *es, .m = *m}, old = {0};
    memset(es, 0, sizeof *es);
    in.m.data = NULL;
    if (ns->dc && m->data_len && (in.m.data = malloc(m->data_len)) != NULL)
        memcpy((void *)in.m.data, m->data, m->data_len);
    if (!ns->dc || (m->data_len && !in.m.data)) {
        dc_slot_free(&in);
        return;
    }
    pthread_mutex_lock(&ns->dc_lock);
    struct dc_slot *v = &ns->dc[0];
    for (unsigned i = 0; i < DC_SLOTS; i++) {
        struct dc_slot *d = &ns->dc[i];
        if (!d->used || cid_equal(&d->cid, c)) {
            v = d;
            break;
        }
        if (d->tick < v->tick)
            v = d;
    }
    old = *v;
    in.tick = ++ns->dc_tick;
    *v = in;
    pthread_mutex_unlock(&ns->dc_lock);
    dc_slot_free(&old);
}

/* Where name goes in sorted es: its index, and whether an entry of that name is there. */
static size_t entries_find(const struct entries *es, const char *name, size_t nlen, bool *found)
{
    struct hamt_entry key = {.name = name, .name_len = nlen};
    size_t lo = 0, hi = es->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_entry(&es->e[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < es->n && cmp_entry(&es->e[lo], &key) == 0;
    return lo;
}

/* Find name in directory c if c is in the cache: 0 (*out set), -ENOENT or -EIO as dir_find
 * would say; 1: c is not in the cache. */
static int dc_find(struct node_store *ns, const struct cid *c, const char *name, size_t len,
                   struct cid *out)
{
    int rc = 1;
    if (!ns->dc)
        return 1;
    pthread_mutex_lock(&ns->dc_lock);
    const struct dc_slot *d = dc_slot_of(ns, c);
    if (d) {
        bool found;
        size_t at = entries_find(&d->es, name, len, &found);
        rc = !found ? -ENOENT
             : cid_from_bytes(d->es.e[at].cid, d->es.e[at].cid_len, out) < 0 ? -EIO
                                                                              : 0;
    }
    pthread_mutex_unlock(&ns->dc_lock);
    return rc;
}

/* The estimate kept for HAMT directory c: true with it in *out. */
static bool est_get(struct node_store *ns, const struct cid *c, uint64_t *out)
{
    bool found = false;
    pthread_mutex_lock(&ns->dc_lock);
    for (unsigned i = 0; i < DC_SLOTS && !found; i++)
        if (ns->est[i].tick && cid_equal(&ns->est[i].cid, c)) {
            *out = ns->est[i].estimate;
            found = true;
        }
    pthread_mutex_unlock(&ns->dc_lock);
    return found;
}

/* Keep estimate for c, in old's slot if old has one (the directory old became c: one slot per
 * directory being edited), else in a free or the least recently used one. */
static void est_put(struct node_store *ns, const struct cid *old, const struct cid *c,
                    uint64_t estimate)
{
    pthread_mutex_lock(&ns->dc_lock);
    struct est_slot *v = &ns->est[0];
    for (unsigned i = 0; i < DC_SLOTS; i++) {
        struct est_slot *e = &ns->est[i];
        if (e->tick && old && cid_equal(&e->cid, old)) {
            v = e;
            break;
        }
        if (e->tick < v->tick)
            v = e;
    }
    for (unsigned i = 0; i < DC_SLOTS; i++)
        if (ns->est[i].tick && cid_equal(&ns->est[i].cid, c))
            v = &ns->est[i]; /* c's own slot is updated, never doubled */
    *v = (struct est_slot){.cid = *c, .estimate = estimate, .tick = ++ns->dc_tick};
    pthread_mutex_unlock(&ns->dc_lock);
}

/* hamt_set's reads, with shard_put's context: through the directory block cache. */
static int shard_get(void *ud, const struct cid *c, uint8_t **block, size_t *len)
{
    struct shard_put_ctx *sp = ud;
    struct loaded l;
    int rc = load(sp->ns, c, &l);
    if (rc < 0)
        return rc;
    if (!l.raw)
        dagpb_node_free(&l.pb);
    *block = l.block;
    *len = l.len;
    return 0;
}

/* dir_set on a HAMT directory l (dcid) that stays one: only the shards on name's path change.
 * Only a HAMT this store made (dir_set's rebuild or an edit of one: it has an estimate kept)
 * is edited so: hamt_set keeps what it does not touch, and one from elsewhere (the node, a
 * gateway, an older mount) may be built otherwise (sub-shards of another CID version, a shard
 * linked from two buckets), which only the whole rebuild makes canonical. Returns 0, -ENOENT,
 * -errno, or HAMT_REBUILD: dir_set's whole rebuild decides (a HAMT not known here, one that
 * may go back to a plain directory, one hamt_set does not edit). */
static int hamt_change(struct node_store *ns, const struct cid *dcid, const struct loaded *l,
                       const char *name, size_t nlen, const struct cid *child,
                       uint64_t child_tsize, struct cid *out, uint64_t *out_tsize)
{
    uint8_t hash[CID_BIN_MAX];
    int hl = 0;
    uint64_t estimate;
    if (!est_get(ns, dcid, &estimate))
        return HAMT_REBUILD;
    if (child && (hl = cid_to_bytes(child, hash, sizeof hash)) < 0)
        return hl;
    struct shard_put_ctx sp = {.ns = ns, .version = dcid->version};
    int64_t change = 0;
    struct cid next;
    uint64_t next_tsize;
    int rc = hamt_set(&l->pb, &l->u, name, nlen, child ? hash : NULL, (size_t)hl, child_tsize,
                      shard_get, shard_put, &sp, ns->block_est, &next, &next_tsize, &change);
    if (rc != 0)
        return rc;
    if (change < 0 &&
        (estimate < (uint64_t)-change || estimate - (uint64_t)-change <= ns->shard_bytes))
        return HAMT_REBUILD; /* it may go back to a plain directory: the whole walk says */
    est_put(ns, dcid, &next, estimate + (uint64_t)change);
    *out = next;
    *out_tsize = next_tsize;
    return 0;
}

/* A copy of directory dcid with entry name set to child (NULL: removed). The directory keeps
 * its UnixFS metadata (mode, mtime) and CID version. Like boxo's DynamicDirectory, a plain
 * directory becomes a HAMT when its estimated size (sum of name + binary CID lengths) goes
 * over the threshold, and a HAMT goes back to a plain directory when a change makes it smaller
 * and it is then at most the threshold. */
static int dir_set(struct node_store *ns, const struct cid *dcid, const char *name, size_t nlen,
                   const struct cid *child, uint64_t child_tsize, struct cid *out,
                   uint64_t *out_tsize)
{
    struct loaded l = {0};
    struct dc_slot cached = {0};
    struct entries es = {0};
    struct bytebuf data = {0};
    struct dir_meta m;
    uint8_t hash[CID_BIN_MAX];
    int hl = 0, rc = 0;
    bool was_hamt = false;
    if (dc_take(ns, dcid, &cached)) {
        es = cached.es;
        memset(&cached.es, 0, sizeof cached.es);
        m = cached.m;
    } else {
        if ((rc = load(ns, dcid, &l)) < 0)
            return rc;
        if (!is_dir_type(&l)) {
            rc = -ENOTDIR;
            goto out;
        }
        was_hamt = l.u.type == UNIXFS_HAMT_SHARD;
        if (was_hamt &&
            (rc = hamt_change(ns, dcid, &l, name, nlen, child, child_tsize, out, out_tsize)) !=
                HAMT_REBUILD)
            goto out;
        rc = 0;
        struct hamt_walk w = {0};
        rc = was_hamt ? walk_visit(&w, dcid) : 0;
        if (rc >= 0)
            rc = collect_entries(ns, &l, 0, &w, &es);
        walk_free(&w);
        if (rc < 0)
            goto out;
        if (es.n > 1)
            qsort(es.e, es.n, sizeof *es.e, cmp_entry);
        m = (struct dir_meta){.data = l.pb.data,
                              .data_len = l.pb.data_len,
                              .has_mode = l.u.has_mode,
                              .mode = l.u.mode,
                              .has_mtime = l.u.has_mtime,
                              .mtime_sec = l.u.mtime_sec,
                              .mtime_nsec = l.u.mtime_nsec};
    }
    bool found;
    size_t at = entries_find(&es, name, nlen, &found);
    int64_t change = 0;
    /* The estimate boxo makes (hamt_entry_est): with "block", of the plain directory's whole
     * block, its Data field too. */
    uint64_t estimate = ns->block_est ? hamt_dir_data_est(m.has_mode, m.mode, m.has_mtime,
                                                          m.mtime_sec, m.mtime_nsec)
                                      : 0;
    for (size_t i = 0; i < es.n; i++)
        estimate += hamt_entry_est(ns->block_est, es.e[i].name_len, es.e[i].cid_len,
                                   es.e[i].tsize);
    /* Every entry of that name goes (a hostile directory may hold several), as Kubo's
     * RemoveNodeLink does: one name, one entry afterwards. */
    size_t end = at;
    while (end < es.n && same_name(es.e[end].name, es.e[end].name_len, name, nlen)) {
        uint64_t e = hamt_entry_est(ns->block_est, es.e[end].name_len, es.e[end].cid_len,
                                    es.e[end].tsize);
        change -= (int64_t)e;
        estimate -= e;
        free((void *)es.e[end++].name);
    }
    if (end > at) {
        memmove(&es.e[at], &es.e[end], (es.n - end) * sizeof *es.e);
        es.n -= end - at;
    }
    if (!child && !found) {
        rc = -ENOENT;
        goto out;
    }
    if (child) {
        if ((hl = cid_to_bytes(child, hash, sizeof hash)) < 0) {
            rc = hl;
            goto out;
        }
        if ((rc = entries_add(&es, name, nlen, hash, (size_t)hl, child_tsize)) < 0)
            goto out;
        struct hamt_entry e = es.e[es.n - 1]; /* added last: move it to its place */
        memmove(&es.e[at + 1], &es.e[at], (es.n - 1 - at) * sizeof e);
        es.e[at] = e;
        uint64_t add = hamt_entry_est(ns->block_est, nlen, (size_t)hl, child_tsize);
        change += (int64_t)add;
        estimate += add;
    }
    bool shard = was_hamt ? change >= 0 || estimate > ns->shard_bytes : estimate > ns->shard_bytes;
    if (shard) {
        struct shard_put_ctx sp = {.ns = ns, .version = dcid->version};
        rc = hamt_build(es.e, es.n, m.has_mode, m.mode, m.has_mtime, m.mtime_sec, m.mtime_nsec,
                        shard_put, &sp, out, out_tsize);
        if (rc == 0)
            est_put(ns, dcid, out, estimate); /* its next changes edit it in place */
        goto out;
    }
    if (was_hamt) {
        struct unixfs_fields f = {.type = UNIXFS_DIRECTORY,
                                  .mode = m.mode,
                                  .has_mode = m.has_mode,
                                  .mtime_sec = m.mtime_sec,
                                  .mtime_nsec = m.mtime_nsec,
                                  .has_mtime = m.has_mtime};
        if ((rc = unixfs_encode(&f, &data)) < 0)
            goto out;
        m.data = data.p;
        m.data_len = data.len;
    }
    rc = encode_basic(ns, dcid->version, &es, m.data, m.data_len, out, out_tsize);
    /* Kept if it takes at most DC_SLOT_BYTES (names of a few bytes and short CIDs would
     * otherwise let a plain directory take several MiB) */
    if (rc == 0 && es.cap * sizeof *es.e + estimate + es.n * 32 <= DC_SLOT_BYTES)
        dc_put(ns, out, &es, &m);
out:
    bytebuf_free(&data);
    entries_free(&es);
    dc_slot_free(&cached);
    loaded_free(&l);
    return rc;
}

/* Set (child != NULL) or remove the entry at pp below directory dcid, rewriting every
 * directory on the way. pp->n must be at least 1. */
static int update_path(struct node_store *ns, const struct cid *dcid, const struct path_parts *pp,
                       size_t i, const struct cid *child, uint64_t child_tsize, struct cid *out,
                       uint64_t *out_tsize)
{
    if (i + 1 == pp->n)
        return dir_set(ns, dcid, pp->comp[i], pp->len[i], child, child_tsize, out, out_tsize);
    struct cid sub, nsub;
    uint64_t nsub_tsize;
    int rc = child_of(ns, dcid, pp->comp[i], pp->len[i], &sub);
    if (rc == 0)
        rc = update_path(ns, &sub, pp, i + 1, child, child_tsize, &nsub, &nsub_tsize);
    if (rc == 0)
        rc = dir_set(ns, dcid, pp->comp[i], pp->len[i], &nsub, nsub_tsize, out, out_tsize);
    return rc;
}

/* Replace DIR/root with c, durably (the blocks it points to must be durable already). Call
 * with commit_run held, or before the commit thread starts. */
static int write_root_file(struct node_store *ns, const struct cid *c)
{
    char cs[CID_STR_MAX], tmp[PATH_MAX], final[PATH_MAX];
    int rc, n = cid_format(c, cs, sizeof cs - 1);
    if (n < 0)
        return n;
    cs[n++] = '\n';
    snprintf(tmp, sizeof tmp, "%s/.root.tmp-XXXXXX", ns->dir);
    snprintf(final, sizeof final, "%s/root", ns->dir);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = write(fd, cs, (size_t)n) == n ? 0 : -EIO;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        log_err("cannot update %s: %s", final, strerror(-rc));
        return rc;
    }
    int dfd = open(ns->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        rc = -errno;
        log_err("fsync %s: %s", ns->dir, strerror(errno));
    }
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* Make the current root durable: every block put so far, then DIR/root. Call with commit_run
 * held. */
static int do_commit(struct node_store *ns)
{
    struct cid snap;
    /* No change is half done while the snapshot is taken and the epoch moves on. */
    pthread_mutex_lock(&ns->change_lock);
    pthread_mutex_lock(&ns->names_lock);
    snap = ns->root;
    uint64_t snap_changes = ns->taken = ns->changes;
    bool same = cid_equal(&snap, &ns->committed);
    pthread_mutex_unlock(&ns->names_lock);
    pthread_mutex_lock(&ns->stage_lock);
    uint64_t epoch = ++ns->epoch;
    pthread_mutex_unlock(&ns->stage_lock);
    pthread_mutex_unlock(&ns->change_lock);
    /* The staged blocks snap reaches go to the block store; the other blocks of snap were put
     * there before snap became the root: the sync covers them all. */
    int rc = stage_walk(ns, &snap, atomic_fetch_add(&stage_marks, 1) + 1, stage_write_one);
    if (rc == 0)
        rc = stage_write_content(ns, epoch);
    if (rc == 0)
        rc = blockstore_sync(ns->bs);
    if (rc == 0 && !same)
        rc = write_root_file(ns, &snap);
    if (rc == 0)
        stage_drop(ns, epoch, false); /* written, or replaced before snap */
    else
        stage_unwritten(ns); /* a block whose fdatasync failed is put again next time */
    pthread_mutex_lock(&ns->names_lock);
    if (rc == 0) {
        if (snap_changes > ns->durable)
            ns->durable = snap_changes;
        if (!same) {
            ns->committed = snap;
            ns->seq++;
        }
        ns->gc_wanted = true;
        pthread_cond_signal(&ns->gc_cond);
    } else {
        ns->taken = ns->durable; /* not covered after all: the next try in commit_ms */
        ns->pending_since = clock_mono_ns();
        pthread_cond_signal(&ns->commit_cond);
    }
    pthread_mutex_unlock(&ns->names_lock);
    if (rc == 0 && !same)
        atomic_fetch_add(&ns->commits, 1);
    else if (rc < 0)
        atomic_fetch_add(&ns->commit_errors, 1);
    return rc;
}

/* Free bytes on the store's disk under which a name change is refused (ENOSPC) at once, after
 * committing what is pending if it fits. The store's own content leaves STAGE_ROOM_MARGIN
 * (content_room), so only another program fills the disk this far; without this check the
 * changes made between that and the next commit (which then fails) were acknowledged and kept
 * only in memory, lost to a crash. A change writes a few blocks of at most a few hundred KiB. */
#define CHANGE_ROOM_BYTES (1u << 20)

/* The store keeps RESERVE_BYTES of its disk in DIR/reserve (made at open while there is room):
 * a commit that fails for want of room (another program filled the disk between two commits,
 * after changes were acknowledged) gives it back and commits again, so those changes are not
 * lost; commit_gate refuses new ones meanwhile. It is made again once there is room. */
#define RESERVE_BYTES (4u << 20)

static void reserve_make(struct node_store *ns)
{
    char p[PATH_MAX];
    struct statvfs vf;
    snprintf(p, sizeof p, "%s/reserve", ns->dir);
    if (statvfs(ns->dir, &vf) < 0 ||
        (uint64_t)vf.f_bavail * vf.f_frsize < 2 * RESERVE_BYTES + CHANGE_ROOM_BYTES) {
        atomic_store(&ns->reserve_missing, true); /* not now: at the next room */
        return;
    }
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        atomic_store(&ns->reserve_missing, false); /* cannot be made: not tried again */
        return;
    }
    int e = posix_fallocate(fd, 0, RESERVE_BYTES);
    if (e == EOPNOTSUPP || e == EINVAL) { /* no fallocate there: zeros take the blocks */
        static const char zeros[65536];
        e = 0;
        for (off_t off = 0; e == 0 && off < (off_t)RESERVE_BYTES; off += (off_t)sizeof zeros)
            if (pwrite(fd, zeros, sizeof zeros, off) != (ssize_t)sizeof zeros)
                e = errno ? errno : EIO;
    }
    if (e == 0 && fsync(fd) < 0)
        e = errno;
    close(fd);
    if (e != 0)
        unlink(p);
    atomic_store(&ns->reserve_missing, e != 0 && e == ENOSPC);
    if (e == 0)
        atomic_store(&ns->reserve_used, false);
}

/* do_commit, and once more with the reserve given back if it failed for want of room. Call
 * with commit_run held. */
static int commit_reserved(struct node_store *ns)
{
    int rc = do_commit(ns);
    if (rc != -ENOSPC)
        return rc;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/reserve", ns->dir);
    if (unlink(p) == 0) {
        atomic_store(&ns->reserve_missing, true);
        atomic_store(&ns->reserve_used, true);
        log_warn("%s: its disk is full: the store's reserve (%u MiB) given back to commit "
                 "the names",
                 ns->dir, RESERVE_BYTES >> 20);
        rc = do_commit(ns);
    }
    return rc;
}

/* The commit thread: commits within commit_ms of the first change not yet durable. A failed
 * commit is logged (once until one works again), kept for the next node_store_commit, and
 * retried commit_ms later. */
static void *commit_main(void *arg)
{
    struct node_store *ns = arg;
    pthread_mutex_lock(&ns->names_lock);
    while (!ns->stop) {
        if (ns->changes == ns->taken) { /* none, or all covered by a commit under way */
            pthread_cond_wait(&ns->commit_cond, &ns->names_lock);
            continue;
        }
        uint64_t due = ns->pending_since + (uint64_t)ns->commit_ms * 1000000u;
        if (clock_mono_ns() < due) {
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                                  .tv_nsec = (long)(due % 1000000000u)};
            pthread_cond_timedwait(&ns->commit_cond, &ns->names_lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&ns->names_lock);
        pthread_mutex_lock(&ns->commit_run);
        int rc = commit_reserved(ns);
        pthread_mutex_unlock(&ns->commit_run);
        pthread_mutex_lock(&ns->names_lock);
        if (rc < 0) {
            if (!ns->commit_err)
                ns->commit_err = rc;
            if (!ns->commit_failing)
                log_err("%s: cannot commit the names: %s (retrying every %u ms)", ns->dir,
                        strerror(-rc), ns->commit_ms);
        } else if (ns->commit_failing) {
            log_info("%s: the names commit again", ns->dir);
        }
        ns->commit_failing = rc < 0;
    }
    pthread_mutex_unlock(&ns->names_lock);
    return NULL;
}

static void wake_committer(struct node_store *ns)
{
    pthread_mutex_lock(&ns->names_lock);
    ns->pending_since = 0;
    pthread_cond_signal(&ns->commit_cond);
    pthread_mutex_unlock(&ns->names_lock);
}

/* ---- collection (see the top of this file) ---- */

/* A stack of CIDs still to mark. */
struct cid_stack {
    struct cid *v;
    size_t n, cap;
};

static int cid_push(struct cid_stack *st, const struct cid *c)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 256;
        struct cid *v = realloc(st->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        st->v = v;
        st->cap = cap;
    }
    st->v[st->n++] = *c;
    return 0;
}

/* The store keeps sha2-256 blocks only; dag-pb ones are followed (raw blocks, and other codecs,
 * have no links we follow). */
static bool gc_followed(const struct cid *c)
{
    return c->mh_code == MH_SHA2_256 && c->codec == CID_CODEC_DAG_PB;
}

/* Mark c live and push it to be followed, once per walk. The live set holds the block's key
 * (for the sweep) and, for a block followed as dag-pb, a second key: the raw CID of the same
 * bytes (one block file) must not keep its dag-pb CID from being followed. A stray key that
 * equals another block's keeps that block: never the other way round. */
#define GC_FOLLOW_SALT 0x9e3779b97f4a7c15ull

static int gc_visit(struct blockstore_keyset *live, struct cid_stack *st, const struct cid *c)
{
    if (c->mh_code != MH_SHA2_256)
        return 0; /* not a block of ours */
    uint64_t k = blockstore_key(c);
    int rc = blockstore_keyset_add(live, gc_followed(c) ? k ^ GC_FOLLOW_SALT : k);
    if (rc <= 0)
        return rc;
    if (!gc_followed(c))
        return 0;
    rc = blockstore_keyset_add(live, k);
    return rc < 0 ? rc : cid_push(st, c);
}

/* Visit the links of dag-pb block b. A block that does not decode has no links for any reader. */
static int visit_links(struct blockstore_keyset *live, struct cid_stack *st, const uint8_t *b,
                       size_t len)
{
    struct dagpb_node pb;
    if (dagpb_decode(b, len, &pb) < 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < pb.nlinks; i++) {
        struct cid cc;
        if (cid_from_bytes(pb.links[i].hash, pb.links[i].hash_len, &cc) == 0)
            rc = gc_visit(live, st, &cc);
    }
    dagpb_node_free(&pb);
    return rc;
}

/* Follow the staged blocks on todo (visited already) in memory; the others go to frontier.
 * Call with commit_run held: staged blocks are dropped only by a commit. */
static int gc_mark_staged(struct node_store *ns, struct cid_stack *todo,
                          struct blockstore_keyset *live, struct cid_stack *frontier)
{
    int rc = 0;
    while (rc == 0 && todo->n) {
        struct cid c = todo->v[--todo->n];
        uint8_t *b;
        size_t len;
        if (!gc_followed(&c))
            continue;
        if (stage_get(ns, &c, &b, &len) < 0) {
            rc = cid_push(frontier, &c);
            continue;
        }
        rc = visit_links(live, todo, b, len);
        free(b);
    }
    return rc;
}

/* Follow the blocks on todo (visited already) in the block store. No fetch: a block not here
 * is the node's, or a staged block dropped unwritten (replaced before a commit). */
static int gc_mark_stored(struct node_store *ns, struct cid_stack *todo,
                          struct blockstore_keyset *live)
{
    int rc = 0;
    for (unsigned i = 0; rc == 0 && todo->n; i++) {
        struct cid c = todo->v[--todo->n];
        if ((i & 255) == 0 && atomic_load(&ns->gc_abort))
            return -ECANCELED;
        if (!gc_followed(&c) || blockstore_pb_leaf(ns->bs, &c) != 0)
            continue; /* 1: no links; -ENOENT: not here */
        uint8_t *b;
        size_t len;
        int g = stage_get(ns, &c, &b, &len) == 0 ? 0 : blockstore_get(ns->bs, &c, &b, &len);
        if (g == -ENOENT)
            continue;
        if (g < 0) {
            /* Unreadable (corrupt): what it links cannot be told; remove nothing. */
            char cs[CID_STR_MAX];
            cid_format(&c, cs, sizeof cs);
            log_warn("%s: block %s cannot be read: no collection", ns->dir, cs);
            return g;
        }
        rc = visit_links(live, todo, b, len);
        free(b);
    }
    return rc;
}

/* The local root in the sync engine's record DIR/synced (its first line), if any. */
static bool synced_root(struct node_store *ns, struct cid *out)
{
    char p[PATH_MAX], line[CID_STR_MAX + 2];
    snprintf(p, sizeof p, "%s/synced", ns->dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n <= 0)
        return false;
    line[n] = '\0';
    size_t l = strcspn(line, "\n");
    return cid_parse(line, l, out) == 0;
}

/* One collection: mark from the live roots, sweep the rest. */
/* Evict down to 90 % of cache_max (see above), if no other thread does already. Called with no
 * store lock held. */
static void cache_evict(struct node_store *ns)
{
    if (pthread_mutex_trylock(&ns->evict_run) != 0)
        return;
    struct cid_stack todo = {0}, frontier = {0};
    struct blockstore_keyset live = {0};
    struct blockstore_evict_stats st = {0};
    struct cid c;
    uint64_t t0 = clock_mono_ns();
    pthread_mutex_lock(&ns->gc_run);
    pthread_mutex_lock(&ns->commit_run);
    pthread_mutex_lock(&ns->names_lock);
    /* Not the held roots: a held file's fetched blocks can be had again; its own blocks (a
     * file whose name was removed while open) are not fetched copies, never evicted. */
    int rc = gc_visit(&live, &todo, &ns->root);
    if (rc == 0)
        rc = gc_visit(&live, &todo, &ns->committed);
    pthread_mutex_unlock(&ns->names_lock);
    if (rc == 0 && synced_root(ns, &c))
        rc = gc_visit(&live, &todo, &c);
    if (rc == 0)
        rc = gc_mark_staged(ns, &todo, &live, &frontier);
    pthread_mutex_unlock(&ns->commit_run);
    if (rc == 0)
        rc = gc_mark_stored(ns, &frontier, &live);
    if (rc == 0) {
        pthread_mutex_lock(&ns->lru_lock);
        rc = blockstore_evict(ns->bs, &live, ns->cache_max - ns->cache_max / 10, lru_rank,
                              &ns->lru, &st);
        /* Forget what is gone (and start afresh when the map grew past what is here). */
        if (ns->lru.n > 2 * (st.kept + 16384)) {
            free(ns->lru.k);
            free(ns->lru.v);
            ns->lru = (struct lru_map){0};
        }
        pthread_mutex_unlock(&ns->lru_lock);
    }
    pthread_mutex_unlock(&ns->gc_run);
    if (rc == 0) {
        atomic_store(&ns->cache_est, st.left_bytes);
        /* When what cannot go is over the bound, wait for another tenth before trying again. */
        atomic_store(&ns->cache_trigger, st.left_bytes > ns->cache_max
                                             ? st.left_bytes + ns->cache_max / 10
                                             : ns->cache_max);
    }
    atomic_fetch_add(&ns->evict_runs, 1);
    atomic_fetch_add(&ns->evicted_blocks, st.removed);
    atomic_fetch_add(&ns->evicted_bytes, st.removed_bytes);
    uint64_t ms = (clock_mono_ns() - t0) / 1000000u;
    if (rc < 0)
        log_warn("%s: evicting fetched blocks failed: %s", ns->dir, strerror(-rc));
    else
        log_debug("%s: over the store size: %" PRIu64 " fetched blocks evicted (%" PRIu64
                  " KiB) in %" PRIu64 " ms; %" PRIu64 " KiB left, %" PRIu64 " blocks the names use",
                  ns->dir, st.removed, st.removed_bytes >> 10, ms, st.left_bytes >> 10, st.kept);
    free(todo.v);
    free(frontier.v);
    blockstore_keyset_free(&live);
    pthread_mutex_unlock(&ns->evict_run);
}

static int gc_collect(struct node_store *ns, struct node_store_gc_result *res)
{
    struct cid_stack todo = {0}, frontier = {0};
    struct blockstore_keyset live = {0};
    struct blockstore_sweep_stats sw = {0};
    struct cid c;
    int rc = 0;
    pthread_mutex_lock(&ns->gc_run);
    uint64_t t0 = clock_mono_ns(), busy_since = UINT64_MAX;
    pthread_mutex_lock(&ns->names_lock);
    for (struct busy *b = ns->busy; b; b = b->next)
        busy_since = b->since < busy_since ? b->since : busy_since;
    blockstore_young_rotate(ns->bs, (uint64_t)ns->gc_young_ms * 1000000u, busy_since);
    pthread_mutex_unlock(&ns->names_lock);
    /* No commit runs while the roots are taken and their staged blocks marked: the root a
     * commit is writing is the committed one afterwards, and no staged block goes meanwhile. */
    pthread_mutex_lock(&ns->commit_run);
    pthread_mutex_lock(&ns->names_lock);
    ns->gc_wanted = false;
    ns->gc_last = t0;
    ns->gc_again = false;
    rc = gc_visit(&live, &todo, &ns->root);
    if (rc == 0)
        rc = gc_visit(&live, &todo, &ns->committed);
    for (size_t i = 0; rc == 0 && i < ns->nholds; i++)
        rc = gc_visit(&live, &todo, &ns->holds[i]);
    pthread_mutex_unlock(&ns->names_lock);
    if (rc == 0 && synced_root(ns, &c))
        rc = gc_visit(&live, &todo, &c);
    if (rc == 0)
        rc = gc_mark_staged(ns, &todo, &live, &frontier);
    pthread_mutex_unlock(&ns->commit_run);
    if (rc == 0)
        rc = gc_mark_stored(ns, &frontier, &live);
    if (rc == 0)
        rc = blockstore_sweep(ns->bs, &live, &sw);
    uint64_t ms = (clock_mono_ns() - t0) / 1000000u;
    pthread_mutex_lock(&ns->names_lock);
    ns->gc_took = clock_mono_ns() - t0;
    if (sw.young)
        ns->gc_again = true; /* collected once they are old enough */
    pthread_mutex_unlock(&ns->names_lock);
    pthread_mutex_unlock(&ns->gc_run);
    atomic_fetch_add(&ns->gc_runs, 1);
    atomic_fetch_add(&ns->gc_blocks, sw.removed);
    atomic_fetch_add(&ns->gc_bytes, sw.removed_bytes);
    atomic_fetch_add(&ns->gc_ms, ms);
    atomic_store(&ns->gc_live, sw.live);
    if (rc < 0 && rc != -ECANCELED) {
        atomic_fetch_add(&ns->gc_errors, 1);
        log_warn("%s: collection failed after %" PRIu64 " ms: %s (%" PRIu64 " blocks removed)",
                 ns->dir, ms, strerror(-rc), sw.removed);
    } else if (sw.removed) {
        log_info("%s: collected %" PRIu64 " unused blocks (%" PRIu64 " KiB) in %" PRIu64
                 " ms; %" PRIu64 " in use, %" PRIu64 " unused but recent kept",
                 ns->dir, sw.removed, sw.removed_bytes >> 10, ms, sw.live, sw.young);
    } else {
        log_debug("%s: collection: nothing unused (%" PRIu64 " in use, %" PRIu64
                  " recent kept) in %" PRIu64 " ms",
                  ns->dir, sw.live, sw.young, ms);
    }
    if (res) {
        res->removed = sw.removed;
        res->removed_bytes = sw.removed_bytes;
        res->live = sw.live;
        res->young = sw.young;
        res->ms = ms;
    }
    free(todo.v);
    free(frontier.v);
    blockstore_keyset_free(&live);
    return rc;
}

/* The collector's thread: a collection at most every gc_interval_ms (or GC_DUTY times as long
 * as the last one took), after a commit made a new root durable (or again while young garbage
 * waits). */
#define GC_DUTY 10u
static void *gc_main(void *arg)
{
    struct node_store *ns = arg;
    pthread_mutex_lock(&ns->names_lock);
    while (!ns->stop) {
        if (!ns->gc_wanted && !ns->gc_again) {
            pthread_cond_wait(&ns->gc_cond, &ns->names_lock);
            continue;
        }
        /* At most a tenth of the time in collections, however large the store grows. */
        uint64_t gap = (uint64_t)ns->gc_interval_ms * 1000000u;
        if (gap < GC_DUTY * ns->gc_took)
            gap = GC_DUTY * ns->gc_took;
        uint64_t due = ns->gc_last + gap;
        if (ns->gc_last && clock_mono_ns() < due) {
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                                  .tv_nsec = (long)(due % 1000000000u)};
            pthread_cond_timedwait(&ns->gc_cond, &ns->names_lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&ns->names_lock);
        gc_collect(ns, NULL);
        pthread_mutex_lock(&ns->names_lock);
    }
    pthread_mutex_unlock(&ns->names_lock);
    return NULL;
}

/* Start the collector with the commit thread (same reason). Call with names_lock. */
static void start_collector(struct node_store *ns)
{
    if (ns->gc_started || ns->gc_failed || ns->gc_interval_ms == UINT_MAX)
        return;
    int rc = pthread_create(&ns->gc_thread, NULL, gc_main, ns);
    if (rc != 0) {
        ns->gc_failed = true;
        log_err("%s: cannot start the collector: %s (unused blocks stay)", ns->dir,
                strerror(rc));
        return;
    }
    ns->gc_started = true;
}

static uint64_t cur_epoch(struct node_store *ns)
{
    pthread_mutex_lock(&ns->stage_lock);
    uint64_t e = ns->epoch;
    pthread_mutex_unlock(&ns->stage_lock);
    return e;
}

/* Start the commit thread if it does not run yet. Call with names_lock. It starts with the
 * first change, not in node_store_new: a mount becomes a daemon (fork) after opening the
 * store, and a thread started before would not exist in the daemon. Without the thread
 * (pthread_create failed), changes are committed by node_store_commit and destroy only. */
static void start_committer(struct node_store *ns)
{
    start_collector(ns);
    if (ns->thread_started || ns->thread_failed)
        return;
    int rc = pthread_create(&ns->commit_thread, NULL, commit_main, ns);
    if (rc != 0) {
        ns->thread_failed = true;
        log_err("%s: cannot start the commit thread: %s (the names are committed on fsync and "
                "unmount only)", ns->dir, strerror(rc));
        return;
    }
    ns->thread_started = true;
}

/* Make next the current root if base still is (else -EAGAIN), and tell the commit thread. */
static int set_root_if(struct node_store *ns, const struct cid *base, const struct cid *next)
{
    pthread_mutex_lock(&ns->names_lock);
    if (!cid_equal(&ns->root, base)) {
        pthread_mutex_unlock(&ns->names_lock);
        return -EAGAIN;
    }
    start_committer(ns);
    ns->root = *next;
    /* The first change no commit has begun to cover: the commit thread has commit_ms. */
    if (ns->changes++ == ns->taken) {
        ns->pending_since = clock_mono_ns();
        pthread_cond_signal(&ns->commit_cond);
    }
    pthread_mutex_unlock(&ns->names_lock);
    atomic_fetch_add(&ns->name_changes, 1);
    return 0;
}

static void get_root(struct node_store *ns, struct cid *out)
{
    pthread_mutex_lock(&ns->names_lock);
    *out = ns->root;
    pthread_mutex_unlock(&ns->names_lock);
}

/* A name change: computes *out, the new root, from root (holding change_lock). */
typedef int (*change_fn)(struct node_store *ns, const struct cid *root, void *arg,
                         struct cid *out);

/* While the names cannot be committed (a full disk, a failing one), a name change would live
 * only in memory, and an unmount or a crash would lose it with no program told. So a change
 * first commits what is pending itself, and fails with that commit's error (ENOSPC) while it
 * fails: creat, mkdir, close, rename and rm say so, and work again once there is room. */
static int commit_now(struct node_store *ns);

static int commit_gate(struct node_store *ns)
{
    pthread_mutex_lock(&ns->names_lock);
    bool failing = ns->commit_failing;
    pthread_mutex_unlock(&ns->names_lock);
    if (failing)
        return commit_now(ns);
    /* Once the reserve was given back, its room is not for new changes: they wait until
     * there is room for it again. */
    uint64_t need = CHANGE_ROOM_BYTES + (atomic_load(&ns->reserve_used) ? RESERVE_BYTES : 0);
    struct statvfs vf;
    if (statvfs(ns->dir, &vf) < 0 || (uint64_t)vf.f_bavail * vf.f_frsize >= need) {
        if (atomic_exchange(&ns->room_low_logged, false))
            log_info("%s: room on its disk again: name changes work", ns->dir);
        if (atomic_load(&ns->reserve_missing))
            reserve_make(ns);
        return 0; /* room (or cannot tell: the commit says) */
    }
    int rc = commit_now(ns); /* what was acknowledged: durable if it still fits */
    if (!atomic_exchange(&ns->room_low_logged, true))
        log_err("%s: less than %u MiB free on its disk: name changes fail with ENOSPC until "
                "there is room%s",
                ns->dir, (unsigned)(need >> 20),
                rc < 0 ? " (and the last ones are not committed yet)" : "");
    return -ENOSPC;
}

/* A change that found the root replaced under it (while it fetched a block) starts again;
 * each try that loses fetched a block, so this many means something keeps racing it. */
#define CHANGE_MAX_TRIES 64

/* Run fn on the current root and install its result. Changes are serialized by change_lock,
 * which a fetch lets go of (fetch_block): the root is replaced only if it is still the one fn
 * started from, else fn runs again on the new one. */
static int run_change(struct node_store *ns, change_fn fn, void *arg)
{
    struct node_store *outer = tls_changing; /* a change made from a fetch hook */
    int rc = outer ? 0 : commit_gate(ns);
    if (rc < 0)
        return rc;
    rc = -EAGAIN;
    struct busy busy;
    busy_begin(ns, &busy);
    for (unsigned tries = 0; rc == -EAGAIN && tries < CHANGE_MAX_TRIES; tries++) {
        struct cid base, next;
        pthread_mutex_lock(&ns->change_lock);
        get_root(ns, &base);
        uint64_t epoch = cur_epoch(ns);
        tls_changing = ns;
        rc = fn(ns, &base, arg, &next);
        tls_changing = outer;
        if (rc == 0 && cur_epoch(ns) != epoch)
            rc = -EAGAIN; /* a commit began while fn fetched: its blocks may be dropped */
        else if (rc == 0)
            rc = set_root_if(ns, &base, &next);
        else if (rc == -EAGAIN)
            rc = -EIO; /* fn's own EAGAIN (from a fetch) must not look like a lost race */
        pthread_mutex_unlock(&ns->change_lock);
    }
    busy_end(ns, &busy);
    return rc;
}

static int mfs_resolve(struct node_store *ns, const char *path, struct cid *out)
{
    struct path_parts pp;
    struct cid root;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    get_root(ns, &root);
    return resolve(ns, &root, &pp, pp.n, out);
}

static int store_mfs_stat(struct node *base, const char *path, struct node_stat *out,
                          struct cid *cid)
{
    memset(out, 0, sizeof *out);
    int rc = mfs_resolve(to_store(base), path, cid);
    return rc < 0 ? rc : store_stat(base, cid, out);
}

bool node_store_here_only(bool on)
{
    bool was = tls_here_only;
    tls_here_only = on;
    return was;
}

static int store_mfs_stat_here(struct node *base, const char *path, struct node_stat *out,
                               struct cid *cid)
{
    bool outer = tls_here_only;
    tls_here_only = true;
    int rc = store_mfs_stat(base, path, out, cid);
    tls_here_only = outer;
    return rc;
}

static int store_mfs_list(struct node *base, const char *path, node_entry_fn fn, void *ud)
{
    struct cid c;
    int rc = mfs_resolve(to_store(base), path, &c);
    return rc < 0 ? rc : store_list(base, &c, fn, ud);
}

/* The parent of pp's last component (under root) must be a directory: -ENOENT/-ENOTDIR
 * otherwise. Sets *exists when the last component is there (and *existing to it). */
static int check_parent(struct node_store *ns, const struct cid *root, const struct path_parts *pp,
                        bool *exists, struct cid *existing)
{
    struct cid parent;
    int rc = resolve(ns, root, pp, pp->n - 1, &parent);
    if (rc < 0)
        return rc;
    rc = child_of(ns, &parent, pp->comp[pp->n - 1], pp->len[pp->n - 1], existing);
    *exists = rc == 0;
    return rc == -ENOENT ? 0 : rc;
}

static bool last_name_ok(const struct path_parts *pp)
{
    return node_name_ok(pp->comp[pp->n - 1], pp->len[pp->n - 1]);
}

/* path split for a call that names a new entry: at_root (-errno) when path is the root,
 * -EINVAL when its last name is not one a directory may hold. */
static int split_entry_path(const char *path, struct path_parts *pp, int at_root)
{
    int rc = split_path(path, pp);
    if (rc < 0)
        return rc;
    if (pp->n == 0)
        return at_root;
    return last_name_ok(pp) ? 0 : -EINVAL;
}

struct link_args {
    const struct path_parts *pp;
    const struct cid *child;
    uint64_t tsize;
};

static int link_change(struct node_store *ns, const struct cid *root, void *arg, struct cid *out)
{
    struct link_args *a = arg;
    struct cid existing;
    uint64_t rts;
    bool exists;
    int rc = check_parent(ns, root, a->pp, &exists, &existing);
    if (rc == 0 && exists)
        rc = -EEXIST;
    if (rc == 0)
        rc = stage_touch(ns, a->child);
    if (rc == 0)
        rc = update_path(ns, root, a->pp, 0, a->child, a->tsize, out, &rts);
    return rc;
}

/* Link child (tsize known) at pp, which must not exist. */
static int link_new(struct node_store *ns, const struct path_parts *pp, const struct cid *child,
                    uint64_t tsize)
{
    struct link_args a = {.pp = pp, .child = child, .tsize = tsize};
    return run_change(ns, link_change, &a);
}

static int empty_dir(struct node_store *ns, struct cid *out, uint64_t *tsize)
{
    static const uint8_t block[] = {0x0a, 0x02, 0x08, 0x01}; /* PBNode{Data: UnixFS{Dir}} */
    struct bytebuf b = {.p = (uint8_t *)block, .len = sizeof block};
    *tsize = sizeof block;
    return stage_block(ns, ns->defaults.cid_version, &b, out);
}

static int store_mfs_mkdir(struct node *base, const char *path)
{
    struct node_store *ns = to_store(base);
    struct path_parts pp;
    struct cid d;
    uint64_t ts;
    int rc = split_entry_path(path, &pp, -EEXIST);
    if (rc < 0)
        return rc;
    rc = empty_dir(ns, &d, &ts);
    return rc < 0 ? rc : link_new(ns, &pp, &d, ts);
}

static int store_mfs_link(struct node *base, const struct cid *c, const char *path)
{
    struct node_store *ns = to_store(base);
    struct path_parts pp;
    struct loaded l;
    uint64_t ts;
    int rc = split_entry_path(path, &pp, -EEXIST);
    if (rc < 0)
        return rc;
    rc = load(ns, c, &l); /* offline: the content must be here */
    if (rc < 0)
        return rc;
    rc = block_tsize(c->codec, l.block, l.len, &ts);
    loaded_free(&l);
    return rc < 0 ? -EIO : link_new(ns, &pp, c, ts);
}

/* Kind of c and whether it is a directory with entries. */
static int kind_of(struct node_store *ns, const struct cid *c, bool *is_dir, bool *nonempty,
                   uint64_t *tsize)
{
    struct loaded l;
    struct attr_slot a;
    if (attr_get(ns, c, &a)) {
        *is_dir = a.kind == NODE_DIR;
        *nonempty = a.nonempty;
        *tsize = a.tsize;
        return 0;
    }
    bool from_disk;
    uint64_t gen;
    int rc = load_at(ns, c, &l, true, &from_disk, &gen);
    if (rc < 0)
        return rc;
    *is_dir = is_dir_type(&l);
    *nonempty = *is_dir && l.pb.nlinks > 0;
    rc = block_tsize(c->codec, l.block, l.len, tsize) < 0 ? -EIO : 0;
    if (rc == 0 && from_disk)
        attr_note(ns, c, &l, NULL, gen);
    loaded_free(&l);
    return rc;
}

struct rm_args {
    const struct path_parts *pp;
    bool recursive;
};

static int rm_change(struct node_store *ns, const struct cid *root, void *arg, struct cid *out)
{
    struct rm_args *a = arg;
    struct cid target;
    bool is_dir, nonempty;
    uint64_t ts;
    int rc = resolve(ns, root, a->pp, a->pp->n, &target);
    if (rc == 0)
        rc = kind_of(ns, &target, &is_dir, &nonempty, &ts);
    if (rc == 0 && is_dir && !a->recursive)
        rc = -EISDIR;
    if (rc == 0)
        rc = update_path(ns, root, a->pp, 0, NULL, 0, out, &ts);
    return rc;
}

static int store_mfs_rm(struct node *base, const char *path, bool recursive)
{
    struct path_parts pp;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    if (pp.n == 0)
        return -EBUSY; /* the root cannot go */
    struct rm_args a = {.pp = &pp, .recursive = recursive};
    return run_change(to_store(base), rm_change, &a);
}

static bool is_prefix(const struct path_parts *a, const struct path_parts *b)
{
    if (a->n > b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_name(a->comp[i], a->len[i], b->comp[i], b->len[i]))
            return false;
    return true;
}

struct mv_args {
    const struct path_parts *sp, *dp;
};

static int mv_change(struct node_store *ns, const struct cid *root, void *arg, struct cid *out)
{
    struct mv_args *a = arg;
    struct cid scid, dcid, r1;
    bool sdir, snonempty, exists = false;
    uint64_t sts, ts;
    int rc = resolve(ns, root, a->sp, a->sp->n, &scid);
    if (rc == 0)
        rc = kind_of(ns, &scid, &sdir, &snonempty, &sts);
    if (rc == 0)
        rc = check_parent(ns, root, a->dp, &exists, &dcid);
    if (rc == 0 && exists) {
        bool ddir, dnonempty;
        rc = kind_of(ns, &dcid, &ddir, &dnonempty, &ts);
        if (rc == 0 && ddir && !sdir)
            rc = -EISDIR;
        else if (rc == 0 && !ddir && sdir)
            rc = -ENOTDIR;
        else if (rc == 0 && dnonempty)
            rc = -ENOTEMPTY;
    }
    if (rc == 0)
        rc = update_path(ns, root, a->sp, 0, NULL, 0, &r1, &ts);
    if (rc == 0)
        rc = update_path(ns, &r1, a->dp, 0, &scid, sts, out, &ts);
    return rc;
}

static int store_mfs_mv(struct node *base, const char *src, const char *dst)
{
    struct path_parts sp, dp;
    int rc = split_path(src, &sp);
    if (rc == 0)
        rc = split_path(dst, &dp);
    if (rc < 0)
        return rc;
    if (sp.n == 0 || dp.n == 0)
        return -EBUSY;
    if (!last_name_ok(&dp))
        return -EINVAL;
    if (is_prefix(&sp, &dp))
        return sp.n == dp.n ? 0 : -EINVAL; /* onto itself / into its own subtree */
    struct mv_args a = {.sp = &sp, .dp = &dp};
    return run_change(to_store(base), mv_change, &a);
}

/* The mode that no stored mode means: 0755 for directories, 0644 for everything else. */
static uint32_t default_mode(const struct loaded *l)
{
    return is_dir_type(l) ? 0755 : 0644;
}

/* Whether the mount imports files under CID c (CIDv1) with raw leaves. Such a file's leaves are
 * raw only while it stores no mode and no time: Kubo's add turns raw leaves off with
 * --preserve-mode or --preserve-mtime, and so does the writer (writer.c). */
static bool imports_raw_leaves(struct node_store *ns, const struct cid *c, size_t *chunk)
{
    struct import_opts io;
    if (c->version != 1 || add_settings(ns, NULL, &io) < 0)
        return false;
    *chunk = io.chunk_size;
    return io.cid_version == 1 && io.raw_leaves;
}

/* Whether the mount's import makes one raw block of a file leaf f (under CID c): CIDv1 with raw
 * leaves, and the bytes fit in one chunk. */
static bool imports_raw_leaf(struct node_store *ns, const struct cid *c,
                             const struct unixfs_fields *f)
{
    size_t chunk;
    return imports_raw_leaves(ns, c, &chunk) && f->data_len <= chunk &&
           (!f->has_filesize || f->filesize == f->data_len) && f->nblocksizes == 0;
}

#define RELEAF_DEPTH 16 /* a file's tree: 174 links a node make 4 levels for 1 TiB */
#define CID_BYTES_MAX (1 + 9 + CID_MAX_MH)

/* The file DAG under c with its leaves in the other form (CIDv1): to_raw, dag-pb File leaves
 * that store nothing but bytes become raw blocks of those bytes; else raw leaves become dag-pb
 * File leaves, as the importer makes them with raw leaves off. The nodes above keep their
 * UnixFS fields (the same bytes in the same chunks) and get the new links: the DAG ipfs add
 * makes of the same bytes with the other setting. *out and *tsize: the new node. */
static int releaf(struct node_store *ns, const struct cid *c, bool to_raw, unsigned depth,
                  struct cid *out, uint64_t *tsize)
{
    struct loaded l;
    struct unixfs_fields f;
    uint64_t *bs = NULL;
    struct pb_link_out *links = NULL;
    uint8_t(*hb)[CID_BYTES_MAX] = NULL;
    struct bytebuf d = {0}, b = {0};
    if (depth > RELEAF_DEPTH)
        return -EIO;
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (l.raw || l.pb.nlinks == 0) {
        bool plain = !l.raw && (l.u.type == UNIXFS_FILE || l.u.type == UNIXFS_RAW) &&
                     !l.u.has_mode && !l.u.has_mtime && l.u.nblocksizes == 0 &&
                     (!l.u.has_filesize || l.u.filesize == l.u.data_len);
        if (l.raw == to_raw || (to_raw && !plain)) {
            *out = *c; /* already in that form, or more than bytes: kept */
            rc = block_tsize(c->codec, l.block, l.len, tsize) < 0 ? -EIO : 0;
        } else if (to_raw) {
            static const uint8_t none[1];
            const uint8_t *bytes = l.u.data_len ? l.u.data : none;
            rc = block_cid(1, CID_CODEC_RAW, bytes, l.u.data_len, out);
            if (rc == 0)
                rc = stage_put_content(ns, out, bytes, l.u.data_len);
            *tsize = l.u.data_len;
        } else {
            f = (struct unixfs_fields){.type = UNIXFS_FILE,
                                       .data = l.block,
                                       .data_len = l.len,
                                       .has_data = l.len > 0,
                                       .filesize = l.len,
                                       .has_filesize = true};
            rc = unixfs_encode(&f, &d);
            if (rc == 0)
                rc = dagpb_encode(NULL, 0, d.p, d.len, true, &b);
            if (rc == 0)
                rc = block_cid(1, CID_CODEC_DAG_PB, b.p, b.len, out);
            if (rc == 0)
                rc = stage_put_content(ns, out, b.p, b.len);
            *tsize = b.len;
        }
        goto out;
    }
    if (l.u.type != UNIXFS_FILE) {
        rc = -EIO; /* a file's tree holds file nodes only */
        goto out;
    }
    if ((rc = unixfs_fields_from(&l.u, l.pb.data, l.pb.data_len, &f, &bs)) < 0)
        goto out;
    size_t n = l.pb.nlinks;
    if (!(links = calloc(n, sizeof *links)) || !(hb = calloc(n, sizeof *hb))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct dagpb_link *lk = &l.pb.links[i];
        struct cid child, nc;
        uint64_t ts = 0;
        rc = cid_from_bytes(lk->hash, lk->hash_len, &child) < 0 ? -EIO : 0;
        if (rc == 0)
            rc = releaf(ns, &child, to_raw, depth + 1, &nc, &ts);
        int hl = rc == 0 ? cid_to_bytes(&nc, hb[i], sizeof hb[i]) : 0;
        if (hl < 0)
            rc = -EIO;
        links[i] = (struct pb_link_out){.hash = hb[i],
                                        .hash_len = (size_t)hl,
                                        .name = lk->name ? lk->name : "",
                                        .name_len = lk->name_len,
                                        .tsize = ts};
    }
    if (rc == 0)
        rc = stage_node(ns, 1, &f, links, n, out, tsize);
out:
    bytebuf_free(&d);
    bytebuf_free(&b);
    free(links);
    free(hb);
    free(bs);
    loaded_free(&l);
    return rc;
}

/* Whether the first leaf of the file whose node (with links) is pb is a raw block: *raw. Reads
 * the leftmost path only. 0, or -errno. */
static int first_leaf_raw(struct node_store *ns, const struct dagpb_node *pb, bool *raw)
{
    struct cid c;
    if (cid_from_bytes(pb->links[0].hash, pb->links[0].hash_len, &c) < 0)
        return -EIO;
    for (unsigned depth = 0; depth <= RELEAF_DEPTH; depth++) {
        if (c.codec == CID_CODEC_RAW) {
            *raw = true;
            return 0;
        }
        struct loaded l;
        int rc = load(ns, &c, &l);
        if (rc < 0)
            return rc;
        bool leaf = l.raw || l.pb.nlinks == 0;
        *raw = l.raw;
        rc = leaf ? 0 : cid_from_bytes(l.pb.links[0].hash, l.pb.links[0].hash_len, &c) < 0 ? -EIO : 1;
        loaded_free(&l);
        if (rc <= 0)
            return rc;
    }
    return -EIO;
}

/* A copy of the node c with UnixFS 1.5 metadata set; a raw block becomes a dag-pb File leaf,
 * and a dag-pb leaf that stores nothing more the raw block (imports_raw_leaf); a file that
 * starts or stops storing metadata on a raw-leaves mount has its leaves changed (releaf).
 * Setting the default mode (default_mode) removes the stored mode instead of storing it, as
 * js-ipfs does and as fs.c never stores it on create, mkdir or after a rewrite: a file that
 * rsync or cp -p chmods to 0644 keeps the CID of its content (and a raw leaf stays raw). */
static int with_meta(struct node_store *ns, const struct cid *c, const uint32_t *mode,
                     const struct timespec *mtime, struct cid *out, uint64_t *tsize)
{
    struct loaded l;
    struct unixfs_fields f;
    uint64_t *bs = NULL;
    struct pb_link_out *links = NULL;
    uint8_t(*hb)[CID_BYTES_MAX] = NULL;
    int rc = load(ns, c, &l);
    if (rc < 0)
        return rc;
    if (l.raw) {
        f = (struct unixfs_fields){.type = UNIXFS_FILE,
                                   .data = l.block,
                                   .data_len = l.len,
                                   .has_data = l.len > 0,
                                   .filesize = l.len,
                                   .has_filesize = true};
    } else if ((rc = unixfs_fields_from(&l.u, l.pb.data, l.pb.data_len, &f, &bs)) < 0) {
        goto out;
    }
    bool had_meta = f.has_mode || f.has_mtime;
    if (mode) {
        f.mode = *mode & 07777;
        /* Mode 0 stores none, as Kubo's files/chmod 0000 and add --preserve-mode of a 000
         * file do (UnixFS 1.5 reads a missing mode as the default). */
        f.has_mode = f.mode != default_mode(&l) && f.mode != 0;
    }
    if (mtime) {
        f.mtime_sec = mtime->tv_sec;
        f.mtime_nsec = (uint32_t)mtime->tv_nsec; /* encoded only when not 0, as Kubo does */
        f.has_mtime = true;
    }
    if (l.raw && !f.has_mode && !f.has_mtime) {
        *out = *c;
        rc = block_tsize(c->codec, l.block, l.len, tsize) < 0 ? -EIO : 0;
        goto out;
    }
    if (!l.raw && had_meta && !f.has_mode && !f.has_mtime && l.pb.nlinks == 0 &&
        f.type == UNIXFS_FILE && imports_raw_leaf(ns, c, &f)) {
        /* The wrapper's last metadata is gone: the leaf becomes the raw block it was before
         * a chmod wrapped it, the block ipfs add makes of these bytes (cp of a 0600 file,
         * then chmod 644, has add's CID again). */
        static const uint8_t none[1];
        const uint8_t *bytes = f.data_len ? f.data : none;
        rc = block_cid(1, CID_CODEC_RAW, bytes, f.data_len, out);
        if (rc == 0)
            rc = stage_put(ns, out, bytes, f.data_len, false);
        if (rc == 0)
            *tsize = f.data_len;
        goto out;
    }
    size_t n = l.raw ? 0 : l.pb.nlinks;
    size_t chunk;
    /* A file of several chunks that starts or stops storing a mode or a time changes the form
     * of its leaves on a raw-leaves mount (imports_raw_leaves): cp of a 0600 file then chmod
     * 644, or touch after close, have add's CID. Its leaves are raw exactly when it stores
     * nothing; a file the writer imported with its metadata has the right ones already (only
     * its first leaf is read to tell). */
    bool target_raw = !f.has_mode && !f.has_mtime, first_raw = target_raw;
    bool flip = n && f.type == UNIXFS_FILE && had_meta == target_raw &&
                imports_raw_leaves(ns, c, &chunk) &&
                first_leaf_raw(ns, &l.pb, &first_raw) == 0 && first_raw != target_raw;
    if (n && (!(links = calloc(n, sizeof *links)) || (flip && !(hb = calloc(n, sizeof *hb))))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct dagpb_link *lk = &l.pb.links[i];
        links[i] = (struct pb_link_out){.hash = lk->hash,
                                        .hash_len = lk->hash_len,
                                        .name = lk->name ? lk->name : "",
                                        .name_len = lk->name_len,
                                        .tsize = lk->tsize};
        if (!flip)
            continue;
        struct cid child, nc;
        int hl = -EIO;
        rc = cid_from_bytes(lk->hash, lk->hash_len, &child) < 0 ? -EIO : 0;
        if (rc == 0)
            rc = releaf(ns, &child, target_raw, 1, &nc, &links[i].tsize);
        if (rc == 0 && (hl = cid_to_bytes(&nc, hb[i], sizeof hb[i])) < 0)
            rc = -EIO;
        links[i].hash = hb[i];
        links[i].hash_len = (size_t)(hl < 0 ? 0 : hl);
    }
    if (rc == 0)
        rc = stage_node(ns, c->version, &f, links, n, out, tsize);
out:
    free(links);
    free(hb);
    free(bs);
    loaded_free(&l);
    return rc;
}

struct meta_args {
    const struct path_parts *pp;
    const uint32_t *mode;
    const struct timespec *mtime;
};

static int meta_change(struct node_store *ns, const struct cid *root, void *arg, struct cid *out)
{
    struct meta_args *a = arg;
    struct cid target, ncid;
    uint64_t ts, rts;
    int rc = resolve(ns, root, a->pp, a->pp->n, &target);
    if (rc == 0)
        rc = with_meta(ns, &target, a->mode, a->mtime, &ncid, &ts);
    if (rc == 0 && a->pp->n == 0)
        *out = ncid;
    else if (rc == 0)
        rc = update_path(ns, root, a->pp, 0, &ncid, ts, out, &rts);
    return rc;
}

static int set_meta(struct node_store *ns, const char *path, const uint32_t *mode,
                    const struct timespec *mtime)
{
    struct path_parts pp;
    int rc = split_path(path, &pp);
    if (rc < 0)
        return rc;
    struct meta_args a = {.pp = &pp, .mode = mode, .mtime = mtime};
    return run_change(ns, meta_change, &a);
}

static int store_mfs_chmod(struct node *base, const char *path, uint32_t mode)
{
    return set_meta(to_store(base), path, &mode, NULL);
}

static int store_mfs_touch(struct node *base, const char *path, const struct timespec *mtime)
{
    if (!node_time_ok(mtime))
        return -EINVAL;
    return set_meta(to_store(base), path, NULL, mtime);
}

struct put_args {
    const struct path_parts *pp;
    const struct cid *child;
    const uint32_t *mode;
    const struct timespec *mtime;
};

static int put_change(struct node_store *ns, const struct cid *root, void *arg, struct cid *out)
{
    struct put_args *a = arg;
    struct cid existing, c = *a->child;
    uint64_t ts, rts;
    bool exists, is_dir, nonempty;
    int rc = check_parent(ns, root, a->pp, &exists, &existing);
    if (rc == 0 && exists && (rc = kind_of(ns, &existing, &is_dir, &nonempty, &ts)) == 0 &&
        is_dir)
        rc = -EISDIR;
    if (rc == 0)
        rc = stage_touch(ns, a->child);
    if (rc == 0 && (a->mode || a->mtime))
        rc = with_meta(ns, a->child, a->mode, a->mtime, &c, &ts);
    else if (rc == 0)
        rc = kind_of(ns, &c, &is_dir, &nonempty, &ts);
    if (rc == 0)
        rc = update_path(ns, root, a->pp, 0, &c, ts, out, &rts);
    return rc;
}

/* One change where Kubo's MFS needs four (link beside, chmod, touch, move over): a rewritten
 * file replaces its name as cp -p or tar leave it, in one copy-on-write of the path. */
static int store_mfs_put(struct node *base, const struct cid *c, const char *path,
                         const uint32_t *mode, const struct timespec *mtime)
{
    if (mtime && !node_time_ok(mtime))
        return -EINVAL;
    struct path_parts pp;
    int rc = split_entry_path(path, &pp, -EISDIR);
    if (rc < 0)
        return rc;
    struct put_args a = {.pp = &pp, .child = c, .mode = mode, .mtime = mtime};
    return run_change(to_store(base), put_change, &a);
}

/* ---- the rest ---- */

/* A store can be another store's upstream (the sync engine's tests do that): it takes a
 * CAR's blocks, each verified by the reader, and makes them durable before it answers. */
static int car_block_put(void *ud, const struct cid *c, const uint8_t *block, size_t len)
{
    struct node_store *ns = ud;
    return blockstore_put(ns->bs, c, block, len);
}

static int store_put_car(struct node *base, int fd, uint64_t size, char *err, size_t errlen)
{
    struct node_store *ns = to_store(base);
    struct car_reader r;
    car_reader_init(&r, 4u << 20);
    char *buf = malloc(256u << 10);
    int rc = buf ? 0 : -ENOMEM;
    bool stream = size == NODE_CAR_STREAM;
    for (uint64_t off = 0; rc == 0 && off < size;) {
        size_t want = size - off < (256u << 10) ? (size_t)(size - off) : (256u << 10);
        ssize_t n = stream ? read(fd, buf, want) : pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 && stream)
            break; /* its end */
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        rc = car_reader_feed(&r, buf, (size_t)n, car_block_put, ns);
        off += (uint64_t)n;
    }
    if (rc == 0)
        rc = car_reader_finish(&r);
    if (rc == 0)
        rc = blockstore_sync(ns->bs);
    car_reader_free(&r);
    free(buf);
    if (rc < 0)
        snprintf(err, errlen, "CAR import into %s: %s", ns->dir, strerror(-rc));
    return rc;
}

/* Staged blocks count (they are the current names'); a store's own fetch hook does not. */
static int store_get_block(struct node *base, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node_store *ns = to_store(base);
    if (stage_get(ns, c, data, len) == 0)
        return 0;
    return blockstore_get(ns->bs, c, data, len);
}

static int store_space(struct node *base, uint64_t *total, uint64_t *avail)
{
    struct node_store *ns = to_store(base);
    struct statvfs vf;
    if (statvfs(ns->dir, &vf) < 0)
        return -errno;
    *total = (uint64_t)vf.f_blocks * vf.f_frsize;
    *avail = (uint64_t)vf.f_bavail * vf.f_frsize;
    return 0;
}

static int store_stats_base(struct node *base, char *buf, size_t len);

static int store_stats(struct node *base, char *buf, size_t len)
{
    struct node_store *ns = to_store(base);
    int n = store_stats_base(base, buf, len);
    if (n < 0 || !ns->fetch)
        return n;
    size_t o = (size_t)n;
    int m = snprintf(buf + (o < len ? o : len), o < len ? len - o : 0,
                     "store_range_fetches %" PRIu64 "\nstore_range_errors %" PRIu64
                     "\nstore_range_blocks %" PRIu64 "\nstore_range_bytes %" PRIu64
                     "\nstore_size_limit %" PRIu64 "\nstore_size_estimate %" PRIu64
                     "\nstore_evictions %" PRIu64 "\nstore_evicted_blocks %" PRIu64
                     "\nstore_evicted_bytes %" PRIu64 "\nstore_list_prefetched %" PRIu64 "\n",
                     (uint64_t)atomic_load(&ns->range_fetches),
                     (uint64_t)atomic_load(&ns->range_errors),
                     (uint64_t)atomic_load(&ns->range_blocks),
                     (uint64_t)atomic_load(&ns->range_bytes), ns->cache_max,
                     (uint64_t)atomic_load(&ns->cache_est),
                     (uint64_t)atomic_load(&ns->evict_runs),
                     (uint64_t)atomic_load(&ns->evicted_blocks),
                     (uint64_t)atomic_load(&ns->evicted_bytes),
                     (uint64_t)atomic_load(&ns->list_prefetched));
    if (m < 0)
        return n;
    o += (size_t)m;
    if (ns->fetch_stats) {
        m = ns->fetch_stats(ns->fetch_ud, buf + (o < len ? o : len), o < len ? len - o : 0);
        if (m > 0)
            o += (size_t)m;
    }
    return (int)o;
}

static int store_stats_base(struct node *base, char *buf, size_t len)
{
    struct node_store *ns = to_store(base);
    struct blockstore_stats s;
    blockstore_get_stats(ns->bs, &s);
    return snprintf(buf, len,
                    "store_block_reads %" PRIu64 "\nstore_block_read_bytes %" PRIu64
                    "\nstore_dir_cache_hits %" PRIu64 "\nstore_dir_cache_misses %" PRIu64
                    "\nstore_attr_cache_hits %" PRIu64 "\nstore_attr_cache_misses %" PRIu64
                    "\nstore_block_writes %" PRIu64 "\nstore_block_write_bytes %" PRIu64
                    "\nstore_block_dedup %" PRIu64 "\nstore_corrupt_blocks %" PRIu64
                    "\nstore_adds %" PRIu64 "\nstore_add_bytes %" PRIu64
                    "\nstore_add_streams %" PRIu64 "\nstore_name_changes %" PRIu64
                    "\nstore_changed_dir_hits %" PRIu64 "\nstore_changed_dir_misses %" PRIu64
                    "\nstore_commits %" PRIu64
                    "\nstore_commit_errors %" PRIu64 "\nstore_fetches %" PRIu64
                    "\nstore_fetch_errors %" PRIu64 "\nstore_gc_runs %" PRIu64
                    "\nstore_gc_blocks %" PRIu64 "\nstore_gc_bytes %" PRIu64
                    "\nstore_gc_errors %" PRIu64 "\nstore_gc_ms %" PRIu64
                    "\nstore_gc_live_blocks %" PRIu64 "\n",
                    s.gets, s.get_bytes, (uint64_t)atomic_load(&ns->bc_hits),
                    (uint64_t)atomic_load(&ns->bc_misses), (uint64_t)atomic_load(&ns->attr_hits),
                    (uint64_t)atomic_load(&ns->attr_misses), s.puts, s.put_bytes, s.dedup,
                    s.corrupt,
                    (uint64_t)atomic_load(&ns->adds), (uint64_t)atomic_load(&ns->add_bytes),
                    (uint64_t)atomic_load(&ns->add_streams),
                    (uint64_t)atomic_load(&ns->name_changes), (uint64_t)atomic_load(&ns->dc_hits),
                    (uint64_t)atomic_load(&ns->dc_misses), (uint64_t)atomic_load(&ns->commits),
                    (uint64_t)atomic_load(&ns->commit_errors), (uint64_t)atomic_load(&ns->fetches),
                    (uint64_t)atomic_load(&ns->fetch_errors), (uint64_t)atomic_load(&ns->gc_runs),
                    (uint64_t)atomic_load(&ns->gc_blocks), (uint64_t)atomic_load(&ns->gc_bytes),
                    (uint64_t)atomic_load(&ns->gc_errors), (uint64_t)atomic_load(&ns->gc_ms),
                    (uint64_t)atomic_load(&ns->gc_live));
}

int node_store_commit(struct node *n)
{
    return commit_now(to_store(n));
}

static int commit_now(struct node_store *ns)
{
    pthread_mutex_lock(&ns->commit_run);
    int rc = commit_reserved(ns);
    pthread_mutex_unlock(&ns->commit_run);
    pthread_mutex_lock(&ns->names_lock);
    /* This commit covers every change so far: a background failure before it lost nothing. */
    if (rc == 0 && ns->commit_failing)
        log_info("%s: the names commit again", ns->dir);
    if (rc == 0)
        ns->commit_failing = false;
    ns->commit_err = 0;
    pthread_mutex_unlock(&ns->names_lock);
    return rc;
}

static int store_sync(struct node *base)
{
    return node_store_commit(base);
}

void node_store_roots(struct node *n, struct cid *current, struct cid *committed, uint64_t *seq)
{
    struct node_store *ns = to_store(n);
    pthread_mutex_lock(&ns->names_lock);
    if (current)
        *current = ns->root;
    if (committed)
        *committed = ns->committed;
    if (seq)
        *seq = ns->seq;
    pthread_mutex_unlock(&ns->names_lock);
}

int node_store_swap_root(struct node *n, const struct cid *expected, const struct cid *next)
{
    struct node_store *ns = to_store(n);
    pthread_mutex_lock(&ns->change_lock);
    int rc = stage_touch(ns, next);
    if (rc == 0)
        rc = set_root_if(ns, expected, next);
    pthread_mutex_unlock(&ns->change_lock);
    return rc;
}

int node_store_block(struct node *n, const struct cid *c, uint8_t **data, size_t *len)
{
    return get_block(to_store(n), c, data, len);
}

void node_store_set_block_hook(struct node *n, node_store_block_hook fn, void *ud)
{
    struct node_store *ns = to_store(n);
    ns->block_hook = fn;
    ns->block_hook_ud = ud;
}

bool node_store_has(struct node *n, const struct cid *c)
{
    struct node_store *ns = to_store(n);
    pthread_mutex_lock(&ns->stage_lock);
    bool staged = stage_find(ns, c) != NULL;
    pthread_mutex_unlock(&ns->stage_lock);
    return staged || blockstore_has(ns->bs, c);
}

int node_store_resolve(struct node *n, const struct cid *root, const char *path, struct cid *out)
{
    struct path_parts pp;
    int rc = split_path(path, &pp);
    return rc < 0 ? rc : resolve(to_store(n), root, &pp, pp.n, out);
}

const char *node_store_dir(struct node *n)
{
    return to_store(n)->dir;
}

int node_store_usage(struct node *n, uint64_t *bytes)
{
    uint64_t nblocks;
    return blockstore_usage(to_store(n)->bs, bytes, &nblocks);
}

int node_store_evict(struct node *n, const struct cid *c, uint64_t *freed)
{
    return blockstore_remove(to_store(n)->bs, c, freed);
}

int node_store_gc(struct node *n, struct node_store_gc_result *out)
{
    return gc_collect(to_store(n), out);
}

int node_store_hold(struct node *n, const struct cid *root)
{
    struct node_store *ns = to_store(n);
    int rc = 0;
    pthread_mutex_lock(&ns->names_lock);
    if (ns->nholds == ns->holds_cap) {
        size_t cap = ns->holds_cap ? 2 * ns->holds_cap : 4;
        struct cid *v = realloc(ns->holds, cap * sizeof *v);
        if (v) {
            ns->holds = v;
            ns->holds_cap = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        ns->holds[ns->nholds++] = *root;
    pthread_mutex_unlock(&ns->names_lock);
    return rc;
}

void node_store_release(struct node *n, const struct cid *root)
{
    struct node_store *ns = to_store(n);
    pthread_mutex_lock(&ns->names_lock);
    for (size_t i = 0; i < ns->nholds; i++)
        if (cid_equal(&ns->holds[i], root)) {
            ns->holds[i] = ns->holds[--ns->nholds];
            break;
        }
    pthread_mutex_unlock(&ns->names_lock);
}

/* Free ns and what it holds (the commit thread, if any, has been joined). */
static void store_free(struct node_store *ns)
{
    stage_drop(ns, UINT64_MAX, true);
    free(ns->stage_tab);
    pthread_mutex_destroy(&ns->stage_lock);
    bc_free(&ns->bc);
    pthread_mutex_destroy(&ns->bc_lock);
    for (unsigned i = 0; ns->dc && i < DC_SLOTS; i++)
        dc_slot_free(&ns->dc[i]);
    free(ns->dc);
    pthread_mutex_destroy(&ns->dc_lock);
    blockstore_close(ns->bs);
    pthread_cond_destroy(&ns->commit_cond);
    pthread_cond_destroy(&ns->gc_cond);
    pthread_mutex_destroy(&ns->gc_run);
    pthread_mutex_destroy(&ns->evict_run);
    pthread_mutex_destroy(&ns->lru_lock);
    pthread_mutex_destroy(&ns->attr_lock);
    free(ns->attrs);
    free(ns->lru.k);
    free(ns->lru.v);
    free(ns->holds);
    pthread_mutex_destroy(&ns->names_lock);
    pthread_mutex_destroy(&ns->commit_run);
    pthread_mutex_destroy(&ns->change_lock);
    bytebuf_free(&ns->enc_buf);
    free(ns->enc_links);
    if (ns->lock_fd >= 0)
        close(ns->lock_fd);
    free(ns->dir);
    free(ns);
}

/* The last commit, then the thread joins and everything goes. */
/* Set by a store's teardown that could not commit its last changes (main's exit status). */
static atomic_bool teardown_failed;

bool node_store_teardown_failed(void)
{
    return atomic_load(&teardown_failed);
}

/* The collector starts once the mount runs (a daemon now: see start_committer). */
static int store_start(struct node *base)
{
    struct node_store *ns = to_store(base);
    pthread_mutex_lock(&ns->names_lock);
    start_collector(ns);
    pthread_mutex_unlock(&ns->names_lock);
    return 0;
}

static void store_destroy(struct node *base)
{
    struct node_store *ns = to_store(base);
    pthread_mutex_lock(&ns->names_lock);
    bool started = ns->thread_started, gc = ns->gc_started;
    ns->stop = true;
    atomic_store(&ns->gc_abort, true);
    pthread_cond_signal(&ns->commit_cond);
    pthread_cond_signal(&ns->gc_cond);
    pthread_mutex_unlock(&ns->names_lock);
    if (gc)
        pthread_join(ns->gc_thread, NULL);
    if (started)
        pthread_join(ns->commit_thread, NULL);
    pthread_mutex_lock(&ns->commit_run);
    int rc = commit_reserved(ns);
    pthread_mutex_unlock(&ns->commit_run);
    if (rc < 0) {
        log_err("%s: the last changes to the names could not be committed: %s", ns->dir,
                strerror(-rc));
        atomic_store(&teardown_failed, true);
    }
    store_free(ns);
}

static int store_hold(struct node *n, const struct cid *c)
{
    return node_store_hold(n, c);
}

static void store_release(struct node *n, const struct cid *c)
{
    node_store_release(n, c);
}

static const struct node_ops store_ops = {
    .stat = store_stat,
    .list = store_list,
    .lookup = store_lookup,
    .read = store_read,
    .mfs_stat = store_mfs_stat,
    .mfs_list = store_mfs_list,
    .mfs_mkdir = store_mfs_mkdir,
    .mfs_rm = store_mfs_rm,
    .mfs_link = store_mfs_link,
    .mfs_mv = store_mfs_mv,
    .mfs_chmod = store_mfs_chmod,
    .mfs_touch = store_mfs_touch,
    .mfs_stat_here = store_mfs_stat_here,
    .mfs_put = store_mfs_put,
    .add = store_add,
    .add_stream = store_add_stream,
    .put_symlink = store_put_symlink,
    .space = store_space,
    .put_car = store_put_car,
    .get_block = store_get_block,
    .sync = store_sync,
    .hold = store_hold,
    .release = store_release,
    .stats = store_stats,
    .start = store_start,
    .destroy = store_destroy,
};

/* Read DIR/root, or create an empty root directory. */
static int open_root(struct node_store *ns, char *err, size_t errlen)
{
    char p[PATH_MAX], buf[CID_STR_MAX + 2];
    snprintf(p, sizeof p, "%s/root", ns->dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        uint64_t ts;
        struct cid c;
        int rc = empty_dir(ns, &c, &ts);
        if (rc == 0)
            rc = stage_walk(ns, &c, atomic_fetch_add(&stage_marks, 1) + 1, stage_write_one);
        if (rc == 0)
            rc = blockstore_sync(ns->bs);
        if (rc == 0)
            rc = write_root_file(ns, &c);
        if (rc == 0)
            ns->root = ns->committed = c;
        if (rc < 0)
            snprintf(err, errlen, "cannot create the root directory in %s: %s", ns->dir,
                     strerror(-rc));
        return rc;
    }
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
        return rc;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    if (n <= 0 || cid_parse(buf, (size_t)n, &ns->root) < 0) {
        snprintf(err, errlen, "%s does not hold a CID", p);
        return -EINVAL;
    }
    ns->committed = ns->root;
    if (ns->fetch && !blockstore_has(ns->bs, &ns->root)) {
        log_info("%s: the root directory %.*s is not here yet: it is fetched when needed",
                 ns->dir, (int)n, buf);
        return 0; /* the mount must not wait on the network */
    }
    struct loaded l;
    int rc = load(ns, &ns->root, &l);
    if (rc == 0 && !is_dir_type(&l))
        rc = -ENOTDIR;
    if (rc == 0)
        loaded_free(&l);
    if (rc < 0)
        snprintf(err, errlen, "the root directory %.*s in %s is unusable: %s", (int)n, buf, p,
                 strerror(-rc));
    return rc;
}

/* The store holds the user's names and every byte they stored: it is theirs alone. DIR is
 * created 0700 (whatever the umask), must be a directory of ours and not a symlink (O_NOFOLLOW
 * on its last component), and is made 0700 again if it was left open to others (the files in
 * it, made 0600/0400 by older versions too or not, are then out of others' reach). A store
 * owned by another user is refused, root included: files root wrote there would lock its
 * owner out. *out: DIR's absolute path (the daemon changes its working directory to /). */
/* DIR/lock holds what its holder is doing: "serving", or "closing" once it is unmounted and
 * sends its last changes to the node (for up to its --unmount-wait). */
static void lock_say(int fd, const char *what)
{
    size_t n = strlen(what);
    if (ftruncate(fd, 0) == 0 && pwrite(fd, what, n, 0) == (ssize_t)n)
        return;
    /* only a courtesy to the next mount: it waits 3 s, then refuses */
}

/* Take fd's flock (exclusive). A process that was just unmounted may still be finishing: it
 * gets 3 s to exit, and as long as it says "closing" (it is sending its last changes to the
 * node; a message says so, once), up to 10 minutes. Then -EBUSY with a message. */
static int lock_wait(int fd, const char *dir, char *err, size_t errlen)
{
    uint64_t t0 = clock_mono_ms();
    bool told = false;
    int lrc;
    while ((lrc = flock(fd, LOCK_EX | LOCK_NB)) < 0 && (errno == EWOULDBLOCK || errno == EINTR)) {
        char what[16] = "";
        ssize_t n = pread(fd, what, sizeof what - 1, 0);
        bool closing = n > 0 && strncmp(what, "closing", 7) == 0;
        uint64_t spent = clock_mono_ms() - t0;
        if (spent >= (closing ? 600000u : 3000u))
            break;
        if (closing && !told) {
            fprintf(stderr, "ipfsfs: the ipfsfs process that served %s was unmounted and still "
                            "sends its last changes to the node: waiting for it (up to its "
                            "--unmount-wait)\n", dir);
            told = true;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (lrc < 0) {
        int e = errno;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "the store %s is in use by another ipfsfs process (%s/lock "
                     "is locked)", dir, dir);
        else
            snprintf(err, errlen, "cannot lock %s/lock: %s", dir, strerror(e));
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    return 0;
}

int node_store_check_free(const char *dir, char *err, size_t errlen)
{
    char lockp[PATH_MAX + 8];
    snprintf(lockp, sizeof lockp, "%s/lock", dir);
    /* Read-write: an exclusive flock on NFS (fcntl locks underneath) needs it. */
    int fd = open(lockp, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0; /* no store yet (or none we can open: node_store_new says why) */
    int rc = lock_wait(fd, dir, err, errlen);
    close(fd); /* and its flock with it */
    return rc == -EBUSY ? rc : 0; /* any other failure: node_store_new's own lock says */
}

void node_store_closing(struct node *n)
{
    struct node_store *ns = to_store(n);
    lock_say(ns->lock_fd, "closing");
}

static int open_private_dir(const char *dir, char **out, char *err, size_t errlen)
{
    struct stat st, st2;
    int rc = 0, fd = -1, fd2 = -1;
    *out = NULL;
    bool created = mkdir(dir, 0700) == 0;
    if (!created && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return rc;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOTDIR && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
        errno = ELOOP; /* O_DIRECTORY answers ENOTDIR for a symlink */
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open the store %s: %s%s", dir, strerror(errno),
                 errno == ELOOP ? " (a symlink: give the directory itself)" : "");
        goto out;
    }
    if (st.st_uid != geteuid()) {
        rc = -EPERM;
        snprintf(err, errlen, "the store %s belongs to uid %lu, not to us (uid %lu): refused", dir,
                 (unsigned long)st.st_uid, (unsigned long)geteuid());
        goto out;
    }
    if ((st.st_mode & 07777) != 0700) {
        if (fchmod(fd, 0700) < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot make %s private (chmod 0700): %s", dir, strerror(errno));
            goto out;
        }
        if (!created)
            log_warn("the store %s was open to others (mode %o): made it 0700", dir,
                     (unsigned)(st.st_mode & 07777));
    }
    if (!(*out = realpath(dir, NULL))) {
        rc = -errno;
        snprintf(err, errlen, "cannot resolve %s: %s", dir, strerror(errno));
        goto out;
    }
    /* The path used from now on must still be the directory checked above. */
    fd2 = open(*out, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd2 < 0 || fstat(fd2, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
        rc = -EBUSY;
        snprintf(err, errlen, "the store %s changed while it was opened", dir);
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    if (fd2 >= 0)
        close(fd2);
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int node_store_new(const char *dir, const struct node_store_config *cfg, struct node **out,
                   char *err, size_t errlen)
{
    struct node_store *ns = calloc(1, sizeof *ns);
    int rc = -ENOMEM;
    if (!ns) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ns->lock_fd = -1;
    pthread_mutex_init(&ns->change_lock, NULL);
    pthread_mutex_init(&ns->commit_run, NULL);
    pthread_mutex_init(&ns->names_lock, NULL);
    pthread_mutex_init(&ns->stage_lock, NULL);
    pthread_mutex_init(&ns->bc_lock, NULL);
    pthread_mutex_init(&ns->dc_lock, NULL);
    ns->dc = calloc(DC_SLOTS, sizeof *ns->dc); /* NULL: no cache, nothing else lost */
    (void)cond_init_monotonic(&ns->commit_cond);
    (void)cond_init_monotonic(&ns->gc_cond);
    pthread_mutex_init(&ns->gc_run, NULL);
    pthread_mutex_init(&ns->evict_run, NULL);
    pthread_mutex_init(&ns->lru_lock, NULL);
    pthread_mutex_init(&ns->attr_lock, NULL);
    ns->attrs = calloc(ATTR_SLOTS, sizeof *ns->attrs); /* NULL: no attribute cache */
    ns->gc_interval_ms = cfg && cfg->gc_interval_ms ? cfg->gc_interval_ms : NODE_STORE_GC_MS;
    ns->gc_last = clock_mono_ns(); /* the first collection: gc_interval_ms after the open */
    ns->gc_young_ms = cfg && cfg->gc_young_ms ? cfg->gc_young_ms : NODE_STORE_GC_YOUNG_MS;
    ns->commit_ms = cfg && cfg->commit_ms ? cfg->commit_ms : NODE_STORE_COMMIT_MS;
    ns->fetch = cfg ? cfg->fetch : NULL;
    ns->fetch_ud = cfg ? cfg->fetch_ud : NULL;
    ns->fetch_stats = cfg ? cfg->fetch_stats : NULL;
    /* A gateway pool's block fetch brings its range fetch along (gateway.h). */
    ns->fetch_range = !ns->fetch ? NULL
                      : cfg->fetch_range ? cfg->fetch_range
                      : ns->fetch == gw_fetch ? gw_fetch_range
                                              : NULL;
    ns->fetch_release = !ns->fetch ? NULL
                        : cfg->fetch_release ? cfg->fetch_release
                        : ns->fetch == gw_fetch ? gw_buf_release
                                                : NULL;
    ns->fetch_many = !ns->fetch ? NULL
                     : cfg->fetch_many ? cfg->fetch_many
                     : ns->fetch == gw_fetch ? gw_fetch_many
                                             : NULL;
    ns->fetch_cap = !ns->fetch ? NULL
                    : cfg->fetch_cap ? cfg->fetch_cap
                    : ns->fetch == gw_fetch ? gw_read_cap
                                            : NULL;
    rc = open_private_dir(dir, &ns->dir, err, errlen);
    if (rc < 0)
        goto fail;
    /* Two processes on one store would each commit their own root, and the later commit
     * would drop the names the other wrote (after `fusermount3 -uz` the old process still
     * serves its open files). The flock belongs to the open file, so it survives the fork
     * into the background and goes with the process. */
    char lockp[PATH_MAX + 8];
    snprintf(lockp, sizeof lockp, "%s/lock", ns->dir);
    ns->lock_fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (ns->lock_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", lockp, strerror(errno));
        goto fail;
    }
    rc = lock_wait(ns->lock_fd, ns->dir, err, errlen);
    if (rc < 0)
        goto fail;
    lock_say(ns->lock_fd, "serving");
    ns->ops = store_ops;
    if (ns->fetch_range || ns->fetch_many)
        ns->ops.read_stream = store_read_stream;
    ns->base.ops = &ns->ops;
    ns->base.description = ns->description;
    snprintf(ns->description, sizeof ns->description, "embedded block store at %s (%s)", ns->dir,
             ns->fetch_range || ns->fetch_many ? "fetching what it lacks"
                                               : "offline");
    ns->add_defaults = cfg ? cfg->add : (struct node_add_opts){.cid_version = -1, .raw_leaves = -1};
    ns->shard_bytes =
        cfg && cfg->hamt_shard_bytes ? cfg->hamt_shard_bytes : NODE_STORE_HAMT_SHARD_BYTES;
    ns->block_est = cfg && cfg->hamt_block_est;
    rc = import_opts_from(&ns->add_defaults, &ns->defaults);
    if (rc < 0) {
        snprintf(err, errlen, "the store imports with size-BYTES chunkers only, not %s (with a "
                 "node, --write-through lets the node import)",
                 ns->add_defaults.chunker ? ns->add_defaults.chunker : "default");
        goto fail;
    }
    rc = blockstore_open(ns->dir, &ns->bs, err, errlen);
    if (rc < 0)
        goto fail;
    /* We hold the lock: temp files in the store are leftovers of a process that died. */
    if (blockstore_clean_tmp(ns->bs) < 0)
        log_warn("%s: cannot look for unfinished block files", ns->dir);
    rc = open_root(ns, err, errlen);
    if (rc < 0)
        goto fail;
    reserve_make(ns);
    if (ns->fetch && cfg->cache_max_bytes) {
        /* What the block files take now; the first fetch past the bound evicts. */
        uint64_t used = 0, nblocks = 0;
        ns->cache_max = cfg->cache_max_bytes;
        if (blockstore_usage(ns->bs, &used, &nblocks) < 0)
            log_warn("%s: cannot tell what the store takes: it is bounded from now on", ns->dir);
        atomic_store(&ns->cache_est, used);
        atomic_store(&ns->cache_trigger, ns->cache_max);
    }
    *out = &ns->base; /* the commit thread starts with the first change */
    return 0;
fail:
    if (ns)
        store_free(ns);
    return rc;
}

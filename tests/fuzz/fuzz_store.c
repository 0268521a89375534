/* fuzz_store.c - the embedded store's DAG walkers on crafted sets of blocks.
 *
 * Anyone who can copy a file into a store puts bytes of their choosing there, and blocks are
 * keyed by multihash, so any bytes may be read as a dag-pb node (node_store.c). This harness
 * splits the input into blocks, links them to each other by hash, puts them in one store and
 * walks them from the first one: stat, list, read, path lookups, and the names operations that
 * rewrite directories (link into it, chmod).
 *
 * Input: blocks, each a 2-byte little-endian length and that many bytes. In a block, any
 * sha2-256 multihash whose digest starts with FA CE (the bytes 12 20 FA CE + 30 more) is a
 * reference: its digest is replaced by the hash of block i + 1 + (third digest byte mod the
 * number of blocks after i), after that block's own references were resolved (so references
 * only point forward and the blocks form a DAG, as hashes force). Block 0 is walked as dag-pb
 * (CIDv0) and as raw (CIDv1).
 * Properties: every call returns 0 or an expected -errno; a listing gives only valid names; a
 * read returns exactly the bytes asked or an error; everything returns within libFuzzer's
 * -timeout (run-fuzzers.sh: 10 s), which bounds each walk.
 */
#include "config.h"

#include "blockstore.h"
#include "cid.h"
#include "fuzz.h"
#include "log.h"
#include "node_store.h"
#include "unixfs_enc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BLOCKS 64

static struct node *store;
static char store_dir[128];

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    rmdir(path);
}

static void cleanup(void)
{
    node_destroy(store);
    store = NULL;
    if (store_dir[0])
        rm_rf(store_dir);
}

/* One store for the whole run (in RAM when /dev/shm is there: commits fsync). Blocks of earlier
 * inputs stay, but an input can only reach blocks whose hashes it holds, i.e. its own. */
static struct node *get_store(void)
{
    if (store)
        return store;
    log_init(LOG_LVL_ERR, false);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(store_dir, sizeof store_dir, "%s/ipfsfs-fuzz-store-XXXXXX", base);
    if (!mkdtemp(store_dir))
        FUZZ_FAIL("mkdtemp %s", store_dir);
    char err[256], dir[192];
    snprintf(dir, sizeof dir, "%s/s", store_dir);
    /* No background collection: the harness puts blocks through a second handle, behind the
     * store's back (as a file copied in would), so the collector does not know them as young
     * and may take them between the link and the rm below (a harness artifact, seen once in
     * CI as "mfs_rm rc -2"). The collector has its own tests (test_store, store.sh). */
    struct node_store_config cfg = {.add = {.cid_version = 1, .raw_leaves = -1},
                                    .hamt_shard_bytes = 2000,
                                    .gc_interval_ms = UINT_MAX};
    if (node_store_new(dir, &cfg, &store, err, sizeof err) < 0)
        FUZZ_FAIL("node_store_new: %s", err);
    atexit(cleanup);
    return store;
}

static bool errno_ok(int rc)
{
    return rc == 0 || rc == -EIO || rc == -ENOENT || rc == -ENOTDIR || rc == -EISDIR ||
           rc == -ENOMEM || rc == -EINVAL || rc == -EEXIST || rc == -ENAMETOOLONG ||
           rc == -ENOTEMPTY || rc == -EOPNOTSUPP; /* EOPNOTSUPP: a block that is no UnixFS */
}

struct listing {
    size_t n;
    char first[256];
    size_t first_len;
    struct cid first_cid;
    bool first_dir;
};

static int on_entry(void *ud, const struct node_entry *e)
{
    struct listing *l = ud;
    FUZZ_CHECK(e->name_len >= 1 && e->name_len <= 255, "entry name of %zu bytes", e->name_len);
    FUZZ_CHECK(memchr(e->name, '/', e->name_len) == NULL &&
                   memchr(e->name, '\0', e->name_len) == NULL,
               "entry name with / or NUL");
    FUZZ_CHECK(!(e->name_len == 1 && e->name[0] == '.') &&
                   !(e->name_len == 2 && e->name[0] == '.' && e->name[1] == '.'),
               "entry named . or ..");
    fuzz_touch(e->name, e->name_len);
    if (l->n++ == 0) {
        memcpy(l->first, e->name, e->name_len);
        l->first_len = e->name_len;
        l->first_cid = e->cid;
        l->first_dir = e->kind == NODE_DIR;
    }
    return 0;
}

/* stat, and read a few ranges of a file. */
static void walk_file(struct node *n, const struct cid *c)
{
    struct node_stat st;
    int rc = n->ops->stat(n, c, &st);
    FUZZ_CHECK(errno_ok(rc), "stat rc %d", rc);
    if (rc < 0)
        return;
    if (st.kind == NODE_SYMLINK) {
        FUZZ_CHECK(st.target && strlen(st.target) == st.size, "symlink target/size");
        node_stat_clear(&st);
        return;
    }
    if (st.kind != NODE_FILE || st.size == 0)
        return;
    static char buf[65536];
    uint64_t offs[3] = {0, st.size / 2, st.size > 100 ? st.size - 100 : 0};
    for (int i = 0; i < 3; i++) {
        if (offs[i] >= st.size)
            continue;
        size_t len = st.size - offs[i] < sizeof buf ? (size_t)(st.size - offs[i]) : sizeof buf;
        ssize_t r = n->ops->read(n, c, offs[i], len, buf);
        FUZZ_CHECK(r == (ssize_t)len || (r < 0 && errno_ok((int)r)), "read rc %zd of %zu", r,
                   len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct node *n = get_store();
    uint8_t *blocks[MAX_BLOCKS];
    size_t lens[MAX_BLOCKS], nb = 0;
    struct cid cids[MAX_BLOCKS];

    for (size_t pos = 0; pos + 2 <= size && nb < MAX_BLOCKS;) {
        size_t len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        pos += 2;
        if (len > size - pos)
            len = size - pos;
        blocks[nb] = malloc(len ? len : 1);
        memcpy(blocks[nb], data + pos, len);
        lens[nb++] = len;
        pos += len;
    }
    if (nb == 0)
        return 0;
    /* Resolve references from the last block back, then store each. */
    for (size_t i = nb; i-- > 0;) {
        uint8_t *b = blocks[i];
        for (size_t p = 0; i + 1 < nb && p + 34 <= lens[i]; p++) {
            if (b[p] != 0x12 || b[p + 1] != 0x20 || b[p + 2] != 0xfa || b[p + 3] != 0xce)
                continue;
            size_t target = i + 1 + b[p + 4] % (nb - i - 1);
            memcpy(b + p + 2, cids[target].mh + 2, 32);
            p += 33;
        }
        FUZZ_CHECK(block_cid(1, CID_CODEC_RAW, b, lens[i], &cids[i]) == 0, "block_cid");
    }
    /* Put them through a second handle on the store's blocks (as a file copied in would). */
    struct blockstore *bs;
    char err[256], dir[192];
    snprintf(dir, sizeof dir, "%s/s", store_dir);
    FUZZ_CHECK(blockstore_open(dir, &bs, err, sizeof err) == 0, "blockstore_open: %s", err);
    for (size_t i = 0; i < nb; i++)
        FUZZ_CHECK(blockstore_put(bs, &cids[i], blocks[i], lens[i]) == 0, "put");
    FUZZ_CHECK(blockstore_sync(bs) == 0, "sync");
    blockstore_close(bs);

    struct cid root = cids[0], raw = cids[0];
    root.version = 0;
    root.codec = CID_CODEC_DAG_PB;
    walk_file(n, &raw);
    walk_file(n, &root);
    struct listing li = {0};
    int rc = n->ops->list(n, &root, on_entry, &li);
    FUZZ_CHECK(errno_ok(rc), "list rc %d", rc);
    /* Through the names: lookups, a listing one level down, and the rewrites. */
    rc = n->ops->mfs_link(n, &root, "/r");
    FUZZ_CHECK(errno_ok(rc), "mfs_link rc %d", rc);
    if (rc == 0) {
        struct node_stat st;
        struct cid c;
        char path[300];
        if (li.n > 0) {
            snprintf(path, sizeof path, "/r/%.*s", (int)li.first_len, li.first);
            rc = n->ops->mfs_stat(n, path, &st, &c);
            FUZZ_CHECK(errno_ok(rc), "mfs_stat rc %d", rc);
            if (rc == 0)
                node_stat_clear(&st);
            if (li.first_dir) {
                struct listing sub = {0};
                rc = n->ops->mfs_list(n, path, on_entry, &sub);
                FUZZ_CHECK(errno_ok(rc), "mfs_list rc %d", rc);
            }
        }
        rc = n->ops->mfs_stat(n, "/r/no-such-name", &st, &c);
        FUZZ_CHECK(errno_ok(rc), "mfs_stat rc %d", rc);
        if (rc == 0)
            node_stat_clear(&st);
        rc = n->ops->mfs_link(n, &cids[nb - 1], "/r/added");
        FUZZ_CHECK(errno_ok(rc), "mfs_link into rc %d", rc);
        rc = n->ops->mfs_chmod(n, "/r", 0700);
        FUZZ_CHECK(errno_ok(rc), "mfs_chmod rc %d", rc);
        rc = n->ops->mfs_rm(n, "/r", true);
        FUZZ_CHECK(rc == 0, "mfs_rm rc %d", rc);
    }
    for (size_t i = 0; i < nb; i++)
        free(blocks[i]);
    return 0;
}

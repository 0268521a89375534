/* test_sync.c - the sync engine (sync.c) between two embedded stores, no mount and no node:
 * the local store pushes to an upstream store through the same node calls Kubo answers
 * (put_car, mfs_*), and the upstream's names are changed behind its back to check adoption,
 * the three-way merge and conflict copies, the persisted state, and the xattr's states. */
#include "config.h"

#include "node_store.h"
#include "sync.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static char base_dir[] = "/tmp/ipfsfs-test-sync-XXXXXX";

/* The local store fetches the blocks it lacks from its upstream, as node_local sets it up. */
static int fetch_up(void *ud, const struct cid *c, uint8_t **data, size_t *len)
{
    struct node *up = ud;
    return up->ops->get_block(up, c, data, len);
}

/* The local stores' group commit (test_push sets it to 10 min: a change then stays pending
 * until sync_wait commits it, however slowly the test runs). */
static unsigned commit_ms = 50;

/* young_ms: 0 for the store's default; else collections only by node_store_gc. */
static struct node *open_store_gc(const char *name, struct node *up, unsigned young_ms)
{
    char dir[4096], err[256];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, name);
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .commit_ms = commit_ms,
                                    .fetch = up ? fetch_up : NULL,
                                    .fetch_ud = up,
                                    .gc_young_ms = young_ms,
                                    .gc_interval_ms = young_ms ? UINT_MAX : 0};
    struct node *n = NULL;
    if (node_store_new(dir, &cfg, &n, err, sizeof err) < 0) {
        fprintf(stderr, "cannot open store %s: %s\n", dir, err);
        exit(99);
    }
    return n;
}

static struct node *open_store(const char *name, struct node *up)
{
    return open_store_gc(name, up, 0);
}

/* Import text as a file of n and link it at path (replacing what is there). */
static int put_text(struct node *n, const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/spool-XXXXXX", base_dir);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return -errno;
    unlink(tmp);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        return -EIO;
    }
    struct node_add_opts o = {.cid_version = -1, .raw_leaves = -1};
    struct cid c;
    int rc = n->ops->add(n, fd, len, &o, &c);
    close(fd);
    if (rc < 0)
        return rc;
    rc = n->ops->mfs_rm(n, path, false);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    return n->ops->mfs_link(n, &c, path);
}

/* The text of the file at path in n, or "" (static buffer). */
static const char *text_at(struct node *n, const char *path)
{
    static char buf[256];
    struct node_stat st = {0};
    struct cid c;
    buf[0] = 0;
    if (n->ops->mfs_stat(n, path, &st, &c) < 0 || st.kind != NODE_FILE ||
        st.size >= sizeof buf) {
        node_stat_clear(&st);
        return buf;
    }
    ssize_t r = n->ops->read(n, &c, 0, st.size, buf);
    buf[r > 0 ? r : 0] = 0;
    node_stat_clear(&st);
    return buf;
}

static bool exists(struct node *n, const char *path)
{
    struct node_stat st = {0};
    struct cid c;
    int rc = n->ops->mfs_stat(n, path, &st, &c);
    node_stat_clear(&st);
    return rc == 0;
}

static void root_of(struct node *n, struct cid *out)
{
    struct node_stat st = {0};
    if (n->ops->mfs_stat(n, "/", &st, out) < 0)
        memset(out, 0, sizeof *out);
    node_stat_clear(&st);
}

static struct sync *start(struct node *local, struct node *up)
{
    struct sync_config cfg = {.mfs_root = "/", .timeout_ms = 5000, .poll_ms = 50, .ahead = 1};
    struct sync *s = NULL;
    if (sync_new(local, up, &cfg, &s) < 0 || sync_start(s) < 0) {
        fprintf(stderr, "cannot start the sync engine\n");
        exit(99);
    }
    return s;
}

static const char *state(struct sync *s, const char *path)
{
    static char buf[512];
    if (sync_state(s, path, buf, sizeof buf) < 0)
        snprintf(buf, sizeof buf, "(none)");
    return buf;
}

/* Wait up to 5 s for path to hold text in n. */
static bool wait_text(struct node *n, const char *path, const char *text)
{
    for (int i = 0; i < 250; i++) {
        if (strcmp(text_at(n, path), text) == 0)
            return true;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

static uint64_t stat_of(struct sync *s, const char *name)
{
    char buf[4096];
    sync_stats(s, buf, sizeof buf);
    return unit_stat(buf, name);
}

/* Push: files, directories, renames and removals reach the upstream; fsync semantics. */
static void test_push(void)
{
    struct node *up = open_store("push-up", NULL);
    commit_ms = 600000; /* the "pending" check below: no background commit, so no push */
    struct node *local = open_store("push-local", up);
    commit_ms = 50;
    struct sync *s = start(local, up);
    CHECK_EQ_INT(put_text(local, "/a.txt", "alpha"), 0);
    CHECK_EQ_INT(local->ops->mfs_mkdir(local, "/dir"), 0);
    CHECK_EQ_INT(local->ops->mfs_mkdir(local, "/dir/sub"), 0);
    CHECK_EQ_INT(put_text(local, "/dir/sub/b.txt", "beta"), 0);
    CHECK_EQ_INT(put_text(local, "/dir/c.txt", "gamma"), 0);
    CHECK_EQ_INT(sync_wait(s), 0);
    CHECK_EQ_STR(text_at(up, "/a.txt"), "alpha");
    CHECK_EQ_STR(text_at(up, "/dir/sub/b.txt"), "beta");
    CHECK_EQ_STR(state(s, "/dir/sub/b.txt"), "synced");
    struct cid lr, ur;
    root_of(local, &lr);
    root_of(up, &ur);
    CHECK(cid_equal(&lr, &ur)); /* same encoder on both sides: the same root */

    /* A rename, a removal and a replacement: only the changes travel. */
    CHECK_EQ_INT(local->ops->mfs_mv(local, "/dir/c.txt", "/dir/sub/c2.txt"), 0);
    CHECK_EQ_INT(local->ops->mfs_rm(local, "/a.txt", false), 0);
    CHECK_EQ_INT(put_text(local, "/dir/sub/b.txt", "beta 2"), 0);
    CHECK_EQ_STR(state(s, "/dir/sub/b.txt"), "pending");
    CHECK_EQ_INT(sync_wait(s), 0);
    CHECK(!exists(up, "/a.txt"));
    CHECK(!exists(up, "/dir/c.txt"));
    CHECK_EQ_STR(text_at(up, "/dir/sub/c2.txt"), "gamma");
    CHECK_EQ_STR(text_at(up, "/dir/sub/b.txt"), "beta 2");
    root_of(local, &lr);
    root_of(up, &ur);
    CHECK(cid_equal(&lr, &ur));
    CHECK_EQ_INT(sync_state(s, "/missing", (char[16]){0}, 16), -ENOENT);

    /* A chmod of a directory replaces it on the upstream (its own metadata changed). */
    CHECK_EQ_INT(local->ops->mfs_chmod(local, "/dir/sub", 0700), 0);
    CHECK_EQ_INT(sync_wait(s), 0);
    struct node_stat st = {0};
    struct cid c;
    CHECK_EQ_INT(up->ops->mfs_stat(up, "/dir/sub", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0700);
    node_stat_clear(&st);
    CHECK_EQ_STR(text_at(up, "/dir/sub/c2.txt"), "gamma");

    /* A file of many blocks: the CAR streams through a pipe far smaller than it. */
    size_t big = (3u << 20) + 77;
    uint8_t *data = malloc(big), *back = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    int fd = memfd_create("big", MFD_CLOEXEC);
    CHECK(fd >= 0 && write(fd, data, big) == (ssize_t)big);
    struct node_add_opts ao = {.cid_version = -1, .raw_leaves = -1};
    struct cid bc;
    CHECK_EQ_INT(local->ops->add(local, fd, big, &ao, &bc), 0);
    close(fd);
    uint64_t sent0 = stat_of(s, "sync_blocks_sent");
    CHECK_EQ_INT(local->ops->mfs_link(local, &bc, "/dir/big"), 0);
    CHECK_EQ_INT(sync_wait(s), 0);
    /* Its 12 whole chunks went ahead of the name (the 77-byte last one and the file's root
     * with the push), and the push left them out. */
    CHECK_EQ_INT(stat_of(s, "sync_ahead_blocks"), 12);
    CHECK(stat_of(s, "sync_blocks_sent") - sent0 < 12);
    CHECK_EQ_INT(up->ops->mfs_stat(up, "/dir/big", &st, &c), 0);
    node_stat_clear(&st);
    CHECK(cid_equal(&c, &bc));
    CHECK_EQ_INT(up->ops->read(up, &bc, 0, big, (char *)back), (ssize_t)big);
    CHECK(memcmp(back, data, big) == 0);
    free(data);
    free(back);

    CHECK_EQ_INT(sync_stop(s, 5000), 0);
    node_destroy(local);
    node_destroy(up);
}

/* Finds the conflict copy of both.txt in a listing. */
static int conflict_fn(void *ud, const struct node_entry *e)
{
    char *name = ud;
    if (e->name_len > 20 && strncmp(e->name, "both.txt.conflict-", 18) == 0 &&
        e->name_len < 256) {
        memcpy(name, e->name, e->name_len);
        name[e->name_len] = 0;
    }
    return 0;
}

/* Changes on the upstream: adopted with nothing pending; merged with changes on both sides,
 * and a conflict copy where both changed one name; the state survives a restart. */
static void test_pull_merge(void)
{
    struct node *up = open_store("merge-up", NULL), *local = open_store("merge-local", up);
    CHECK_EQ_INT(put_text(up, "/existing.txt", "on the upstream first"), 0);
    struct sync *s = start(local, up);
    /* A first contact with an empty local store adopts the upstream's names (sync_start
     * waits at most 2 s for that round: a slow machine or disk may take longer). */
    CHECK(wait_text(local, "/existing.txt", "on the upstream first"));
    for (int i = 0; i < 250 && strcmp(state(s, "/existing.txt"), "synced") != 0; i++)
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    CHECK_EQ_STR(state(s, "/existing.txt"), "synced");

    /* Nothing pending here: a change there shows here. */
    CHECK_EQ_INT(put_text(up, "/outside.txt", "made outside"), 0);
    CHECK(wait_text(local, "/outside.txt", "made outside"));
    CHECK_EQ_INT(sync_stop(s, 5000), 0);

    /* Both sides change while the engine is stopped. */
    CHECK_EQ_INT(put_text(local, "/mine.txt", "local only"), 0);
    CHECK_EQ_INT(put_text(local, "/both.txt", "local version"), 0);
    CHECK_EQ_INT(put_text(local, "/outside.txt", "changed here"), 0);
    CHECK_EQ_INT(put_text(up, "/theirs.txt", "upstream only"), 0);
    CHECK_EQ_INT(put_text(up, "/both.txt", "upstream version"), 0);
    CHECK_EQ_INT(up->ops->mfs_rm(up, "/existing.txt", false), 0);
    s = start(local, up); /* its first round merges */
    CHECK_EQ_INT(sync_wait(s), 0);
    CHECK_EQ_STR(text_at(local, "/mine.txt"), "local only");
    CHECK_EQ_STR(text_at(local, "/theirs.txt"), "upstream only");
    CHECK_EQ_STR(text_at(local, "/outside.txt"), "changed here");
    CHECK(!exists(local, "/existing.txt")); /* removed there, untouched here: removed */
    CHECK_EQ_STR(text_at(local, "/both.txt"), "local version");
    /* The upstream's version of both.txt is beside it, on both sides. */
    char found[256] = "";
    CHECK_EQ_INT(local->ops->mfs_list(local, "/", conflict_fn, found), 0);
    CHECK(found[0] != 0);
    if (found[0]) {
        char p[300];
        snprintf(p, sizeof p, "/%s", found);
        CHECK_EQ_STR(text_at(local, p), "upstream version");
        CHECK_EQ_STR(text_at(up, p), "upstream version");
    }
    CHECK_EQ_STR(text_at(up, "/both.txt"), "local version");
    CHECK_EQ_STR(text_at(up, "/mine.txt"), "local only");
    struct cid lr, ur;
    root_of(local, &lr);
    root_of(up, &ur);
    CHECK(cid_equal(&lr, &ur));
    char stats[1024];
    CHECK(sync_stats(s, stats, sizeof stats) > 0);
    CHECK(strstr(stats, "sync_conflicts 1\n") != NULL);
    CHECK_EQ_INT(sync_stop(s, 5000), 0);

    /* The state persists: a restart with nothing changed pushes nothing and adopts nothing. */
    s = start(local, up);
    CHECK_EQ_INT(sync_wait(s), 0);
    CHECK(sync_stats(s, stats, sizeof stats) > 0);
    CHECK(strstr(stats, "sync_pushes 0\n") != NULL);
    CHECK(strstr(stats, "sync_adopted 0\n") != NULL);
    CHECK_EQ_INT(sync_stop(s, 5000), 0);
    node_destroy(local);
    node_destroy(up);
}

static struct cid cid_at(struct node *n, const char *path)
{
    struct node_stat st = {0};
    struct cid c = {0};
    n->ops->mfs_stat(n, path, &st, &c);
    node_stat_clear(&st);
    return c;
}

static void collect_all(struct node *n)
{
    struct node_store_gc_result r;
    for (int i = 0; i < 4; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        CHECK_EQ_INT(node_store_gc(n, &r), 0);
    }
}

/* The store's collector and the sync engine: what is pushed and replaced here goes; an
 * adopted tree keeps the local blocks it shares with the one it replaced (its directories are
 * loaded from the node, so the collector reaches them), and the replaced version goes. */
static void test_gc(void)
{
    struct node *up = open_store("gc-up", NULL), *local = open_store_gc("gc-local", up, 5);
    struct sync *s = start(local, up);
    CHECK_EQ_INT(local->ops->mfs_mkdir(local, "/keep"), 0);
    CHECK_EQ_INT(local->ops->mfs_mkdir(local, "/keep/sub"), 0);
    CHECK_EQ_INT(local->ops->mfs_mkdir(local, "/chg"), 0);
    CHECK_EQ_INT(put_text(local, "/keep/a.txt", "alpha"), 0);
    CHECK_EQ_INT(put_text(local, "/keep/sub/b.txt", "beta"), 0);
    CHECK_EQ_INT(put_text(local, "/chg/c.txt", "gamma"), 0);
    CHECK_EQ_INT(put_text(local, "/old.txt", "first version"), 0);
    CHECK_EQ_INT(sync_wait(s), 0);
    struct cid first = cid_at(local, "/old.txt");
    CHECK_EQ_INT(put_text(local, "/old.txt", "second version"), 0);
    CHECK_EQ_INT(sync_wait(s), 0);
    collect_all(local);
    CHECK(!node_store_has(local, &first)); /* pushed, replaced: collected */
    CHECK_EQ_STR(text_at(up, "/old.txt"), "second version");
    struct cid a = cid_at(local, "/keep/a.txt"), b = cid_at(local, "/keep/sub/b.txt");
    struct cid c = cid_at(local, "/chg/c.txt");
    CHECK(node_store_has(local, &a));

    /* Changed on the upstream: adopted here (nothing pending). */
    CHECK_EQ_INT(put_text(up, "/chg/c.txt", "changed outside"), 0);
    char stats[1024] = "";
    for (int i = 0; i < 250 && !strstr(stats, "sync_adopted 1\n"); i++) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        sync_stats(s, stats, sizeof stats);
    }
    CHECK(strstr(stats, "sync_adopted 1\n") != NULL);
    CHECK_EQ_INT(sync_wait(s), 0);
    collect_all(local);
    CHECK(node_store_has(local, &a));
    CHECK(node_store_has(local, &b));
    CHECK(!node_store_has(local, &c)); /* the version replaced there */
    CHECK_EQ_STR(text_at(local, "/keep/a.txt"), "alpha");
    CHECK_EQ_STR(text_at(local, "/keep/sub/b.txt"), "beta");
    CHECK_EQ_STR(text_at(local, "/chg/c.txt"), "changed outside");
    CHECK_EQ_INT(sync_stop(s, 5000), 0);
    node_destroy(local);
    node_destroy(up);
}

/* A new repo at the node's address (another identity, an empty MFS) is merged, not adopted:
 * also when the round that found it fails to push, and the next round finds the identity it
 * already took (the review of cfa2134: that round adopted the empty MFS). */
static const char *peer_id = "PeerA";
static bool up_fails;
static const struct node_ops *up_real;

static int w_identity(struct node *n, char *buf, size_t len)
{
    (void)n;
    snprintf(buf, len, "%s", peer_id);
    return 0;
}

static int w_link(struct node *n, const struct cid *c, const char *path)
{
    return up_fails ? -EIO : up_real->mfs_link(n, c, path);
}

static int w_put_car(struct node *n, int fd, uint64_t size, char *err, size_t errlen)
{
    if (up_fails) {
        snprintf(err, errlen, "refused (test)");
        return -EIO;
    }
    return up_real->put_car(n, fd, size, err, errlen);
}

static void test_new_node(void)
{
    static struct node_ops wops;
    struct node *up = open_store("id-up", NULL);
    up_real = up->ops;
    wops = *up->ops;
    wops.identity = w_identity;
    wops.mfs_link = w_link;
    wops.put_car = w_put_car;
    up->ops = &wops;
    struct node *local = open_store("id-local", up);
    struct sync *s = start(local, up);
    CHECK_EQ_INT(put_text(local, "/a.txt", "alpha"), 0);
    CHECK_EQ_INT(sync_wait(s), 0);
    CHECK_EQ_STR(text_at(up, "/a.txt"), "alpha");
    /* Another node: its MFS empty, and it refuses pushes for a while. */
    up_fails = true;
    peer_id = "PeerB";
    CHECK_EQ_INT(up_real->mfs_rm(up, "/a.txt", false), 0);
    struct timespec ts = {1, 500 * 1000 * 1000};
    nanosleep(&ts, NULL); /* rounds find it, and fail */
    CHECK_EQ_INT(stat_of(s, "sync_other_node"), 1);
    CHECK_EQ_STR(text_at(local, "/a.txt"), "alpha");
    CHECK(sync_wait(s) < 0); /* not confirmed by the new node */
    up_fails = false;
    CHECK_EQ_INT(sync_wait(s), 0);
    CHECK_EQ_STR(text_at(local, "/a.txt"), "alpha");
    CHECK_EQ_STR(text_at(up, "/a.txt"), "alpha");
    sync_stop(s, 2000);
    node_destroy(local);
    node_destroy(up);
    peer_id = "PeerA";
}

int main(void)
{
    if (!mkdtemp(base_dir)) {
        perror("mkdtemp");
        return 99;
    }
    test_new_node();
    test_push();
    test_pull_merge();
    test_gc();
    unit_rm_rf(base_dir);
    return unit_done("test_sync");
}

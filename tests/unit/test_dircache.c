/* test_dircache.c - directory listings: sorting, name index, duplicates, single-flight fetch,
 * budget and eviction, errors (with a stub node that counts its calls). */
#include "config.h"

#include "dircache.h"
#include "inode.h"
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <xxhash.h>

struct stub {
    struct node base;
    atomic_int calls;
    unsigned entries; /* entries per listing */
    int fail;         /* -errno to fail with */
    useconds_t delay;
    bool no_dup; /* list each name once */
};

static int stub_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    struct stub *s = (struct stub *)n;
    (void)c;
    atomic_fetch_add(&s->calls, 1);
    if (s->delay)
        usleep(s->delay);
    if (s->fail)
        return s->fail;
    for (unsigned i = s->entries; i-- > 0;) { /* reverse order: the cache sorts */
        char name[32];
        struct node_entry e = {.name = name, .kind = NODE_FILE, .size = i};
        e.name_len = (size_t)snprintf(name, sizeof name, "file-%05u", i);
        e.cid = unit_cid(i);
        int rc = fn(ud, &e);
        if (rc < 0)
            return rc;
        if (i == 3 && !s->no_dup) { /* a hostile directory repeats a name */
            rc = fn(ud, &e);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static const struct node_ops stub_ops = {.list = stub_list};

static void test_basic(void)
{
    struct stub s = {.base = {.ops = &stub_ops, .description = "stub"}, .entries = 1000};
    struct dircache *dc;
    CHECK_EQ_INT(dircache_new(&s.base, 1 << 20, &dc), 0);
    struct cid d = unit_cid(424242);
    const struct dirlist *l;
    CHECK_EQ_INT(dircache_get(dc, &d, &l), 0);
    CHECK_EQ_INT(l->n, 1000); /* the duplicate is dropped */
    CHECK_EQ_STR(l->entries[0].name, "file-00000");
    CHECK_EQ_STR(l->entries[999].name, "file-00999");
    for (size_t i = 1; i < l->n; i++)
        CHECK(strcmp(l->entries[i - 1].name, l->entries[i].name) < 0);
    const struct dirent_rec *e = dirlist_find(l, "file-00500", 10);
    CHECK(e != NULL && e->size == 500);
    CHECK(dirlist_find(l, "file-0050", 9) == NULL);
    CHECK(dirlist_find(l, "nope", 4) == NULL);
    dircache_put(dc, l);
    /* Second time: from the cache. */
    CHECK_EQ_INT(dircache_get(dc, &d, &l), 0);
    CHECK_EQ_INT(atomic_load(&s.calls), 1);
    dircache_put(dc, l);
    dircache_free(dc);
}

struct thr {
    struct dircache *dc;
    struct cid c;
    int rc;
    size_t n;
};

static void *getter(void *arg)
{
    struct thr *t = arg;
    const struct dirlist *l;
    t->rc = dircache_get(t->dc, &t->c, &l);
    if (t->rc == 0) {
        t->n = l->n;
        dircache_put(t->dc, l);
    }
    return NULL;
}

static void test_single_flight(void)
{
    struct stub s = {.base = {.ops = &stub_ops}, .entries = 10, .delay = 100000};
    struct dircache *dc;
    CHECK_EQ_INT(dircache_new(&s.base, 1 << 20, &dc), 0);
    pthread_t th[16];
    struct thr t[16];
    for (int i = 0; i < 16; i++) {
        t[i] = (struct thr){.dc = dc, .c = unit_cid(7)};
        pthread_create(&th[i], NULL, getter, &t[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(t[i].rc, 0);
        CHECK_EQ_INT(t[i].n, 10);
    }
    CHECK_EQ_INT(atomic_load(&s.calls), 1);

    /* A failing fetch: every waiter gets the error, and nothing is cached. */
    s.fail = -ETIMEDOUT;
    for (int i = 0; i < 8; i++) {
        t[i] = (struct thr){.dc = dc, .c = unit_cid(8)};
        pthread_create(&th[i], NULL, getter, &t[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(t[i].rc, -ETIMEDOUT);
    }
    int before = atomic_load(&s.calls);
    CHECK(before >= 2 && before <= 9);
    s.fail = 0;
    const struct dirlist *l;
    CHECK_EQ_INT(dircache_get(dc, &t[0].c, &l), 0); /* retried, now works */
    dircache_put(dc, l);
    dircache_free(dc);
}

static void test_budget(void)
{
    struct stub s = {.base = {.ops = &stub_ops}, .entries = 100};
    struct dircache *dc;
    /* Room for a few listings only. */
    CHECK_EQ_INT(dircache_new(&s.base, 64 << 10, &dc), 0);
    const struct dirlist *held;
    struct cid c0 = unit_cid(0);
    CHECK_EQ_INT(dircache_get(dc, &c0, &held), 0);
    for (unsigned i = 1; i < 200; i++) {
        struct cid c = unit_cid(i);
        const struct dirlist *l;
        CHECK_EQ_INT(dircache_get(dc, &c, &l), 0);
        dircache_put(dc, l);
    }
    char stats[1024];
    dircache_stats(dc, stats, sizeof stats);
    size_t bytes = 0;
    const char *p = strstr(stats, "dircache_bytes ");
    CHECK(p != NULL);
    if (p)
        bytes = strtoull(p + 15, NULL, 10);
    CHECK(bytes <= (64 << 10) + held->bytes);
    CHECK(strstr(stats, "dircache_evictions 0\n") == NULL);
    /* The listing we hold survived eviction pressure and is intact. */
    CHECK_EQ_INT(held->n, 100);
    CHECK(dirlist_find(held, "file-00042", 10) != NULL);
    dircache_put(dc, held);
    dircache_free(dc);
}

/* Listings larger than the whole budget, asked for by many threads at once: the loader's
 * reference is the last one when it lets go, and the slot is freed then. Threads that waited
 * for that load must still hold it (they read it after waking). Under ASan or TSan a waiter
 * reading a freed slot fails this test; without them it may crash or hand back garbage. */
struct stress {
    struct dircache *dc;
    unsigned seed;
    unsigned rounds;
    atomic_int bad;
};

static void *stress_getter(void *arg)
{
    struct stress *st = arg;
    unsigned r = st->seed;
    for (unsigned k = 0; k < st->rounds; k++) {
        r = r * 1103515245u + 12345u;
        struct cid c = unit_cid(9000 + (r >> 16) % 3);
        const struct dirlist *l;
        int rc = dircache_get(st->dc, &c, &l);
        if (rc != 0 || l->n != 40 || !dirlist_find(l, "file-00017", 10))
            atomic_fetch_add(&st->bad, 1);
        if (rc == 0)
            dircache_put(st->dc, l);
    }
    return NULL;
}

static void test_oversize_stress(void)
{
    struct stub s = {.base = {.ops = &stub_ops}, .entries = 40, .delay = 200,
                     .no_dup = true};
    struct dircache *dc;
    CHECK_EQ_INT(dircache_new(&s.base, 512, &dc), 0); /* smaller than any one listing */
    enum { NTHREADS = 12 };
    pthread_t th[NTHREADS];
    struct stress st[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        st[i] = (struct stress){.dc = dc, .seed = (unsigned)i * 7919u + 1, .rounds = 300};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, stress_getter, &st[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        bad += atomic_load(&st[i].bad);
    }
    CHECK_EQ_INT(bad, 0);
    char stats[1024];
    dircache_stats(dc, stats, sizeof stats);
    /* Nothing fits, so nothing stays: every listing left the cache with its last holder. */
    CHECK(strstr(stats, "dircache_bytes 0\n") != NULL);
    CHECK(strstr(stats, "dircache_waits 0\n") == NULL); /* the race was exercised */
    dircache_free(dc);
}

/* dirent_vec: names are copied (not NUL-terminated in the listing), fields kept, and the
 * result builds a listing; clear empties it for reuse. */
static void test_dirent_vec(void)
{
    struct dirent_vec v = {0};
    char buf[] = "beta-and-more";
    struct node_entry e = {.name = buf, .name_len = 4, .kind = NODE_DIR, .size = 0, .mode = 0755};
    e.cid = unit_cid(1);
    CHECK_EQ_INT(dirent_vec_push(&v, &e), 0);
    e = (struct node_entry){.name = "alpha", .name_len = 5, .kind = NODE_FILE, .size = 12};
    e.cid = unit_cid(2);
    CHECK_EQ_INT(dirent_vec_push(&v, &e), 0);
    for (unsigned i = 0; i < 200; i++) { /* past the first growth */
        char name[16];
        e = (struct node_entry){.name = name, .kind = NODE_SYMLINK, .size = i};
        e.name_len = (size_t)snprintf(name, sizeof name, "z%03u", i);
        e.cid = unit_cid(100 + i);
        CHECK_EQ_INT(dirent_vec_push(&v, &e), 0);
    }
    CHECK_EQ_INT(v.n, 202);
    CHECK(v.cap >= v.n);
    CHECK_EQ_STR(v.v[0].name, "beta");
    CHECK_EQ_INT(v.v[0].kind, NODE_DIR);
    CHECK_EQ_INT(v.v[0].mode, 0755);
    CHECK(cid_equal(&v.v[1].cid, &(struct cid){0}) == false);
    struct cid two = unit_cid(2);
    CHECK(cid_equal(&v.v[1].cid, &two));
    CHECK_EQ_INT(v.v[1].size, 12);

    struct dirlist *l;
    CHECK_EQ_INT(dirlist_build(v.v, v.n, &l), 0);
    CHECK_EQ_INT(l->n, 202);
    CHECK_EQ_STR(l->entries[0].name, "alpha");
    const struct dirent_rec *r = dirlist_find(l, "z150", 4);
    CHECK(r != NULL && r->size == 150 && r->kind == NODE_SYMLINK);
    dirlist_free(l);
    free(l);

    struct dirent_vec w = {0};
    e = (struct node_entry){.name = "w", .name_len = 1, .kind = NODE_FILE}; /* name: in scope */
    CHECK_EQ_INT(dirent_vec_push(&w, &e), 0);
    dirent_vec_clear(&w);
    CHECK(w.v == NULL && w.n == 0 && w.cap == 0);
    dirent_vec_clear(&w); /* clearing an empty vector is fine */
}

/* Hash flooding: names picked so that, with an unseeded hash, they all want the same index
 * slot. With the per-process seed they spread: the longest run of occupied slots stays short
 * (64 names in 128 slots; a run of 40 or more at random has odds far below one in a million). */
static void test_name_flood(void)
{
    struct dirent_vec v = {0};
    char name[32];
    for (unsigned i = 0; v.n < 64; i++) {
        size_t len = (size_t)snprintf(name, sizeof name, "flood-%u", i);
        if ((XXH3_64bits(name, len) & 127) != 0)
            continue;
        struct node_entry e = {.name = name, .name_len = len, .kind = NODE_FILE, .size = i};
        e.cid = unit_cid(i);
        CHECK_EQ_INT(dirent_vec_push(&v, &e), 0);
    }
    struct dirlist *l;
    CHECK_EQ_INT(dirlist_build(v.v, v.n, &l), 0);
    CHECK_EQ_INT(l->index_cap, 128);
    size_t run = 0, longest = 0;
    for (size_t k = 0; k < 2 * l->index_cap; k++) { /* twice round: runs wrap */
        run = l->index[k & (l->index_cap - 1)] ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    CHECK(longest < 40);
    for (size_t i = 0; i < l->n; i++)
        CHECK(dirlist_find(l, l->entries[i].name, strlen(l->entries[i].name)) == &l->entries[i]);
    dirlist_free(l);
    free(l);
}

static void test_inode_keys(void)
{
    struct cid a = unit_cid(1), b = unit_cid(2);
    CHECK(inode_key_root("a", 1) == inode_key_root("a", 1));
    CHECK(inode_key_root("a", 1) != inode_key_root("b", 1));
    CHECK(inode_key_child(7, "x", 1) != inode_key_child(7, "y", 1));
    /* The same name under two parents (two copies of one folder): two inodes. */
    CHECK(inode_key_child(7, "x", 1) != inode_key_child(8, "x", 1));
    CHECK(inode_key_child(7, "x", 1) > 1);
    struct inode_table *t;
    CHECK_EQ_INT(inode_table_new(&t), 0);
    struct node_stat st = {.kind = NODE_FILE, .size = 5};
    uint64_t k = inode_key_root("a", 1);
    struct inode *i1 = inode_insert_ref(t, k, &a, &st);
    struct inode *i2 = inode_find_ref(t, k, &a);
    CHECK(i1 == i2);
    CHECK(inode_find_ref(t, k, &b) == NULL); /* same key, other CID: not the same object */
    CHECK_EQ_INT(inode_count(t), 1);
    inode_forget(t, i1, 2);
    /* Forgotten by the kernel, an immutable inode stays findable (no new stat needed). */
    CHECK_EQ_INT(inode_count(t), 1);
    CHECK(inode_find_ref(t, k, &a) == i1);
    inode_forget(t, i1, 1);
    inode_table_free(t);
}

/* Hash flooding of the inode table: keys that share their low bits (what a hostile directory
 * can aim names at, since keys are unseeded stable hashes) spread over the buckets; and past
 * two inodes per bucket the table grows, so chains stay short for many inodes too. */
static void test_inode_flood(void)
{
    struct inode_table *t;
    CHECK_EQ_INT(inode_table_new(&t), 0);
    struct cid c = unit_cid(5);
    for (uint64_t i = 1; i <= 3000; i++) {
        struct node_stat st = {.kind = NODE_FILE, .size = i};
        CHECK(inode_insert_ref(t, (i << 20) | 5, &c, &st) != NULL);
    }
    CHECK(inode_longest_chain(t) < 16);
    for (uint64_t i = 3001; i <= 200000; i++) { /* past 2 x 65536: the table doubles */
        struct node_stat st = {.kind = NODE_FILE, .size = i};
        if (inode_insert_ref(t, (i << 20) | 5, &c, &st) == NULL) {
            CHECK(false);
            break;
        }
    }
    CHECK_EQ_INT(inode_count(t), 200000);
    CHECK(inode_longest_chain(t) < 24);
    unsigned found = 0;
    for (uint64_t i = 1; i <= 200000; i += 997) {
        struct inode *ino = inode_find_ref(t, (i << 20) | 5, &c);
        found += ino && ino->size == i;
    }
    CHECK_EQ_INT(found, 201);
    inode_table_free(t);
}

/* Names keep their st_ino across a rename, readdir's d_ino follows it, and no two live names
 * share one: a new name where a renamed (or unlinked, still open) one was gets another. */
static void test_mfs_ino(void)
{
    struct inode_table *t;
    CHECK_EQ_INT(inode_table_new(&t), 0);
    struct inode *root = inode_root(t);
    struct mfs_attr a = {.kind = NODE_FILE, .size = 1, .cid_size = 1};
    struct inode *x = inode_mfs_insert_ref(t, root, "a", &a, NULL);
    CHECK(x != NULL);
    uint64_t kx = x->key;
    CHECK_EQ_INT(inode_mfs_ino(t, root, "a"), kx);
    CHECK_EQ_INT(inode_mfs_move(t, x, root, "b"), 0);
    CHECK_EQ_INT(x->key, kx);                      /* st_ino stays */
    CHECK_EQ_INT(inode_mfs_ino(t, root, "b"), kx); /* d_ino matches it */
    uint64_t ka = inode_mfs_ino(t, root, "a");     /* what a new "a" would get */
    CHECK(ka != kx);
    struct inode *y = inode_mfs_insert_ref(t, root, "a", &a, NULL);
    CHECK(y != NULL && y != x && y->key != kx && y->key == ka);

    struct inode *z = inode_mfs_insert_ref(t, root, "c", &a, NULL);
    uint64_t kz = z->key;
    char path[64];
    CHECK_EQ_INT(inode_mfs_path(t, z, "/m", false, path, sizeof path), 0);
    CHECK_EQ_STR(path, "/m/c");
    inode_mfs_detach(t, root, "c"); /* unlinked, still open */
    struct inode *z2 = inode_mfs_insert_ref(t, root, "c", &a, NULL);
    CHECK(z2 != NULL && z2 != z && z2->key != kz);
    /* The detached one has no path: "/m/c" is the new name's, never its (a flush or a
     * refresh would reach another file). */
    CHECK_EQ_INT(inode_mfs_path(t, z, "/m", false, path, sizeof path), -ENOENT);
    CHECK_EQ_INT(inode_mfs_path(t, z2, "/m", false, path, sizeof path), 0);
    /* Nor has what lies under a detached directory. */
    struct mfs_attr d = {.kind = NODE_DIR};
    struct inode *dir = inode_mfs_insert_ref(t, root, "d", &d, NULL);
    struct inode *in = inode_mfs_insert_ref(t, dir, "f", &a, NULL);
    CHECK(dir != NULL && in != NULL);
    CHECK_EQ_INT(inode_mfs_path(t, in, "/m", false, path, sizeof path), 0);
    CHECK_EQ_STR(path, "/m/d/f");
    inode_mfs_detach(t, root, "d");
    CHECK_EQ_INT(inode_mfs_path(t, in, "/m", false, path, sizeof path), -ENOENT);
    /* (The IPNS namespace: the path it had.) */
    CHECK_EQ_INT(inode_mfs_path(t, in, "/m", true, path, sizeof path), 0);
    CHECK_EQ_STR(path, "/m/d/f");
    inode_forget(t, in, 1);
    inode_forget(t, dir, 1);
    inode_forget(t, z, 1); /* freed: its key is free again */
    inode_forget(t, z2, 1);
    struct inode *z3 = inode_mfs_insert_ref(t, root, "c", &a, NULL);
    CHECK(z3 != NULL && z3->key == kz);
    inode_forget(t, z3, 1);
    inode_forget(t, x, 1);
    inode_forget(t, y, 1);
    CHECK_EQ_INT(inode_count(t), 0);
    inode_table_free(t);

    /* Freed with a renamed and a detached name still held (the connection ended): each is
     * freed once (ASan and TSan see a double free or a read after free otherwise). */
    CHECK_EQ_INT(inode_table_new(&t), 0);
    root = inode_root(t);
    x = inode_mfs_insert_ref(t, root, "a", &a, NULL);
    CHECK(x != NULL && inode_mfs_move(t, x, root, "b") == 0);
    CHECK(inode_mfs_insert_ref(t, root, "c", &a, NULL) != NULL);
    inode_mfs_detach(t, root, "c");
    inode_table_free(t);
}

int main(void)
{
    test_basic();
    test_single_flight();
    test_budget();
    test_oversize_stress();
    test_dirent_vec();
    test_name_flood();
    test_inode_keys();
    test_inode_flood();
    test_mfs_ino();
    return unit_done("test_dircache");
}

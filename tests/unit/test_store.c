/* test_store.c - the embedded store backend (node_store.c, blockstore.c, hamt.c): known
 * directory CIDs, names operations and their errno, reads through the DAG, verification of
 * every block (corruption is EIO), crash leftovers, reopening, HAMT directories. */
#include "config.h"

#include "blockstore.h"
#include "dagpb.h"
#include "hamt.h"
#include "node_store.h"
#include "unit.h"
#include "unixfs_enc.h"
#include "writer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base_dir[] = "/tmp/ipfsfs-test-store-XXXXXX";
static unsigned store_counter;

/* A fresh store directory path (not created). */
static void new_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/s%u", base_dir, store_counter++);
}

static struct node *open_store(const char *dir, int cid_version)
{
    struct node_store_config cfg = {.add = {.cid_version = cid_version, .raw_leaves = -1}};
    struct node *n = NULL;
    char err[256];
    int rc = node_store_new(dir, &cfg, &n, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "node_store_new: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    return n;
}

static int add_mem(struct node *n, const void *data, size_t len, int cid_version, struct cid *out)
{
    int fd = memfd_create("add", MFD_CLOEXEC);
    if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len))
        return -EIO;
    struct node_add_opts o = {.cid_version = cid_version, .raw_leaves = -1};
    int rc = n->ops->add(n, fd, len, &o, out);
    close(fd);
    return rc;
}

static const char *fmt(const struct cid *c)
{
    static char s[4][CID_STR_MAX];
    static unsigned i;
    char *b = s[i++ % 4];
    if (cid_format(c, b, CID_STR_MAX) < 0)
        return "(invalid)";
    return b;
}

static const char *mfs_cid(struct node *n, const char *path)
{
    struct node_stat st;
    struct cid c;
    int rc = n->ops->mfs_stat(n, path, &st, &c);
    if (rc < 0)
        return strerror(-rc);
    node_stat_clear(&st);
    return fmt(&c);
}

static const char *root_cid(struct node *n)
{
    return mfs_cid(n, "/");
}

static void test_empty_root_and_reopen(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    CHECK_EQ_STR(root_cid(n), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    struct cid c;
    CHECK_EQ_INT(add_mem(n, "Test", 4, -1, &c), 0);
    CHECK_EQ_STR(fmt(&c), "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    CHECK_EQ_INT(n->ops->mfs_link(n, &c, "/test.txt"), 0);
    /* wrap-with-directory of test.txt=Test */
    CHECK_EQ_STR(root_cid(n), "QmbW7t5BzZb38M61bJUxsRxz6MbDhgrfzQaxyq6hRBBedS");
    node_destroy(n);
    /* The names survive a restart. */
    n = open_store(dir, -1);
    CHECK_EQ_STR(root_cid(n), "QmbW7t5BzZb38M61bJUxsRxz6MbDhgrfzQaxyq6hRBBedS");
    CHECK_EQ_STR(mfs_cid(n, "/test.txt"), "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    /* The block is where the layout says (Kubo flatfs: base32 multihash, next-to-last/2). */
    char p[512];
    snprintf(p, sizeof p,
             "%s/blocks/OX/CIQCKXVU7F47G3EYAK2N3JY2S7RK6ZAV6VSBODAJJGOKVGDYQF3YOXA.data", dir);
    CHECK_EQ_INT(access(p, R_OK), 0);
    CHECK_EQ_INT(access("/nonexistent-dir/blocks", F_OK), -1);
    node_destroy(n);
}

static void build_tree(struct node *n, int v)
{
    struct cid h, w;
    CHECK_EQ_INT(add_mem(n, "hello\n", 6, v, &h), 0);
    CHECK_EQ_INT(add_mem(n, "world\n", 6, v, &w), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &h, "/d/h.txt"), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d/sub"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &w, "/d/sub/w.txt"), 0);
}

static void test_known_dirs(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    build_tree(n, -1);
    CHECK_EQ_STR(mfs_cid(n, "/d/sub"), "QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn");
    CHECK_EQ_STR(mfs_cid(n, "/d"), "QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC");
    CHECK_EQ_STR(mfs_cid(n, "/d/h.txt"), "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN");
    /* Order of creation does not matter: links are sorted. */
    struct cid a, b;
    CHECK_EQ_INT(add_mem(n, "a", 1, -1, &a), 0);
    CHECK_EQ_INT(add_mem(n, "b", 1, -1, &b), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/x"), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/y"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &b, "/x/bb"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &a, "/x/a"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &a, "/y/a"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &b, "/y/bb"), 0);
    CHECK_EQ_STR(mfs_cid(n, "/x"), mfs_cid(n, "/y"));
    node_destroy(n);
    /* The same tree with CIDv1 (raw leaves, v1 directories), as `ipfs add -r --cid-version=1`. */
    new_dir(dir, sizeof dir);
    n = open_store(dir, 1);
    CHECK_EQ_STR(root_cid(n), "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354");
    build_tree(n, -1);
    CHECK_EQ_STR(mfs_cid(n, "/d"), "bafybeieq2enivbskudqkxt7kikhsnrynwmhrjecwtesz2ecz2il43al3bm");
    node_destroy(n);
}

struct listing {
    char names[16][64];
    enum node_kind kinds[16];
    uint64_t sizes[16];
    uint32_t modes[16];
    int n;
    enum node_kind first_kind, last_kind;
};

static int collect(void *ud, const struct node_entry *e)
{
    struct listing *l = ud;
    if (l->n < 16) {
        snprintf(l->names[l->n], sizeof l->names[0], "%.*s", (int)e->name_len, e->name);
        l->kinds[l->n] = e->kind;
        l->sizes[l->n] = e->size;
        l->modes[l->n] = e->mode;
    }
    if (l->n == 0)
        l->first_kind = e->kind;
    l->last_kind = e->kind;
    l->n++;
    return 0;
}

static void test_names_errors(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    const struct node_ops *o = n->ops;
    build_tree(n, -1);
    struct cid h, x;
    struct node_stat st;
    CHECK_EQ_INT(add_mem(n, "hello\n", 6, -1, &h), 0);
    CHECK_EQ_INT(o->mfs_link(n, &h, "/d/h.txt"), -EEXIST);
    CHECK_EQ_INT(o->mfs_link(n, &h, "/nope/h.txt"), -ENOENT);
    CHECK_EQ_INT(o->mfs_link(n, &h, "/d/h.txt/x"), -ENOTDIR);
    CHECK_EQ_INT(o->mfs_link(n, &h, "relative"), -EINVAL);
    CHECK_EQ_INT(o->mfs_link(n, &h, "/d/../x"), -EINVAL);
    CHECK_EQ_INT(o->mfs_mkdir(n, "/d"), -EEXIST);
    CHECK_EQ_INT(o->mfs_mkdir(n, "/"), -EEXIST);
    CHECK_EQ_INT(o->mfs_mkdir(n, "/a/b"), -ENOENT);
    CHECK_EQ_INT(o->mfs_stat(n, "/d/missing", &st, &x), -ENOENT);
    CHECK_EQ_INT(o->mfs_stat(n, "/d/h.txt/x", &st, &x), -ENOTDIR);
    CHECK_EQ_INT(o->mfs_rm(n, "/d/missing", false), -ENOENT);
    CHECK_EQ_INT(o->mfs_rm(n, "/d/sub", false), -EISDIR);
    CHECK_EQ_INT(o->mfs_rm(n, "/", true), -EBUSY);
    /* A block that is not here is ENOENT at once (offline). */
    struct cid missing;
    CHECK_EQ_INT(cid_parse("QmQQuBq3HaJoiQqVkQMHPUwwakJRwVV2XcPZssVkxFUKiF", 46, &missing), 0);
    CHECK_EQ_INT(o->mfs_link(n, &missing, "/m"), -ENOENT);
    CHECK_EQ_INT(o->stat(n, &missing, &st), -ENOENT);
    char buf[8];
    CHECK_EQ_INT(o->read(n, &missing, 0, 1, buf), -ENOENT);
    /* Listings give kinds and sizes. */
    struct listing l = {0};
    CHECK_EQ_INT(o->mfs_list(n, "/d", collect, &l), 0);
    CHECK_EQ_INT(l.n, 2);
    CHECK_EQ_STR(l.names[0], "h.txt");
    CHECK_EQ_INT(l.kinds[0], NODE_FILE);
    CHECK_EQ_INT(l.sizes[0], 6);
    CHECK_EQ_STR(l.names[1], "sub");
    CHECK_EQ_INT(l.kinds[1], NODE_DIR);
    CHECK_EQ_INT(o->mfs_list(n, "/d/h.txt", collect, &l), -ENOTDIR);
    /* mv: replaces a file, refuses a non-empty directory and its own subtree. */
    struct cid w;
    CHECK_EQ_INT(add_mem(n, "world\n", 6, -1, &w), 0);
    CHECK_EQ_INT(o->mfs_link(n, &w, "/w2"), 0);
    CHECK_EQ_INT(o->mfs_mv(n, "/w2", "/d/h.txt"), 0);
    CHECK_EQ_STR(mfs_cid(n, "/d/h.txt"), "QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL");
    CHECK_EQ_INT(o->mfs_stat(n, "/w2", &st, &x), -ENOENT);
    CHECK_EQ_INT(o->mfs_mkdir(n, "/e"), 0);
    CHECK_EQ_INT(o->mfs_mv(n, "/e", "/d"), -ENOTEMPTY);
    CHECK_EQ_INT(o->mfs_mv(n, "/d", "/d/sub/d"), -EINVAL);
    CHECK_EQ_INT(o->mfs_mv(n, "/nope", "/x"), -ENOENT);
    CHECK_EQ_INT(o->mfs_mv(n, "/d/h.txt", "/nope/x"), -ENOENT);
    CHECK_EQ_INT(o->mfs_mv(n, "/d/sub", "/e2"), 0);
    CHECK_EQ_STR(mfs_cid(n, "/e2"), "QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn");
    CHECK_EQ_INT(o->mfs_mv(n, "/e2", "/e"), 0); /* onto an empty directory */
    CHECK_EQ_STR(mfs_cid(n, "/e"), "QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn");
    CHECK_EQ_INT(o->mfs_rm(n, "/e", true), 0);
    CHECK_EQ_INT(o->mfs_rm(n, "/d/h.txt", false), 0);
    CHECK_EQ_STR(mfs_cid(n, "/d"), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    CHECK_EQ_INT(o->mfs_rm(n, "/d", true), 0);
    CHECK_EQ_STR(root_cid(n), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    node_destroy(n);
}

static void test_meta_symlink(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    const struct node_ops *o = n->ops;
    struct cid t, s, raw, c;
    struct node_stat st;
    CHECK_EQ_INT(add_mem(n, "Test", 4, -1, &t), 0);
    CHECK_EQ_INT(o->mfs_link(n, &t, "/t"), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/t", 0600), 0);
    CHECK_EQ_INT(o->mfs_touch(n, "/t", &(struct timespec){1700000000, 0}), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/t", &st, &c), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    CHECK_EQ_INT(st.size, 4);
    CHECK_EQ_INT(st.mode, 0600);
    CHECK(st.has_mtime);
    CHECK_EQ_INT(st.mtime, 1700000000);
    CHECK(!cid_equal(&c, &t));
    char buf[8] = "";
    CHECK_EQ_INT(o->read(n, &c, 0, 4, buf), 4);
    CHECK(memcmp(buf, "Test", 4) == 0);
    /* A time with a fraction keeps it (UnixFS 1.5's FractionalNanoseconds): the CID Kubo
     * 0.43.1 gave `ipfs add --preserve-mtime` of a file holding "hi\n" after
     * `touch -d @1700000000.123456789`. */
    struct cid hi;
    CHECK_EQ_INT(add_mem(n, "hi\n", 3, -1, &hi), 0);
    CHECK_EQ_INT(o->mfs_link(n, &hi, "/hi"), 0);
    CHECK_EQ_INT(o->mfs_touch(n, "/hi", &(struct timespec){1700000000, 123456789}), 0);
    CHECK_EQ_STR(mfs_cid(n, "/hi"), "QmP2KzDjDZfE7YTnT3s6Ezo3ozS2QgUhjE9sgAdaKFJMC7");
    CHECK_EQ_INT(o->mfs_stat(n, "/hi", &st, &c), 0);
    CHECK(st.has_mtime && st.mtime == 1700000000 && st.mtime_nsec == 123456789);
    node_stat_clear(&st);
    CHECK_EQ_INT(o->mfs_touch(n, "/hi", &(struct timespec){1700000000, -1}), -EINVAL);
    CHECK_EQ_INT(o->mfs_rm(n, "/hi", false), 0);
    /* A raw leaf becomes a dag-pb leaf to carry the mode. */
    CHECK_EQ_INT(add_mem(n, "Test", 4, 1, &raw), 0);
    CHECK_EQ_STR(fmt(&raw), "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu");
    CHECK_EQ_INT(o->mfs_link(n, &raw, "/r"), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/r", 0755), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/r", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0755);
    CHECK_EQ_INT(st.size, 4);
    CHECK_EQ_INT(c.codec, CID_CODEC_DAG_PB);
    CHECK_EQ_INT(o->read(n, &c, 1, 3, buf), 3);
    CHECK(memcmp(buf, "est", 3) == 0);
    /* Directories keep their metadata through later changes. */
    CHECK_EQ_INT(o->mfs_mkdir(n, "/dir"), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/dir", 0700), 0);
    CHECK_EQ_INT(o->mfs_link(n, &t, "/dir/t"), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/dir", &st, &c), 0);
    CHECK_EQ_INT(st.kind, NODE_DIR);
    CHECK_EQ_INT(st.mode, 0700);
    /* Symlinks. */
    CHECK_EQ_INT(o->put_symlink(n, "../target/x", &s), 0);
    CHECK_EQ_INT(o->mfs_link(n, &s, "/l"), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/l", &st, &c), 0);
    CHECK_EQ_INT(st.kind, NODE_SYMLINK);
    CHECK_EQ_STR(st.target, "../target/x");
    CHECK_EQ_INT(st.size, 11);
    node_stat_clear(&st);
    struct listing l = {0};
    CHECK_EQ_INT(o->mfs_list(n, "/", collect, &l), 0);
    CHECK_EQ_INT(l.n, 4);
    CHECK_EQ_STR(l.names[1], "l");
    CHECK_EQ_INT(l.kinds[1], NODE_SYMLINK);
    CHECK_EQ_INT(l.modes[3], 0600);
    CHECK_EQ_INT(o->put_symlink(n, "", &s), -ENAMETOOLONG);
    char sbuf[512];
    CHECK(o->stats(n, sbuf, sizeof sbuf) > 0);
    CHECK(strstr(sbuf, "store_block_writes") != NULL);
    node_destroy(n);
}

/* chmod to the default mode (0644 files, 0755 directories) stores no mode: the CID is that of
 * the content without metadata, as js-ipfs gives it and as a fresh copy (cp, rsync) gets. */
static void test_default_mode(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    const struct node_ops *o = n->ops;
    struct cid t, raw, c;
    struct node_stat st;
    CHECK_EQ_INT(add_mem(n, "Test", 4, -1, &t), 0);
    CHECK_EQ_INT(o->mfs_link(n, &t, "/f"), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/f", 0644), 0);
    CHECK_EQ_STR(mfs_cid(n, "/f"), "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    CHECK_EQ_INT(o->mfs_chmod(n, "/f", 0600), 0);
    CHECK(strcmp(mfs_cid(n, "/f"), "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR") != 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/f", 0644), 0); /* back to the default: the mode goes */
    CHECK_EQ_STR(mfs_cid(n, "/f"), "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    CHECK_EQ_INT(o->mfs_stat(n, "/f", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0);
    /* The mtime stays when the mode goes. */
    CHECK_EQ_INT(o->mfs_touch(n, "/f", &(struct timespec){1000000, 0}), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/f", 0600), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/f", 0644), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/f", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0);
    CHECK(st.has_mtime);
    CHECK_EQ_INT(st.mtime, 1000000);
    /* A raw leaf stays a raw leaf. */
    CHECK_EQ_INT(add_mem(n, "Test", 4, 1, &raw), 0);
    CHECK_EQ_INT(o->mfs_link(n, &raw, "/r"), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/r", 0644), 0);
    CHECK_EQ_STR(mfs_cid(n, "/r"), "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu");
    /* Directories: 0755 is their default. */
    CHECK_EQ_INT(o->mfs_mkdir(n, "/d"), 0);
    CHECK_EQ_INT(o->mfs_chmod(n, "/d", 0755), 0);
    CHECK_EQ_STR(mfs_cid(n, "/d"), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    CHECK_EQ_INT(o->mfs_chmod(n, "/d", 0700), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/d", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0700);
    CHECK_EQ_INT(o->mfs_chmod(n, "/d", 0755), 0);
    CHECK_EQ_STR(mfs_cid(n, "/d"), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    /* 0644 is not a directory's default: stored. */
    CHECK_EQ_INT(o->mfs_chmod(n, "/d", 0644), 0);
    CHECK_EQ_INT(o->mfs_stat(n, "/d", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0644);
    node_destroy(n);
}

static void prng(uint8_t *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        buf[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
    }
}

static void test_read_ranges(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    size_t size = 3 * 262144 + 12345;
    uint8_t *data = malloc(size), *buf = malloc(size);
    prng(data, size, 42);
    for (int v = 0; v <= 1; v++) {
        struct cid c;
        struct node_stat st;
        CHECK_EQ_INT(add_mem(n, data, size, v, &c), 0);
        CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
        CHECK_EQ_INT(st.kind, NODE_FILE);
        CHECK_EQ_INT(st.size, size);
        CHECK_EQ_INT(n->ops->read(n, &c, 0, size, (char *)buf), (ssize_t)size);
        CHECK(memcmp(buf, data, size) == 0);
        static const uint64_t offs[] = {0, 1, 262143, 262144, 262145, 524287, 786431};
        static const size_t lens[] = {1, 4096, 262144, 300000};
        for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
            for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
                size_t len = lens[j];
                if (offs[i] + len > size)
                    len = size - offs[i];
                memset(buf, 0, len);
                CHECK_EQ_INT(n->ops->read(n, &c, offs[i], len, (char *)buf), (ssize_t)len);
                CHECK(memcmp(buf, data + offs[i], len) == 0);
            }
        }
        CHECK_EQ_INT(n->ops->list(n, &c, collect, &(struct listing){0}), -ENOTDIR);
    }
    free(data);
    free(buf);
    node_destroy(n);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    chmod(path, 0644);
    unsigned char b = 0;
    CHECK_EQ_INT(pread(fd, &b, 1, off), 1);
    b ^= 0x01;
    CHECK_EQ_INT(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_corruption(void)
{
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct blockstore *bs;
    char err[128];
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    size_t size = 262144 * 2 + 10;
    uint8_t *data = malloc(size);
    char *buf = malloc(size);
    prng(data, size, 7);
    struct cid c, leaf;
    CHECK_EQ_INT(add_mem(n, data, size, 1, &c), 0);
    CHECK_EQ_INT(n->ops->read(n, &c, 0, size, buf), (ssize_t)size);
    /* Corrupt the second leaf: reads touching it fail with EIO, the others still work. */
    CHECK_EQ_INT(add_mem(n, data + 262144, 262144, 1, &leaf), 0);
    CHECK_EQ_INT(node_store_commit(n), 0); /* the blocks under their final names */
    CHECK_EQ_INT(blockstore_path(bs, &leaf, p, sizeof p), 0);
    flip_byte(p, 1000);
    CHECK_EQ_INT(n->ops->read(n, &c, 262144 + 5, 10, buf), -EIO);
    CHECK_EQ_INT(n->ops->read(n, &c, 0, 100, buf), 100);
    CHECK(memcmp(buf, data, 100) == 0);
    uint8_t *blk;
    size_t blen;
    CHECK_EQ_INT(blockstore_get(bs, &leaf, &blk, &blen), -EIO);
    /* Adding the same content again compares the stored bytes and repairs the block (once
     * committed: until then the damaged file still holds the final name). */
    CHECK_EQ_INT(add_mem(n, data, size, 1, &c), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    CHECK_EQ_INT(n->ops->read(n, &c, 262144 + 5, 10, buf), 10);
    CHECK(memcmp(buf, data + 262144 + 5, 10) == 0);
    CHECK_EQ_INT(truncate(p, 10), 0); /* torn: shorter */
    CHECK_EQ_INT(n->ops->read(n, &c, 262144 + 5, 10, buf), -EIO);
    CHECK_EQ_INT(add_mem(n, data, size, 1, &c), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    CHECK_EQ_INT(n->ops->read(n, &c, 262144 + 5, 10, buf), 10);
    CHECK(memcmp(buf, data + 262144 + 5, 10) == 0);
    /* Corrupt the root: stat and read are EIO. */
    CHECK_EQ_INT(blockstore_path(bs, &c, p, sizeof p), 0);
    flip_byte(p, 3);
    struct node_stat st;
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), -EIO);
    CHECK_EQ_INT(n->ops->read(n, &c, 0, 1, buf), -EIO);
    /* A missing leaf is ENOENT. */
    CHECK_EQ_INT(blockstore_path(bs, &leaf, p, sizeof p), 0);
    CHECK_EQ_INT(unlink(p), 0);
    CHECK_EQ_INT(blockstore_get(bs, &leaf, &blk, &blen), -ENOENT);
    blockstore_close(bs);
    free(data);
    free(buf);
    node_destroy(n);
}

static void test_crash_leftovers(void)
{
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct cid t;
    CHECK_EQ_INT(add_mem(n, "Test", 4, -1, &t), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &t, "/test.txt"), 0);
    node_destroy(n);
    /* A crash between writing and renaming leaves temporary files: a half-written block with
     * the name of no block, and a half-written root. Both are ignored. */
    snprintf(p, sizeof p, "%s/.root.tmp-abcdef", dir);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("QmUNLLsPACCz1vLxQVkX", f);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/blocks/OX/.tmp-1-0-abcdef", dir);
    f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("garbage", f);
        fclose(f);
    }
    n = open_store(dir, -1);
    CHECK_EQ_STR(root_cid(n), "QmbW7t5BzZb38M61bJUxsRxz6MbDhgrfzQaxyq6hRBBedS");
    CHECK_EQ_INT(access(p, F_OK), -1); /* the unfinished block file is gone */
    char buf[4];
    CHECK_EQ_INT(n->ops->read(n, &t, 0, 4, buf), 4);
    CHECK(memcmp(buf, "Test", 4) == 0);
    node_destroy(n);
    /* A root file that does not name a CID, or names a missing block, refuses to open. */
    snprintf(p, sizeof p, "%s/root", dir);
    f = fopen(p, "w");
    if (f) {
        fputs("QmQQuBq3HaJoiQqVkQMHPUwwakJRwVV2XcPZssVkxFUKiF\n", f);
        fclose(f);
    }
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1}};
    char err[256] = "";
    n = NULL;
    CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), -ENOENT);
    CHECK(strstr(err, "root") != NULL);
    cfg.add.chunker = "rabin";
    CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), -ENOTSUP);
}

/* One process per store: a second open while the first is live is refused (EBUSY), and the
 * store opens again once the first is closed. */
static void test_store_lock(void)
{
    char dir[256], err[256] = "";
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1}};
    struct node *m = NULL;
    CHECK_EQ_INT(node_store_new(dir, &cfg, &m, err, sizeof err), -EBUSY);
    CHECK(m == NULL);
    CHECK(strstr(err, "in use") != NULL);
    node_destroy(n);
    CHECK_EQ_INT(node_store_new(dir, &cfg, &m, err, sizeof err), 0);
    node_destroy(m);
}

static void test_murmur(void)
{
    /* Go's murmur3.Sum64 (spaolacci/murmur3), as boxo's HAMT uses it. */
    CHECK(hamt_murmur3_64("", 0) == 0);
    CHECK(hamt_murmur3_64("hello", 5) == 0xcbd8a7b341bd9b02ULL);
    CHECK(hamt_murmur3_64("hello, world", 12) == 0x342fac623a5ebc8eULL);
    CHECK(hamt_murmur3_64("19 Jan 2038 at 3:14:07 AM", 25) == 0xb89e5988b737affcULL);
    CHECK(hamt_murmur3_64("The quick brown fox jumps over the lazy dog.", 44) ==
          0xcd99481f9ee902c9ULL);
    unsigned bucket;
    const char *e;
    size_t el;
    CHECK_EQ_INT(hamt_link_name("1Fname", 6, &bucket, &e, &el), 1);
    CHECK_EQ_INT(bucket, 0x1f);
    CHECK_EQ_INT(el, 4);
    CHECK_EQ_INT(hamt_link_name("A0", 2, &bucket, &e, &el), 0);
    CHECK_EQ_INT(hamt_link_name("G0x", 3, &bucket, &e, &el), -EINVAL);
}

/* The type of the directory block at path: UNIXFS_DIRECTORY or UNIXFS_HAMT_SHARD. */
static int dir_type(struct node *n, struct blockstore *bs, const char *path)
{
    struct node_stat st;
    struct cid c;
    uint8_t *b;
    size_t len;
    struct dagpb_node pb;
    struct unixfs_data u;
    (void)bs;
    if (n->ops->mfs_stat(n, path, &st, &c) < 0 || node_store_block(n, &c, &b, &len) < 0)
        return -1;
    int t = -1;
    if (dagpb_decode(b, len, &pb) == 0) {
        if (pb.has_data && unixfs_decode(pb.data, pb.data_len, &u) == 0)
            t = (int)u.type;
        dagpb_node_free(&pb);
    }
    free(b);
    return t;
}

struct named {
    char name[32];
    struct cid cid;
    uint8_t bin[64];
    size_t bin_len;
    uint64_t tsize;
};

static void make_named(struct node *n, struct blockstore *bs, struct named *e, const char *name,
                       const char *content)
{
    snprintf(e->name, sizeof e->name, "%s", name);
    CHECK_EQ_INT(add_mem(n, content, strlen(content), -1, &e->cid), 0);
    e->bin_len = (size_t)cid_to_bytes(&e->cid, e->bin, sizeof e->bin);
    uint8_t *b;
    size_t len;
    (void)bs;
    CHECK_EQ_INT(node_store_block(n, &e->cid, &b, &len), 0);
    e->tsize = len; /* single-block files */
    free(b);
}

static unsigned test_put_version; /* CID version of the shards test_put makes */

static int test_put(void *ud, const uint8_t *block, size_t len, struct cid *out)
{
    int rc = block_cid(test_put_version, CID_CODEC_DAG_PB, block, len, out);
    return rc < 0 ? rc : blockstore_put(ud, out, block, len);
}

static int build_hamt(struct blockstore *bs, const struct named *es, size_t n, struct cid *out)
{
    struct hamt_entry *he = calloc(n, sizeof *he);
    uint64_t ts;
    for (size_t i = 0; i < n; i++)
        he[i] = (struct hamt_entry){.name = es[i].name,
                                    .name_len = strlen(es[i].name),
                                    .cid = es[i].bin,
                                    .cid_len = es[i].bin_len,
                                    .tsize = es[i].tsize};
    int rc = hamt_build(he, n, false, 0, false, 0, 0, test_put, bs, out, &ts);
    free(he);
    return rc;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Load the fixture's blocks ("CID hex" lines) into the store, checking each against its CID. */
static int load_blocks(struct blockstore *bs, const char *fixture, struct cid *first)
{
    size_t len, count = 0;
    char *text = unit_read_fixture(fixture, &len);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n'), *sp = strchr(line, ' ');
        if (!nl || !sp || sp > nl)
            break;
        struct cid c, check;
        CHECK_EQ_INT(cid_parse(line, (size_t)(sp - line), &c), 0);
        size_t hexlen = (size_t)(nl - sp - 1), blen = hexlen / 2;
        uint8_t *b = malloc(blen + 1);
        for (size_t i = 0; i < blen; i++)
            b[i] = (uint8_t)(hexval(sp[1 + 2 * i]) * 16 + hexval(sp[2 + 2 * i]));
        CHECK_EQ_INT(block_cid(c.version, c.codec, b, blen, &check), 0);
        CHECK(cid_equal(&c, &check));
        CHECK_EQ_INT(blockstore_put(bs, &c, b, blen), 0);
        if (count++ == 0)
            *first = c;
        free(b);
        line = nl + 1;
    }
    free(text);
    return (int)count;
}

static int count_entry(void *ud, const struct node_entry *e)
{
    (void)e;
    (*(size_t *)ud)++;
    return 0;
}

/* A sharded directory made by the test node (js-ipfs, shard-split-threshold=100): 1001 files
 * file-NNNN = "content N\n". Reading it through the store, and building the same HAMT. */
static void test_hamt_js(void)
{
    char dir[256], err[128], name[32], content[32];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { N = 1001 };
    struct named *es = calloc(N + 1, sizeof *es);
    for (int i = 0; i < N + 1; i++) {
        snprintf(name, sizeof name, "file-%04d", i);
        snprintf(content, sizeof content, "content %d\n", i);
        make_named(n, bs, &es[i], name, content);
    }
    struct cid root, built;
    CHECK_EQ_INT(load_blocks(bs, "store/hamt-1001.txt", &root), 240);
    CHECK_EQ_STR(fmt(&root), "QmTXvzmnNXkqjvUzHGhkDYq9jA8M5eKmVRfGerX7ZY3vGG");
    CHECK_EQ_INT(build_hamt(bs, es, N, &built), 0);
    CHECK_EQ_STR(fmt(&built), "QmTXvzmnNXkqjvUzHGhkDYq9jA8M5eKmVRfGerX7ZY3vGG");
    /* The same with CIDv1 (raw leaves, v1 shards), as the test node made it. */
    struct named *v1 = calloc(N, sizeof *v1);
    for (int i = 0; i < N; i++) {
        snprintf(v1[i].name, sizeof v1[i].name, "file-%04d", i);
        snprintf(content, sizeof content, "content %d\n", i);
        size_t clen = strlen(content);
        CHECK_EQ_INT(block_cid(1, CID_CODEC_RAW, (const uint8_t *)content, clen, &v1[i].cid), 0);
        v1[i].bin_len = (size_t)cid_to_bytes(&v1[i].cid, v1[i].bin, sizeof v1[i].bin);
        v1[i].tsize = clen;
    }
    test_put_version = 1;
    CHECK_EQ_INT(build_hamt(bs, v1, N, &built), 0);
    test_put_version = 0;
    CHECK_EQ_STR(fmt(&built), "bafybeifwppofzbigycsr23vjk5k44w4j4rxjqgoqbcsavsq2j63xbeiih4");
    free(v1);
    /* Read it: listing, lookups through the shards, file content. */
    size_t count = 0;
    CHECK_EQ_INT(n->ops->list(n, &root, count_entry, &count), 0);
    CHECK_EQ_INT(count, N);
    CHECK_EQ_INT(n->ops->mfs_link(n, &root, "/big"), 0);
    for (int i = 0; i < N; i += 97) {
        char p[64];
        snprintf(p, sizeof p, "/big/file-%04d", i);
        CHECK_EQ_STR(mfs_cid(n, p), fmt(&es[i].cid));
    }
    CHECK_EQ_STR(mfs_cid(n, "/big/file-9999"), strerror(ENOENT));
    char buf[16] = "";
    struct node_stat st;
    struct cid c;
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/big/file-0777", &st, &c), 0);
    CHECK_EQ_INT(st.size, 12);
    CHECK_EQ_INT(n->ops->read(n, &c, 0, 12, buf), 12);
    CHECK(memcmp(buf, "content 777\n", 12) == 0);
    /* Changing it: an added entry keeps the HAMT (as boxo does), equal to a fresh build. */
    CHECK_EQ_INT(n->ops->mfs_link(n, &es[N].cid, "/big/file-1001"), 0);
    CHECK_EQ_INT(dir_type(n, bs, "/big"), UNIXFS_HAMT_SHARD);
    CHECK_EQ_INT(build_hamt(bs, es, N + 1, &built), 0);
    CHECK_EQ_STR(mfs_cid(n, "/big"), fmt(&built));
    count = 0;
    CHECK_EQ_INT(n->ops->mfs_list(n, "/big", count_entry, &count), 0);
    CHECK_EQ_INT(count, N + 1);
    /* A removal leaves it below Kubo's 256 KiB estimate: a plain directory again. */
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/big/file-0000", false), 0);
    CHECK_EQ_INT(dir_type(n, bs, "/big"), UNIXFS_DIRECTORY);
    count = 0;
    CHECK_EQ_INT(n->ops->mfs_list(n, "/big", count_entry, &count), 0);
    CHECK_EQ_INT(count, N);
    CHECK_EQ_STR(mfs_cid(n, "/big/file-0500"), fmt(&es[500].cid));
    free(es);
    blockstore_close(bs);
    node_destroy(n);
}

/* With a small threshold: a directory shards when its estimate goes over it, and goes back. */
static void test_hamt_threshold(void)
{
    char dir[256], err[128], name[32];
    new_dir(dir, sizeof dir);
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .hamt_shard_bytes = 1000};
    struct node *n = NULL;
    CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), 0);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { N = 30 };
    struct named es[N];
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/s"), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/t"), 0);
    for (int i = 0; i < N; i++) {
        char p[64];
        snprintf(name, sizeof name, "n%03d", i);
        make_named(n, bs, &es[i], name, name);
        snprintf(p, sizeof p, "/s/%s", name);
        CHECK_EQ_INT(n->ops->mfs_link(n, &es[i].cid, p), 0);
        /* estimate = (i + 1) * (4 + 34) */
        CHECK_EQ_INT(dir_type(n, bs, "/s"),
                     (i + 1) * 38 > 1000 ? UNIXFS_HAMT_SHARD : UNIXFS_DIRECTORY);
        if (i < 20) {
            snprintf(p, sizeof p, "/t/%s", name);
            CHECK_EQ_INT(n->ops->mfs_link(n, &es[i].cid, p), 0);
        }
    }
    struct cid built;
    CHECK_EQ_INT(build_hamt(bs, es, N, &built), 0);
    CHECK_EQ_STR(mfs_cid(n, "/s"), fmt(&built));
    CHECK_EQ_STR(mfs_cid(n, "/s/n017"), fmt(&es[17].cid));
    CHECK_EQ_INT(n->ops->mfs_chmod(n, "/s", 0700), 0);
    struct node_stat st;
    struct cid c;
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/s", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0700);
    /* Moving entries out, one by one, down to /t's 20: the same plain directory as /t. */
    for (int i = N - 1; i >= 20; i--) {
        char p[64], q[64];
        snprintf(p, sizeof p, "/s/%s", es[i].name);
        snprintf(q, sizeof q, "/%s", es[i].name);
        CHECK_EQ_INT(n->ops->mfs_mv(n, p, q), 0);
    }
    CHECK_EQ_INT(dir_type(n, bs, "/s"), UNIXFS_DIRECTORY);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/s", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0700); /* the mode went through the HAMT and back */
    CHECK_EQ_INT(n->ops->mfs_chmod(n, "/t", 0700), 0);
    CHECK_EQ_STR(mfs_cid(n, "/s"), mfs_cid(n, "/t"));
    /* One more name in each: /s (plain again, kept in memory with the mode it had as a HAMT)
     * and /t (read from its block) still agree. */
    CHECK_EQ_INT(n->ops->mfs_link(n, &es[25].cid, "/s/late"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &es[25].cid, "/t/late"), 0);
    CHECK_EQ_STR(mfs_cid(n, "/s"), mfs_cid(n, "/t"));
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/s", &st, &c), 0);
    CHECK_EQ_INT(st.mode, 0700);
    blockstore_close(bs);
    node_destroy(n);
}

/* Names set, replaced and removed at random in a directory that crosses the threshold both
 * ways: as a HAMT (edited in place, only the shards on a name's path) it is always the HAMT a
 * fresh build of its names gives, and it shards and goes back exactly as the estimate says,
 * also after a reopen (no estimate kept in memory). */
static void test_hamt_edits(void)
{
    char dir[256], err[128], p[64];
    new_dir(dir, sizeof dir);
    /* The pool's blocks are put behind the store's back (bs), unreachable until linked: no
     * background collection. */
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .hamt_shard_bytes = 3000,
                                    .gc_interval_ms = UINT_MAX};
    struct node *n = NULL;
    CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), 0);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { N = 120, OPS = 900 };
    static struct named pool[N], cur[N];
    int at[N]; /* which pool entry's CID name i holds, -1: absent */
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%03d", i);
        make_named(n, bs, &pool[i], name, name);
        at[i] = -1;
    }
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d"), 0);
    uint64_t seed = 42, estimate = 0;
    bool hamt = false;
    unsigned checked = 0, shrunk = 0;
    for (int op = 0; op < OPS; op++) {
        if (op == OPS / 2) { /* nothing kept in memory */
            CHECK_EQ_INT(node_store_commit(n), 0);
            node_destroy(n);
            CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), 0);
        }
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int i = (int)((seed >> 33) % N), j = (int)((seed >> 13) % N);
        /* mostly adds in the first third, mostly removals in the last */
        bool rm = at[i] >= 0 && (op >= 2 * OPS / 3 || ((seed >> 7) % 3) < (unsigned)(op * 3 / OPS));
        snprintf(p, sizeof p, "/d/%s", pool[i].name);
        uint64_t size = strlen(pool[i].name) + pool[j].bin_len;
        if (rm) {
            CHECK_EQ_INT(n->ops->mfs_rm(n, p, false), 0);
            estimate -= strlen(pool[i].name) + pool[at[i]].bin_len;
            at[i] = -1;
            hamt = hamt && estimate > 3000;
            shrunk += !hamt;
        } else {
            if (at[i] >= 0) {
                CHECK_EQ_INT(n->ops->mfs_rm(n, p, false), 0); /* mfs_link refuses a name there */
                estimate -= strlen(pool[i].name) + pool[at[i]].bin_len;
                hamt = hamt && estimate > 3000;
            }
            CHECK_EQ_INT(n->ops->mfs_link(n, &pool[j].cid, p), 0);
            at[i] = j;
            estimate += size;
            hamt = hamt || estimate > 3000;
        }
        CHECK_EQ_INT(dir_type(n, bs, "/d"), hamt ? UNIXFS_HAMT_SHARD : UNIXFS_DIRECTORY);
        if (!hamt || op % 3)
            continue;
        size_t m = 0;
        for (int k = 0; k < N; k++)
            if (at[k] >= 0) {
                cur[m] = pool[at[k]];
                memcpy(cur[m].name, pool[k].name, sizeof cur[m].name);
                m++;
            }
        struct cid built;
        test_put_version = 0;
        CHECK_EQ_INT(build_hamt(bs, cur, m, &built), 0);
        CHECK_EQ_STR(mfs_cid(n, "/d"), fmt(&built));
        if (at[j] >= 0) {
            snprintf(p, sizeof p, "/d/%s", pool[j].name);
            CHECK_EQ_STR(mfs_cid(n, p), fmt(&pool[at[j]].cid));
        }
        checked++;
    }
    CHECK(checked > 100);
    CHECK(shrunk > 0);
    blockstore_close(bs);
    node_destroy(n);
}

/* A HAMT of directories: each change of a file deep inside replaces one of its entries in
 * place (a name kept, its CID changed). A reopened store keeps no estimate, so its first
 * change of /top rebuilds it whole (the canonical HAMT); a name added and removed again then
 * gives back the CID the edits in place gave, at each of several checkpoints. */
static void test_hamt_replace(void)
{
    char dir[256], err[128], p[64];
    new_dir(dir, sizeof dir);
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .hamt_shard_bytes = 1500};
    struct node *n = NULL;
    CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), 0);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { NS = 60, NF = 30, OPS = 1200 };
    static struct named pool[NF];
    static bool has[NS][NF];
    for (int i = 0; i < NF; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%02d", i);
        make_named(n, bs, &pool[i], name, name);
    }
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/top"), 0);
    for (int i = 0; i < NS; i++) {
        snprintf(p, sizeof p, "/top/sub%03d", i);
        CHECK_EQ_INT(n->ops->mfs_mkdir(n, p), 0);
    }
    CHECK_EQ_INT(dir_type(n, bs, "/top"), UNIXFS_HAMT_SHARD);
    uint64_t seed = 7;
    for (int op = 1; op <= OPS; op++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int d = (int)((seed >> 33) % NS), f = (int)((seed >> 20) % NF);
        snprintf(p, sizeof p, "/top/sub%03d/%s", d, pool[f].name);
        if (has[d][f])
            CHECK_EQ_INT(n->ops->mfs_rm(n, p, false), 0);
        else
            CHECK_EQ_INT(n->ops->mfs_link(n, &pool[f].cid, p), 0);
        has[d][f] = !has[d][f];
        if (op % 300)
            continue;
        char edited[CID_STR_MAX];
        snprintf(edited, sizeof edited, "%s", mfs_cid(n, "/top"));
        CHECK_EQ_INT(node_store_commit(n), 0);
        node_destroy(n);
        CHECK_EQ_INT(node_store_new(dir, &cfg, &n, err, sizeof err), 0);
        CHECK_EQ_INT(n->ops->mfs_link(n, &pool[0].cid, "/top/zz-extra"), 0); /* rebuilt */
        CHECK_EQ_INT(n->ops->mfs_rm(n, "/top/zz-extra", false), 0);           /* edited */
        CHECK_EQ_STR(mfs_cid(n, "/top"), edited);
    }
    blockstore_close(bs);
    node_destroy(n);
}

static uint64_t stat_value(struct node *n, const char *key);

/* Many changes to the same directories, in two orders (each change of a directory starts from
 * its entries as the last change left them, kept in memory): the same names give the same
 * CIDs, every name resolves to its content, and a reopened store (nothing in memory) agrees. */
static void test_dir_changes_order(void)
{
    char da[256], db[256], p[64], q[64];
    new_dir(da, sizeof da);
    new_dir(db, sizeof db);
    struct node *a = open_store(da, -1), *b = open_store(db, -1);
    enum { N = 60 };
    struct cid c[N];
    for (int i = 0; i < N; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "content %d", i);
        CHECK_EQ_INT(add_mem(a, body, (size_t)len, -1, &c[i]), 0);
        struct cid cb;
        CHECK_EQ_INT(add_mem(b, body, (size_t)len, -1, &cb), 0);
        CHECK(cid_equal(&c[i], &cb));
    }
    /* a: names in order, interleaved between /d/e and /f; then some removed, moved, replaced */
    CHECK_EQ_INT(a->ops->mfs_mkdir(a, "/d"), 0);
    CHECK_EQ_INT(a->ops->mfs_mkdir(a, "/d/e"), 0);
    CHECK_EQ_INT(a->ops->mfs_mkdir(a, "/f"), 0);
    for (int i = 0; i < N; i++) {
        snprintf(p, sizeof p, i % 2 ? "/f/n%02d" : "/d/e/n%02d", i);
        CHECK_EQ_INT(a->ops->mfs_link(a, &c[i], p), 0);
    }
    for (int i = 0; i < N; i += 5) { /* every fifth name: gone */
        snprintf(p, sizeof p, i % 2 ? "/f/n%02d" : "/d/e/n%02d", i);
        CHECK_EQ_INT(a->ops->mfs_rm(a, p, false), 0);
    }
    for (int i = 1; i < N; i += 6) { /* some odd names move from /f to /d/e */
        if (i % 5 == 0)
            continue;
        snprintf(p, sizeof p, "/f/n%02d", i);
        snprintf(q, sizeof q, "/d/e/n%02d", i);
        CHECK_EQ_INT(a->ops->mfs_mv(a, p, q), 0);
    }
    CHECK_EQ_INT(a->ops->mfs_put(a, &c[0], "/d/e/n02", NULL, NULL), 0); /* replaced */
    /* b: the same final names, made in reverse order, each once */
    CHECK_EQ_INT(b->ops->mfs_mkdir(b, "/f"), 0);
    CHECK_EQ_INT(b->ops->mfs_mkdir(b, "/d"), 0);
    CHECK_EQ_INT(b->ops->mfs_mkdir(b, "/d/e"), 0);
    for (int i = N - 1; i >= 0; i--) {
        if (i % 5 == 0)
            continue;
        bool moved = i % 2 && (i - 1) % 6 == 0;
        snprintf(p, sizeof p, i % 2 && !moved ? "/f/n%02d" : "/d/e/n%02d", i);
        CHECK_EQ_INT(b->ops->mfs_link(b, i == 2 ? &c[0] : &c[i], p), 0);
    }
    char ra[CID_STR_MAX];
    snprintf(ra, sizeof ra, "%s", root_cid(a));
    CHECK_EQ_STR(ra, root_cid(b));
    CHECK_EQ_STR(mfs_cid(a, "/d/e"), mfs_cid(b, "/d/e"));
    CHECK_EQ_STR(mfs_cid(a, "/f"), mfs_cid(b, "/f"));
    for (int i = 0; i < N; i++) {
        bool moved = i % 2 && (i - 1) % 6 == 0;
        snprintf(p, sizeof p, i % 2 && !moved ? "/f/n%02d" : "/d/e/n%02d", i);
        if (i % 5 == 0)
            CHECK_EQ_STR(mfs_cid(a, p), strerror(ENOENT));
        else
            CHECK_EQ_STR(mfs_cid(a, p), fmt(i == 2 ? &c[0] : &c[i]));
    }
    CHECK(stat_value(a, "store_changed_dir_hits ") > 100); /* the path taken */
    /* A directory with a mode and an mtime: changed from memory (w) and, name by name, from
     * a reopened store (m: every change reads the block) give the same CIDs. */
    char dw[256], dm[256];
    new_dir(dw, sizeof dw);
    new_dir(dm, sizeof dm);
    struct node *w = open_store(dw, -1), *m = open_store(dm, -1);
    for (struct node *x = w;; x = m) {
        CHECK_EQ_INT(x->ops->mfs_mkdir(x, "/meta"), 0);
        CHECK_EQ_INT(x->ops->mfs_chmod(x, "/meta", 0700), 0);
        CHECK_EQ_INT(x->ops->mfs_touch(x, "/meta", &(struct timespec){1700000000, 0}), 0);
        if (x == m)
            break;
    }
    for (int i = 0; i < 10; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "content %d", i);
        struct cid cw, cm;
        snprintf(p, sizeof p, "/meta/m%d", i);
        CHECK_EQ_INT(add_mem(w, body, (size_t)len, -1, &cw), 0);
        CHECK_EQ_INT(w->ops->mfs_link(w, &cw, p), 0);
        node_destroy(m);
        m = open_store(dm, -1);
        CHECK_EQ_INT(add_mem(m, body, (size_t)len, -1, &cm), 0);
        CHECK_EQ_INT(m->ops->mfs_link(m, &cm, p), 0);
    }
    CHECK(stat_value(w, "store_changed_dir_hits ") >= 9);
    CHECK_EQ_STR(mfs_cid(w, "/meta"), mfs_cid(m, "/meta"));
    struct node_stat mst;
    struct cid mc;
    CHECK_EQ_INT(w->ops->mfs_stat(w, "/meta", &mst, &mc), 0);
    CHECK_EQ_INT(mst.mode, 0700);
    CHECK(mst.has_mtime && mst.mtime == 1700000000);
    node_stat_clear(&mst);
    node_destroy(w);
    node_destroy(m);
    CHECK_EQ_STR(mfs_cid(a, "/f/n07"), strerror(ENOENT)); /* moved away */
    CHECK_EQ_STR(mfs_cid(a, "/d/e/n07"), fmt(&c[7]));
    node_destroy(a);
    node_destroy(b);
    a = open_store(da, -1);
    CHECK_EQ_STR(root_cid(a), ra);
    CHECK_EQ_STR(mfs_cid(a, "/d/e/n07"), fmt(&c[7]));
    node_destroy(a);
}

struct worker {
    struct node *n;
    struct cid cid;
    int id, failures;
};

static void *link_worker(void *arg)
{
    struct worker *w = arg;
    char p[64], buf[4];
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "/c/w%d-%d", w->id, i);
        if (w->n->ops->mfs_link(w->n, &w->cid, p) != 0)
            w->failures++;
        if (w->n->ops->read(w->n, &w->cid, 0, 4, buf) != 4 || memcmp(buf, "Test", 4) != 0)
            w->failures++;
    }
    return NULL;
}

/* Names changed from several threads at once: every change lands (one lock, no lost update). */
static void test_concurrency(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct worker w[4];
    pthread_t t[4];
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/c"), 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.n = n, .id = i};
        CHECK_EQ_INT(add_mem(n, "Test", 4, -1, &w[i].cid), 0);
        CHECK_EQ_INT(pthread_create(&t[i], NULL, link_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(w[i].failures, 0);
    }
    size_t count = 0;
    CHECK_EQ_INT(n->ops->mfs_list(n, "/c", count_entry, &count), 0);
    CHECK_EQ_INT(count, 40);
    node_destroy(n);
}

/* ---- hostile blocks ---------------------------------------------------------------------- *
 * Anyone who can copy a file into the store puts its bytes there, and blocks are keyed by
 * multihash: the dag-pb CID of those same bytes then names a dag-pb node of their choosing.
 * Each case below says what the user sees and how long it took (printed to the test log).
 * The time bounds are generous (20 s, where each case takes well under 1 s on an idle machine
 * and a few seconds on a loaded one) and only there to fail the unbounded walks these tests
 * were written against (minutes, or never): they check results too, which do not depend on
 * the machine's speed.
 */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define SLOW_BOUND 20.0

static void report(const char *what, double t0, int rc)
{
    fprintf(stderr, "hostile: %-58s -> %-28s %.3f s\n", what, rc < 0 ? strerror(-rc) : "ok",
            now() - t0);
}

static int put_block(struct blockstore *bs, unsigned version, uint64_t codec,
                     const struct bytebuf *b, struct cid *out)
{
    int rc = block_cid(version, codec, b->p, b->len, out);
    return rc < 0 ? rc : blockstore_put(bs, out, b->p, b->len);
}

/* A dag-pb file node over links (all to child, blocksize bs each) with the given data. */
static int put_file_node(struct blockstore *bs, const struct cid *child, size_t nlinks,
                         uint64_t bs1, const uint8_t *data, size_t data_len, bool has_filesize,
                         struct cid *out)
{
    uint8_t hash[CID_MAX_MH + 20];
    int hl = child ? cid_to_bytes(child, hash, sizeof hash) : 0;
    struct pb_link_out *links = calloc(nlinks ? nlinks : 1, sizeof *links);
    uint64_t *sizes = calloc(nlinks ? nlinks : 1, sizeof *sizes);
    for (size_t i = 0; i < nlinks; i++) {
        links[i] = (struct pb_link_out){.hash = hash, .hash_len = (size_t)hl, .name = "",
                                        .tsize = bs1};
        sizes[i] = bs1;
    }
    struct unixfs_fields f = {.type = UNIXFS_FILE,
                              .data = data,
                              .data_len = data_len,
                              .has_data = data_len > 0,
                              .filesize = data_len + nlinks * bs1,
                              .has_filesize = has_filesize,
                              .blocksizes = sizes,
                              .nblocksizes = nlinks};
    struct bytebuf d = {0}, b = {0};
    int rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, nlinks, d.p, d.len, true, &b);
    if (rc == 0)
        rc = put_block(bs, 1, CID_CODEC_DAG_PB, &b, out);
    bytebuf_free(&d);
    bytebuf_free(&b);
    free(links);
    free(sizes);
    return rc;
}

/* The issue's case: a 240 KB file copied in (--cid-version=1: one raw block) whose bytes are a
 * dag-pb node listing 120,000 blocksizes, no filesize, no links. stat of its dag-pb CIDv0
 * summed them with one rescan per blocksize (did not answer within 60 s). */
static void test_hostile_blocksizes(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, 1);
    enum { NB = 120000 };
    uint64_t *sizes = calloc(NB, sizeof *sizes);
    for (size_t i = 0; i < NB; i++)
        sizes[i] = 1;
    struct unixfs_fields f = {.type = UNIXFS_FILE, .blocksizes = sizes, .nblocksizes = NB};
    struct bytebuf d = {0}, b = {0};
    CHECK_EQ_INT(unixfs_encode(&f, &d), 0);
    CHECK_EQ_INT(dagpb_encode(NULL, 0, d.p, d.len, true, &b), 0);
    CHECK(b.len > 235000 && b.len < 245000);
    struct cid raw, v0;
    CHECK_EQ_INT(add_mem(n, b.p, b.len, 1, &raw), 0);
    CHECK_EQ_INT(raw.codec, CID_CODEC_RAW);
    CHECK_EQ_INT(block_cid(0, CID_CODEC_DAG_PB, b.p, b.len, &v0), 0);
    struct node_stat st;
    char buf[16];
    double t0 = now();
    int rc = n->ops->stat(n, &v0, &st);
    report("stat: dag-pb view of a raw file, 120k blocksizes", t0, rc);
    CHECK_EQ_INT(rc, -EIO); /* 120,000 blocksizes for no link: inconsistent */
    CHECK(now() - t0 < SLOW_BOUND);
    t0 = now();
    rc = (int)n->ops->read(n, &v0, 0, 1, buf);
    report("read: the same", t0, rc);
    CHECK_EQ_INT(rc, -EIO);
    CHECK_EQ_INT(n->ops->list(n, &v0, collect, &(struct listing){0}), -ENOTDIR);
    CHECK(now() - t0 < SLOW_BOUND);
    /* The raw CID of the same block is the file as copied in. */
    CHECK_EQ_INT(n->ops->stat(n, &raw, &st), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    CHECK_EQ_INT(st.size, b.len);
    char *back = malloc(b.len);
    CHECK_EQ_INT(n->ops->read(n, &raw, 0, b.len, back), (ssize_t)b.len);
    CHECK(memcmp(back, b.p, b.len) == 0);
    free(back);
    /* And a store directory block read through its raw CID: its bytes, as a file. */
    struct cid rootc, rawroot;
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d"), 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/", &st, &rootc), 0);
    rawroot = rootc;
    rawroot.version = 1;
    rawroot.codec = CID_CODEC_RAW;
    CHECK_EQ_INT(n->ops->stat(n, &rawroot, &st), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    CHECK(st.size > 0);
    free(sizes);
    bytebuf_free(&d);
    bytebuf_free(&b);
    node_destroy(n);
}

/* A consistent file of 60,000 one-byte children (one leaf, linked 60,000 times): its size, a
 * read of its end and a chmod (which re-encodes the blocksizes) each walk the blocksizes
 * once, not once per link. */
static void test_hostile_wide_file(void)
{
    char dir[256], err[128];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, 1);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { NL = 60000 };
    struct bytebuf x = {.p = (uint8_t *)"x", .len = 1};
    struct cid leaf, root, nc;
    CHECK_EQ_INT(put_block(bs, 1, CID_CODEC_RAW, &x, &leaf), 0);
    CHECK_EQ_INT(put_file_node(bs, &leaf, NL, 1, NULL, 0, true, &root), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0); /* visible to the store's own handle */
    struct node_stat st;
    double t0 = now();
    int rc = n->ops->stat(n, &root, &st);
    report("stat: file of 60k links to one 1-byte leaf", t0, rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(st.size, NL);
    char *buf = malloc(NL);
    t0 = now();
    rc = (int)n->ops->read(n, &root, NL - 4096, 4096, buf); /* skips 56k blocksizes first */
    report("read: its last 4 KiB", t0, rc);
    CHECK_EQ_INT(rc, 4096);
    size_t xs = 0;
    for (size_t i = 0; i < 4096; i++)
        xs += buf[i] == 'x';
    CHECK_EQ_INT(xs, 4096);
    CHECK(now() - t0 < SLOW_BOUND);
    CHECK_EQ_INT(n->ops->mfs_link(n, &root, "/wide"), 0);
    t0 = now();
    rc = n->ops->mfs_chmod(n, "/wide", 0600);
    report("chmod: its name (re-encodes 60k blocksizes)", t0, rc);
    CHECK_EQ_INT(rc, 0);
    CHECK(now() - t0 < SLOW_BOUND);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/wide", &st, &nc), 0);
    CHECK_EQ_INT(st.size, NL);
    CHECK_EQ_INT(st.mode, 0600);
    CHECK_EQ_INT(n->ops->read(n, &nc, NL - 10, 10, buf), 10);
    CHECK(memcmp(buf, "xxxxxxxxxx", 10) == 0);
    free(buf);
    blockstore_close(bs);
    node_destroy(n);
}

/* One 2 MiB block linked 4,000 times, one byte of it each: a read of 4,000 bytes would hash
 * 8 GB. Refused past the read's budget (16 MiB + 16 bytes per byte read); a read of 4 bytes
 * (8 MiB) still works. A DAG
 * deeper than 64 levels: EIO at once. */
static void test_hostile_amplified_read(void)
{
    char dir[256], err[128];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, 1);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { NL = 4000 };
    struct bytebuf big = {.p = malloc(2u << 20), .len = 2u << 20};
    prng(big.p, big.len, 99);
    struct cid bigc, root;
    CHECK_EQ_INT(put_block(bs, 1, CID_CODEC_RAW, &big, &bigc), 0);
    CHECK_EQ_INT(put_file_node(bs, &bigc, NL, 1, NULL, 0, true, &root), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    char *buf = malloc(NL);
    double t0 = now();
    int rc = (int)n->ops->read(n, &root, 0, NL, buf);
    report("read: 4k bytes, each from one 2 MiB block", t0, rc);
    CHECK_EQ_INT(rc, -EIO);
    CHECK(now() - t0 < SLOW_BOUND);
    CHECK_EQ_INT(n->ops->read(n, &root, 100, 4, buf), 4); /* byte 0 of the block, 4 times */
    for (int i = 0; i < 4; i++)
        CHECK(buf[i] == (char)big.p[0]);
    /* 100 levels of one link each */
    struct cid cur;
    struct bytebuf x = {.p = (uint8_t *)"y", .len = 1};
    CHECK_EQ_INT(put_block(bs, 1, CID_CODEC_RAW, &x, &cur), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(put_file_node(bs, &cur, 1, 1, NULL, 0, true, &cur), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    t0 = now();
    rc = (int)n->ops->read(n, &cur, 0, 1, buf);
    report("read: a DAG 100 levels deep", t0, rc);
    CHECK_EQ_INT(rc, -EIO);
    free(buf);
    free(big.p);
    blockstore_close(bs);
    node_destroy(n);
}

/* A HAMT shard over links "00".."FF" (sub-shards: alternately sub's CIDv1 and CIDv0, one
 * block) plus the entries given. */
static int put_shard(struct blockstore *bs, const struct cid *sub, size_t nsub,
                     const struct pb_link_out *entries, size_t nent, struct cid *out)
{
    uint8_t hash[2][CID_MAX_MH + 20], bitfield[32];
    char names[300][3];
    struct cid v0 = sub ? *sub : (struct cid){0};
    v0.version = 0;
    int hl[2] = {sub ? cid_to_bytes(sub, hash[0], sizeof hash[0]) : 0,
                 sub ? cid_to_bytes(&v0, hash[1], sizeof hash[1]) : 0};
    struct pb_link_out links[300];
    size_t nl = 0;
    for (size_t i = 0; i < nsub && nl < 300; i++, nl++) {
        snprintf(names[nl], sizeof names[nl], "%02X", (unsigned)(i & 0xff));
        links[nl] = (struct pb_link_out){.hash = hash[i & 1], .hash_len = (size_t)hl[i & 1],
                                         .name = names[nl], .name_len = 2, .tsize = 100};
    }
    for (size_t i = 0; i < nent && nl < 300; i++)
        links[nl++] = entries[i];
    memset(bitfield, 0xff, sizeof bitfield);
    struct unixfs_fields f = {.type = UNIXFS_HAMT_SHARD,
                              .data = bitfield,
                              .data_len = sizeof bitfield,
                              .has_data = true,
                              .hash_type = HAMT_HASH_MURMUR3,
                              .has_hash_type = true,
                              .fanout = HAMT_FANOUT,
                              .has_fanout = true};
    struct bytebuf d = {0}, b = {0};
    int rc = unixfs_encode(&f, &d);
    if (rc == 0)
        rc = dagpb_encode(links, nl, d.p, d.len, true, &b);
    if (rc == 0)
        rc = put_block(bs, 1, CID_CODEC_DAG_PB, &b, out);
    bytebuf_free(&d);
    bytebuf_free(&b);
    return rc;
}

/* Eight levels of shards, each linking the next one 256 times (by its CIDv1 and its CIDv0):
 * 256^7 paths to two entries.
 * A listing (and a change to the directory) loads each shard once and gives 2 entries. A
 * shard with more than 256 links is not a shard: EIO. */
static void test_hostile_hamt(void)
{
    char dir[256], err[128];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, 1);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    struct bytebuf x = {.p = (uint8_t *)"x", .len = 1};
    struct cid leaf, cur, wide;
    uint8_t lh[CID_MAX_MH + 20];
    CHECK_EQ_INT(put_block(bs, 1, CID_CODEC_RAW, &x, &leaf), 0);
    int ll = cid_to_bytes(&leaf, lh, sizeof lh);
    struct pb_link_out ents[2] = {
        {.hash = lh, .hash_len = (size_t)ll, .name = "00alpha", .name_len = 7, .tsize = 1},
        {.hash = lh, .hash_len = (size_t)ll, .name = "01beta", .name_len = 6, .tsize = 1},
    };
    CHECK_EQ_INT(put_shard(bs, NULL, 0, ents, 2, &cur), 0);
    for (int level = 0; level < 7; level++)
        CHECK_EQ_INT(put_shard(bs, &cur, 256, NULL, 0, &cur), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    struct listing li = {0};
    double t0 = now();
    int rc = n->ops->list(n, &cur, collect, &li);
    report("ls: HAMT, 8 levels, each shard linked 256 times", t0, rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(li.n, 2);
    CHECK(now() - t0 < SLOW_BOUND);
    /* Changing it: the names walk (collect_entries) is bounded the same way. */
    CHECK_EQ_INT(n->ops->mfs_link(n, &cur, "/h"), 0);
    t0 = now();
    rc = n->ops->mfs_link(n, &leaf, "/h/gamma");
    report("ln: a new name inside it", t0, rc);
    CHECK_EQ_INT(rc, 0);
    CHECK(now() - t0 < SLOW_BOUND);
    li = (struct listing){0};
    CHECK_EQ_INT(n->ops->mfs_list(n, "/h", collect, &li), 0);
    CHECK_EQ_INT(li.n, 3);
    /* 300 links in one shard */
    CHECK_EQ_INT(put_shard(bs, &leaf, 300, NULL, 0, &wide), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    t0 = now();
    rc = n->ops->list(n, &wide, collect, &(struct listing){0});
    report("ls: HAMT shard with 300 links", t0, rc);
    CHECK_EQ_INT(rc, -EIO);
    struct cid found;
    CHECK_EQ_INT(n->ops->mfs_link(n, &wide, "/w"), 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/w/anything", &(struct node_stat){0}, &found), -EIO);
    /* A sub-shard of 1 MiB (a shard is ~120 KB at most): EIO, not loaded 256 times */
    struct unixfs_fields f = {.type = UNIXFS_HAMT_SHARD,
                              .data = calloc(1, 1u << 20),
                              .data_len = 1u << 20,
                              .has_data = true,
                              .hash_type = HAMT_HASH_MURMUR3,
                              .has_hash_type = true,
                              .fanout = HAMT_FANOUT,
                              .has_fanout = true};
    struct bytebuf d = {0}, b = {0};
    struct cid fat, top;
    CHECK_EQ_INT(unixfs_encode(&f, &d), 0);
    CHECK_EQ_INT(dagpb_encode(NULL, 0, d.p, d.len, true, &b), 0);
    CHECK_EQ_INT(put_block(bs, 1, CID_CODEC_DAG_PB, &b, &fat), 0);
    CHECK_EQ_INT(put_shard(bs, &fat, 2, NULL, 0, &top), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    t0 = now();
    rc = n->ops->list(n, &top, collect, &(struct listing){0});
    report("ls: HAMT whose sub-shard is 1 MiB", t0, rc);
    CHECK_EQ_INT(rc, -EIO);
    free((void *)f.data);
    bytebuf_free(&d);
    bytebuf_free(&b);
    blockstore_close(bs);
    node_destroy(n);
}

/* A plain directory of 4,000 names, all one 1 MiB file block: telling each entry's kind and
 * size read 4 GB. Past the listing's budget (64 MiB) entries say "unknown" (stat tells). */
/* A directory from outside with one name twice: setting that name leaves one entry of it (as
 * Kubo's RemoveNodeLink, which removes them all), and removing it removes every one. */
static void test_duplicate_names(void)
{
    char dir[256], err[128];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    struct cid f1, f2, f3, d;
    CHECK_EQ_INT(add_mem(n, "one", 3, -1, &f1), 0);
    CHECK_EQ_INT(add_mem(n, "two", 3, -1, &f2), 0);
    CHECK_EQ_INT(add_mem(n, "three", 5, -1, &f3), 0);
    uint8_t h1[CID_MAX_MH + 20], h2[CID_MAX_MH + 20];
    int l1 = cid_to_bytes(&f1, h1, sizeof h1), l2 = cid_to_bytes(&f2, h2, sizeof h2);
    struct pb_link_out links[3] = {
        {.hash = h1, .hash_len = (size_t)l1, .name = "a", .name_len = 1, .tsize = 11},
        {.hash = h2, .hash_len = (size_t)l2, .name = "a", .name_len = 1, .tsize = 11},
        {.hash = h2, .hash_len = (size_t)l2, .name = "b", .name_len = 1, .tsize = 11}};
    static const uint8_t dirdata[] = {0x08, 0x01};
    struct bytebuf b = {0};
    CHECK_EQ_INT(dagpb_encode(links, 3, dirdata, sizeof dirdata, true, &b), 0);
    CHECK_EQ_INT(put_block(bs, 0, CID_CODEC_DAG_PB, &b, &d), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    bytebuf_free(&b);
    CHECK_EQ_INT(n->ops->mfs_link(n, &d, "/dup"), 0);
    CHECK_EQ_INT(n->ops->mfs_put(n, &f3, "/dup/a", NULL, NULL), 0);
    struct listing li = {0};
    struct node_stat st;
    struct cid dc;
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/dup", &st, &dc), 0);
    CHECK_EQ_INT(n->ops->list(n, &dc, collect, &li), 0);
    CHECK_EQ_INT(li.n, 2);
    CHECK_EQ_STR(mfs_cid(n, "/dup/a"), fmt(&f3));
    CHECK_EQ_STR(mfs_cid(n, "/dup/b"), fmt(&f2));
    /* the same from a directory with no duplicate: the same CID */
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/clean"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &f2, "/clean/b"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &f3, "/clean/a"), 0);
    CHECK_EQ_STR(mfs_cid(n, "/dup"), mfs_cid(n, "/clean"));
    CHECK_EQ_INT(n->ops->mfs_link(n, &d, "/dup2"), 0);
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/dup2/a", false), 0);
    CHECK_EQ_STR(mfs_cid(n, "/dup2/a"), strerror(ENOENT));
    CHECK_EQ_STR(mfs_cid(n, "/dup2/b"), fmt(&f2));
    blockstore_close(bs);
    node_destroy(n);
}

static void test_hostile_wide_dir(void)
{
    char dir[256], err[128];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, 1);
    struct blockstore *bs;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { NE = 4000 };
    size_t fl = 1u << 20;
    uint8_t *data = malloc(fl);
    prng(data, fl, 5);
    struct cid file, dirc;
    CHECK_EQ_INT(put_file_node(bs, NULL, 0, 0, data, fl, true, &file), 0);
    uint8_t fh[CID_MAX_MH + 20];
    int fhl = cid_to_bytes(&file, fh, sizeof fh);
    struct pb_link_out *links = calloc(NE, sizeof *links);
    char (*names)[8] = calloc(NE, sizeof *names);
    for (size_t i = 0; i < NE; i++) {
        snprintf(names[i], sizeof names[i], "e%04zu", i);
        links[i] = (struct pb_link_out){.hash = fh, .hash_len = (size_t)fhl, .name = names[i],
                                        .name_len = 5, .tsize = fl + 20};
    }
    static const uint8_t dirdata[] = {0x08, 0x01};
    struct bytebuf b = {0};
    CHECK_EQ_INT(dagpb_encode(links, NE, dirdata, sizeof dirdata, true, &b), 0);
    CHECK_EQ_INT(put_block(bs, 1, CID_CODEC_DAG_PB, &b, &dirc), 0);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    struct listing li = {0};
    double t0 = now();
    int rc = n->ops->list(n, &dirc, collect, &li);
    report("ls: 4k names of one 1 MiB dag-pb file", t0, rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(li.n, NE);
    CHECK_EQ_INT(li.first_kind, NODE_FILE);
    /* One block behind every name: loaded once, then its attributes are kept (by CID), so the
     * last name has them too, and no other block is read. */
    CHECK_EQ_INT(li.last_kind, NODE_FILE);
    CHECK(now() - t0 < SLOW_BOUND);
    bytebuf_free(&b);
    free(links);
    free(names);
    free(data);
    blockstore_close(bs);
    node_destroy(n);
}

/* The store directory: created 0700 whatever the umask, no file in it readable by others, not
 * a symlink, owned by us; the statfs answer is its file system's. */
static void check_private(const char *path, int *bad)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (st.st_mode & 077) {
        fprintf(stderr, "%s has mode %o\n", path, (unsigned)(st.st_mode & 07777));
        (*bad)++;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        check_private(p, bad);
    }
    if (d)
        closedir(d);
}

static void test_store_dir_private(void)
{
    char dir[256], link[300], err[256];
    new_dir(dir, sizeof dir);
    mode_t old = umask(0);
    struct node *n = open_store(dir, -1);
    struct cid c;
    CHECK_EQ_INT(add_mem(n, "Test", 4, -1, &c), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &c, "/t"), 0);
    uint8_t *big = malloc(600000);
    prng(big, 600000, 3);
    CHECK_EQ_INT(add_mem(n, big, 600000, 1, &c), 0); /* several blocks, several shards */
    free(big);
    int bad = 0;
    check_private(dir, &bad);
    CHECK_EQ_INT(bad, 0);
    struct stat st;
    CHECK_EQ_INT(stat(dir, &st), 0);
    CHECK_EQ_INT(st.st_mode & 07777, 0700);
    /* statfs: the store's file system */
    uint64_t total = 0, avail = 0;
    struct statvfs vf;
    CHECK(n->ops->space != NULL);
    if (n->ops->space) {
        CHECK_EQ_INT(n->ops->space(n, &total, &avail), 0);
        CHECK_EQ_INT(statvfs(dir, &vf), 0);
        CHECK(total == (uint64_t)vf.f_blocks * vf.f_frsize);
        CHECK(total > 0 && avail <= total);
    }
    node_destroy(n);
    /* An existing store left open to others is closed again. */
    CHECK_EQ_INT(chmod(dir, 0755), 0);
    n = open_store(dir, -1);
    CHECK_EQ_INT(stat(dir, &st), 0);
    CHECK_EQ_INT(st.st_mode & 07777, 0700);
    node_destroy(n);
    umask(old);
    /* A symlink as the store: refused (ELOOP). */
    snprintf(link, sizeof link, "%s-link", dir);
    CHECK_EQ_INT(symlink(dir, link), 0);
    n = NULL;
    int rc = node_store_new(link, NULL, &n, err, sizeof err);
    CHECK_EQ_INT(rc, -ELOOP);
    CHECK(n == NULL);
    unlink(link);
    /* Someone else's store: refused (needs root to make one). */
    if (geteuid() == 0) {
        char other[256];
        new_dir(other, sizeof other);
        CHECK_EQ_INT(mkdir(other, 0700), 0);
        CHECK_EQ_INT(chown(other, 4242, 4242), 0);
        rc = node_store_new(other, NULL, &n, err, sizeof err);
        CHECK_EQ_INT(rc, -EPERM);
        fprintf(stderr, "someone else's store: %s\n", err);
    }
}


/* ---- group commit, swap_root, fetch (issue 12) ---- */

static struct node *open_store_cfg(const char *dir, const struct node_store_config *cfg)
{
    struct node *n = NULL;
    char err[256];
    int rc = node_store_new(dir, cfg, &n, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "node_store_new: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    return n;
}

/* DIR/root as text (without the newline), or "" */
static const char *root_file(const char *dir)
{
    static char buf[CID_STR_MAX + 2];
    char p[512];
    snprintf(p, sizeof p, "%s/root", dir);
    buf[0] = '\0';
    FILE *f = fopen(p, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* Many changes, one commit; DIR/root moves only on commit; a commit with nothing new is no
 * commit; the commit thread commits on its own within commit_ms. */
static void test_group_commit(void)
{
    char dir[256], path[64], want[CID_STR_MAX];
    new_dir(dir, sizeof dir);
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .commit_ms = 600000};
    struct node *n = open_store_cfg(dir, &cfg);
    struct cid cur, com;
    uint64_t seq0, seq;
    node_store_roots(n, &cur, &com, &seq0);
    CHECK(cid_equal(&cur, &com));
    CHECK_EQ_STR(root_file(dir), fmt(&com));
    CHECK_EQ_STR(node_store_dir(n), dir);
    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof path, "/dir%03d", i);
        CHECK_EQ_INT(n->ops->mfs_mkdir(n, path), 0);
        if (i % 20 == 0) {
            struct cid f;
            char body[32];
            int len = snprintf(body, sizeof body, "file %d\n", i);
            CHECK_EQ_INT(add_mem(n, body, (size_t)len, -1, &f), 0);
            snprintf(path, sizeof path, "/dir%03d/f", i);
            CHECK_EQ_INT(n->ops->mfs_link(n, &f, path), 0);
        }
    }
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/dir007", true), 0);
    CHECK_EQ_INT(n->ops->mfs_mv(n, "/dir008", "/moved"), 0);
    CHECK_EQ_INT(n->ops->mfs_chmod(n, "/moved", 0700), 0);
    node_store_roots(n, &cur, &com, &seq);
    CHECK_EQ_INT(seq, seq0); /* nothing committed yet */
    CHECK(!cid_equal(&cur, &com));
    CHECK_EQ_STR(root_file(dir), fmt(&com));
    snprintf(want, sizeof want, "%s", fmt(&cur));
    CHECK_EQ_INT(n->ops->sync(n), 0); /* the node's sync op is node_store_commit */
    node_store_roots(n, &cur, &com, &seq);
    CHECK_EQ_INT(seq, seq0 + 1);
    CHECK(cid_equal(&cur, &com));
    CHECK_EQ_STR(root_file(dir), want);
    CHECK_EQ_INT(node_store_commit(n), 0);
    node_store_roots(n, NULL, NULL, &seq);
    CHECK_EQ_INT(seq, seq0 + 1);
    /* Every block of the committed root is in the block store itself (not only in memory):
     * a second handle on the same directory reads them. */
    struct blockstore *bs;
    char err[128];
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    const char *check[] = {"/", "/dir000", "/dir000/f", "/moved", "/dir199"};
    for (size_t i = 0; i < sizeof check / sizeof *check; i++) {
        struct node_stat st;
        struct cid c;
        uint8_t *b;
        size_t len;
        CHECK_EQ_INT(n->ops->mfs_stat(n, check[i], &st, &c), 0);
        node_stat_clear(&st);
        CHECK_EQ_INT(blockstore_get(bs, &c, &b, &len), 0);
        if (len)
            free(b);
    }
    blockstore_close(bs);
    node_destroy(n);
    n = open_store(dir, -1);
    CHECK_EQ_STR(root_cid(n), want);
    CHECK_EQ_STR(mfs_cid(n, "/dir007"), strerror(ENOENT));
    node_destroy(n);

    /* The commit thread: within commit_ms of a change, unasked. */
    new_dir(dir, sizeof dir);
    cfg.commit_ms = 50;
    n = open_store_cfg(dir, &cfg);
    node_store_roots(n, NULL, NULL, &seq0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/x"), 0);
    node_store_roots(n, &cur, NULL, NULL);
    for (int i = 0; i < 3000; i++) { /* 30 s: only a hang reaches it */
        node_store_roots(n, NULL, NULL, &seq);
        if (seq != seq0)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ_INT(seq, seq0 + 1);
    CHECK_EQ_STR(root_file(dir), fmt(&cur));
    node_destroy(n);
}

/* A background commit that fails is retried, and reported once by the next node_store_commit
 * (like fsync(2)); the names stay in memory meanwhile. */
static void test_commit_failure(void)
{
    char dir[256], p[512], stats[1024] = "";
    new_dir(dir, sizeof dir);
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .commit_ms = 20};
    struct node *n = open_store_cfg(dir, &cfg);
    struct cid first, cur, com;
    node_store_roots(n, &first, NULL, NULL);
    /* DIR/root cannot be replaced while it is a directory (rename: EISDIR). */
    snprintf(p, sizeof p, "%s/root", dir);
    CHECK_EQ_INT(unlink(p), 0);
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/a"), 0);
    for (int i = 0; i < 3000 && !strstr(stats, "store_commit_errors 1"); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        n->ops->stats(n, stats, sizeof stats);
    }
    CHECK(strstr(stats, "store_commit_errors 0") == NULL);
    node_store_roots(n, &cur, &com, NULL);
    CHECK(cid_equal(&com, &first));
    CHECK(strcmp(mfs_cid(n, "/a"), strerror(ENOENT)) != 0); /* still there, in memory */
    /* Meanwhile a name change fails with the commit's error: it would live only in memory
     * (a full disk: an unmount or a crash would lose it, and no program would know). */
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/a2"), -EISDIR);
    CHECK_EQ_STR(mfs_cid(n, "/a2"), strerror(ENOENT));
    CHECK_EQ_INT(rmdir(p), 0);
    /* The next background try works (or the next change's); it covers every change so far:
     * nothing was lost, nothing to report. */
    for (int i = 0; i < 3000; i++) {
        node_store_roots(n, NULL, &com, NULL);
        if (cid_equal(&com, &cur))
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(cid_equal(&com, &cur));
    CHECK_EQ_STR(root_file(dir), fmt(&cur));
    CHECK_EQ_INT(node_store_commit(n), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/a2"), 0);
    /* A commit that fails itself says so. */
    CHECK_EQ_INT(unlink(p), 0);
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/b"), 0);
    CHECK_EQ_INT(node_store_commit(n), -EISDIR);
    CHECK_EQ_INT(rmdir(p), 0);
    int rc = node_store_commit(n); /* -EISDIR again if a background try failed meanwhile */
    if (rc != 0)
        rc = node_store_commit(n);
    CHECK_EQ_INT(rc, 0);
    node_store_roots(n, &cur, &com, NULL);
    CHECK(cid_equal(&com, &cur));
    node_destroy(n);
}

/* A process that dies without destroy (kill -9): the store holds exactly the root of its last
 * finished commit, and every block of it. */
static void test_crash_without_destroy(void)
{
    char dir[256], committed[CID_STR_MAX];
    int fds[2];
    new_dir(dir, sizeof dir);
    CHECK_EQ_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                        .commit_ms = 600000};
        struct node *n = NULL;
        char err[256];
        if (node_store_new(dir, &cfg, &n, err, sizeof err) < 0)
            _exit(2);
        build_tree(n, 0);
        struct cid c;
        uint8_t big[300000];
        prng(big, sizeof big, 3);
        if (add_mem(n, big, sizeof big, -1, &c) < 0 || n->ops->mfs_link(n, &c, "/d/big") < 0 ||
            node_store_commit(n) < 0)
            _exit(3);
        struct cid cur;
        node_store_roots(n, &cur, NULL, NULL);
        char cs[CID_STR_MAX];
        int len = cid_format(&cur, cs, sizeof cs);
        if (len < 0 || write(fds[1], cs, (size_t)len + 1) != len + 1)
            _exit(4);
        /* More changes, never committed. */
        if (n->ops->mfs_mkdir(n, "/later") < 0 || n->ops->mfs_rm(n, "/d/h.txt", false) < 0 ||
            add_mem(n, "late", 4, -1, &c) < 0 || n->ops->mfs_link(n, &c, "/d/late") < 0)
            _exit(5);
        _exit(0);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], committed, sizeof committed);
    close(fds[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(got > 0);
    if (got <= 0)
        return;
    committed[sizeof committed - 1] = '\0';
    struct node *n = open_store(dir, -1);
    CHECK_EQ_STR(root_cid(n), committed);
    CHECK_EQ_STR(mfs_cid(n, "/later"), strerror(ENOENT));
    CHECK_EQ_STR(mfs_cid(n, "/d/late"), strerror(ENOENT));
    char buf[8];
    struct node_stat st;
    struct cid c;
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/d/h.txt", &st, &c), 0);
    CHECK_EQ_INT(n->ops->read(n, &c, 0, 6, buf), 6);
    CHECK(memcmp(buf, "hello\n", 6) == 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/d/big", &st, &c), 0);
    CHECK_EQ_INT(st.size, 300000);
    uint8_t *big = malloc(300000), *want = malloc(300000);
    prng(want, 300000, 3);
    CHECK_EQ_INT(n->ops->read(n, &c, 0, 300000, (char *)big), 300000);
    CHECK(memcmp(big, want, 300000) == 0);
    free(big);
    free(want);
    node_destroy(n);
}

static void test_swap_root(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, -1);
    struct cid empty, full, cur, com;
    node_store_roots(n, &empty, NULL, NULL);
    build_tree(n, 0);
    node_store_roots(n, &full, NULL, NULL);
    /* Stale expectation: refused, nothing changes. */
    CHECK_EQ_INT(node_store_swap_root(n, &empty, &empty), -EAGAIN);
    node_store_roots(n, &cur, NULL, NULL);
    CHECK(cid_equal(&cur, &full));
    CHECK_EQ_INT(node_store_swap_root(n, &full, &empty), 0);
    CHECK_EQ_STR(root_cid(n), fmt(&empty));
    CHECK_EQ_STR(mfs_cid(n, "/d"), strerror(ENOENT));
    /* Any root resolves, not only the current one. */
    struct cid h;
    CHECK_EQ_INT(node_store_resolve(n, &full, "/d/h.txt", &h), 0);
    CHECK_EQ_INT(node_store_resolve(n, &full, "/d/nope", &h), -ENOENT);
    CHECK_EQ_INT(node_store_resolve(n, &full, "d", &h), -EINVAL);
    /* Back to the tree (its blocks only staged so far: kept by the swap), committed. */
    CHECK_EQ_INT(node_store_swap_root(n, &empty, &full), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    node_store_roots(n, &cur, &com, NULL);
    CHECK(cid_equal(&com, &full));
    CHECK_EQ_STR(root_file(dir), fmt(&full));
    node_destroy(n);
    n = open_store(dir, -1);
    CHECK_EQ_STR(root_cid(n), fmt(&full));
    CHECK_EQ_INT(node_store_resolve(n, &full, "/d/sub/w.txt", &h), 0);
    node_destroy(n);
}

struct fetch_src {
    struct node *from; /* serve its blocks */
    bool lie;          /* serve other bytes */
    unsigned calls;
};

static int fetch_from(void *ud, const struct cid *c, uint8_t **data, size_t *len)
{
    struct fetch_src *f = ud;
    __atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);
    if (f->lie) {
        *data = (uint8_t *)strdup("not the block you asked for");
        *len = strlen((char *)*data);
        return 0;
    }
    return node_store_block(f->from, c, data, len);
}

/* Blocks missing from one store are fetched from another; a wrong block is EIO. */
static void test_fetch(void)
{
    char da[256], db[256];
    new_dir(db, sizeof db);
    new_dir(da, sizeof da);
    struct node *b = open_store(db, 0);
    build_tree(b, 0);
    struct cid broot, aroot, c;
    node_store_roots(b, &broot, NULL, NULL);
    struct fetch_src src = {.from = b};
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .fetch = fetch_from,
                                    .fetch_ud = &src};
    struct node *a = open_store_cfg(da, &cfg);
    node_store_roots(a, &aroot, NULL, NULL);
    CHECK(!node_store_has(a, &broot));
    CHECK_EQ_INT(node_store_swap_root(a, &aroot, &broot), 0);
    /* A stat from what is here (READDIRPLUS's) fetches nothing: it fails while the blocks are
     * remote, and works once they came. */
    struct node_stat st;
    int calls = src.calls;
    CHECK(a->ops->mfs_stat_here(a, "/d/h.txt", &st, &c) < 0);
    CHECK_EQ_INT(src.calls, calls);
    /* Reading names and bytes under the remote root. */
    CHECK_EQ_STR(mfs_cid(a, "/d/h.txt"), mfs_cid(b, "/d/h.txt"));
    CHECK(src.calls > 0);
    CHECK(node_store_has(a, &broot));
    struct listing ls = {0};
    CHECK_EQ_INT(a->ops->mfs_list(a, "/d", collect, &ls), 0);
    CHECK_EQ_INT(ls.n, 2);
    char buf[8];
    CHECK_EQ_INT(a->ops->mfs_stat_here(a, "/d/h.txt", &st, &c), 0);
    node_stat_clear(&st);
    CHECK_EQ_INT(a->ops->mfs_stat(a, "/d/h.txt", &st, &c), 0);
    CHECK_EQ_INT(a->ops->read(a, &c, 0, 6, buf), 6);
    CHECK(memcmp(buf, "hello\n", 6) == 0);
    /* A change under a directory whose blocks are remote. */
    CHECK_EQ_INT(a->ops->mfs_mkdir(a, "/d/sub/new"), 0);
    CHECK_EQ_INT(a->ops->mfs_mv(a, "/d/sub/w.txt", "/w.txt"), 0);
    CHECK_EQ_STR(mfs_cid(a, "/d/sub/w.txt"), strerror(ENOENT));
    uint8_t *blk = NULL;
    size_t blen;
    CHECK_EQ_INT(node_store_block(a, &broot, &blk, &blen), 0);
    free(blk);
    CHECK_EQ_INT(node_store_commit(a), 0);
    node_destroy(a);
    node_destroy(b);
    /* What was fetched was kept: the store opens and reads without the other one. */
    a = open_store(da, -1);
    CHECK_EQ_INT(a->ops->mfs_stat(a, "/d/h.txt", &st, &c), 0);
    CHECK_EQ_INT(a->ops->read(a, &c, 0, 6, buf), 6);
    CHECK_EQ_STR(mfs_cid(a, "/d/sub/new"), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    CHECK(strcmp(mfs_cid(a, "/w.txt"), strerror(ENOENT)) != 0);
    node_destroy(a);
    /* A lying upstream: refused (EIO), nothing kept. */
    struct fetch_src liar = {.lie = true};
    cfg.fetch_ud = &liar;
    new_dir(da, sizeof da);
    a = open_store_cfg(da, &cfg);
    blk = NULL;
    CHECK_EQ_INT(node_store_block(a, &broot, &blk, &blen), -EIO);
    CHECK(blk == NULL);
    CHECK(!node_store_has(a, &broot));
    node_store_roots(a, &aroot, NULL, NULL);
    CHECK_EQ_INT(node_store_swap_root(a, &aroot, &broot), 0);
    CHECK_EQ_STR(mfs_cid(a, "/d"), strerror(EIO));
    CHECK_EQ_INT(a->ops->mfs_mkdir(a, "/d/x"), -EIO);
    node_destroy(a);
    /* With no fetch hook a missing block stays ENOENT. */
    new_dir(da, sizeof da);
    a = open_store(da, -1);
    CHECK_EQ_INT(node_store_block(a, &broot, &blk, &blen), -ENOENT);
    node_destroy(a);
}

/* ---- collection ------------------------------------------------------------------------- */

/* Deterministic content of a file version: len bytes from seed. */
static uint8_t *gc_content(unsigned seed, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
    return b;
}

/* Write (replace) path with version seed of len bytes. */
static int gc_write(struct node *n, const char *path, unsigned seed, size_t len, struct cid *out)
{
    uint8_t *b = gc_content(seed, len);
    struct cid c;
    int rc = add_mem(n, b, len, -1, &c);
    free(b);
    if (rc < 0)
        return rc;
    rc = n->ops->mfs_link(n, &c, path);
    if (rc == -EEXIST) {
        rc = n->ops->mfs_rm(n, path, false);
        if (rc == 0)
            rc = n->ops->mfs_link(n, &c, path);
    }
    if (rc == 0 && out)
        *out = c;
    return rc;
}

/* 0 if path reads back as version seed of len bytes. */
static int gc_check(struct node *n, const char *path, unsigned seed, size_t len)
{
    struct node_stat st;
    struct cid c;
    int rc = n->ops->mfs_stat(n, path, &st, &c);
    if (rc < 0)
        return rc;
    node_stat_clear(&st);
    if (st.size != len)
        return -EFBIG;
    uint8_t *want = gc_content(seed, len), *got = malloc(len ? len : 1);
    ssize_t r = len ? n->ops->read(n, &c, 0, len, (char *)got) : 0;
    rc = r < 0 ? (int)r : (size_t)r != len || memcmp(want, got, len) ? -EILSEQ : 0;
    free(want);
    free(got);
    return rc;
}

static struct node *open_gc_store(const char *dir, unsigned young_ms, unsigned interval_ms)
{
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .commit_ms = 20,
                                    .gc_interval_ms = interval_ms,
                                    .gc_young_ms = young_ms};
    return open_store_cfg(dir, &cfg);
}

static uint64_t gc_usage(struct node *n)
{
    uint64_t bytes = 0;
    CHECK_EQ_INT(node_store_usage(n, &bytes), 0);
    return bytes;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Collect until nothing young is left (each collection rotates the young sets). */
static void gc_settle(struct node *n, unsigned young_ms, struct node_store_gc_result *total)
{
    struct node_store_gc_result r;
    memset(total, 0, sizeof *total);
    for (int i = 0; i < 4; i++) {
        sleep_ms(young_ms + 2);
        CHECK_EQ_INT(node_store_gc(n, &r), 0);
        total->removed += r.removed;
        total->removed_bytes += r.removed_bytes;
        total->live = r.live;
        total->young = r.young;
    }
}

/* Write, overwrite, delete, collect: the old versions' blocks go, every live file reads. */
static void test_gc_basic(void)
{
    char dir[256], path[64];
    new_dir(dir, sizeof dir);
    struct node *n = open_gc_store(dir, 5, UINT_MAX);
    struct cid big1, big2, small1, gone;
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d"), 0);
    CHECK_EQ_INT(gc_write(n, "/d/big", 1, 3u << 20, &big1), 0); /* 12 chunks + a root */
    CHECK_EQ_INT(gc_write(n, "/d/small", 2, 1000, &small1), 0);
    CHECK_EQ_INT(gc_write(n, "/gone", 3, 600000, &gone), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof path, "/d/f%02d", i);
        CHECK_EQ_INT(gc_write(n, path, 100 + (unsigned)i, 100 + (size_t)i, NULL), 0);
    }
    CHECK_EQ_INT(node_store_commit(n), 0);
    struct node_store_gc_result r;
    gc_settle(n, 5, &r);
    /* Only directory versions the background commits wrote on the way (and the first empty
     * root) went: every file reads. */
    CHECK_EQ_INT(gc_check(n, "/d/big", 1, 3u << 20), 0);
    CHECK_EQ_INT(gc_check(n, "/d/small", 2, 1000), 0);
    CHECK_EQ_INT(gc_check(n, "/gone", 3, 600000), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof path, "/d/f%02d", i);
        CHECK_EQ_INT(gc_check(n, path, 100 + (unsigned)i, 100 + (size_t)i), 0);
    }
    struct node_stat gst;
    CHECK_EQ_INT(n->ops->stat(n, &gone, &gst), 0); /* its attributes are kept now */
    node_stat_clear(&gst);
    uint64_t before = gc_usage(n);
    /* Overwrite big and small, remove gone and ten small files. */
    CHECK_EQ_INT(gc_write(n, "/d/big", 11, 3u << 20, &big2), 0);
    CHECK_EQ_INT(gc_write(n, "/d/small", 12, 1000, NULL), 0);
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/gone", false), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "/d/f%02d", i);
        CHECK_EQ_INT(n->ops->mfs_rm(n, path, false), 0);
    }
    CHECK_EQ_INT(node_store_commit(n), 0);
    /* Young: not collected yet (default young time is long: use a fresh rotation check). */
    CHECK(node_store_has(n, &big1));
    gc_settle(n, 5, &r);
    fprintf(stderr, "gc: removed %llu blocks (%llu KiB), %llu live\n",
            (unsigned long long)r.removed, (unsigned long long)r.removed_bytes >> 10,
            (unsigned long long)r.live);
    CHECK(r.removed >= 12 + 3 + 10);
    CHECK(!node_store_has(n, &big1));
    /* Its block collected, a kept stat of gone does not answer for it. */
    CHECK_EQ_INT(n->ops->stat(n, &gone, &gst), -ENOENT);
    CHECK(!node_store_has(n, &small1));
    CHECK(!node_store_has(n, &gone));
    CHECK(node_store_has(n, &big2));
    uint64_t after = gc_usage(n);
    /* Old big and new big are 3 MiB each; gone (600 KB) left. */
    fprintf(stderr, "gc: store %llu KiB before, %llu KiB after\n",
            (unsigned long long)before >> 10, (unsigned long long)after >> 10);
    CHECK(after + 500000 <= before);
    CHECK_EQ_INT(gc_check(n, "/d/big", 11, 3u << 20), 0);
    CHECK_EQ_INT(gc_check(n, "/d/small", 12, 1000), 0);
    for (int i = 10; i < 50; i++) {
        snprintf(path, sizeof path, "/d/f%02d", i);
        CHECK_EQ_INT(gc_check(n, path, 100 + (unsigned)i, 100 + (size_t)i), 0);
    }
    char stats[2048];
    CHECK(n->ops->stats(n, stats, sizeof stats) > 0);
    CHECK(strstr(stats, "store_gc_blocks ") != NULL);
    node_destroy(n);
    /* Everything live is still there after a reopen. */
    n = open_gc_store(dir, 5, UINT_MAX);
    CHECK_EQ_INT(gc_check(n, "/d/big", 11, 3u << 20), 0);
    for (int i = 10; i < 50; i++) {
        snprintf(path, sizeof path, "/d/f%02d", i);
        CHECK_EQ_INT(gc_check(n, path, 100 + (unsigned)i, 100 + (size_t)i), 0);
    }
    gc_settle(n, 5, &r);
    CHECK_EQ_INT(r.removed, 0);
    node_destroy(n);
}

/* mfs_put replaces a name in one change, as writer_link did in four; and a directory block
 * kept in memory (the directory cache) is no proof that it is still in the store: once
 * collected, it can no longer be linked. */
static void test_put_and_dir_cache(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_gc_store(dir, 5, UINT_MAX);
    struct cid f, g, h, d, x, sl;
    struct node_stat st;
    CHECK_EQ_INT(add_mem(n, "hello", 5, -1, &f), 0);
    CHECK_EQ_INT(add_mem(n, "abc", 3, -1, &g), 0);
    CHECK_EQ_INT(add_mem(n, "defg", 4, -1, &h), 0);
    /* A new name, then over it with a mode and a time, as tar or cp -p leave a file. */
    CHECK_EQ_INT(n->ops->mfs_put(n, &g, "/p", NULL, NULL), 0);
    CHECK_EQ_STR(mfs_cid(n, "/p"), "QmQpeUrxtQE5N2SVog1ZCxd7c7RN4fBNQu5aLwkk5RY9ER"); /* ipfs_cid */
    uint32_t mode = 0755;
    struct timespec mtime = {12345, 6789};
    CHECK_EQ_INT(n->ops->mfs_put(n, &h, "/p", &mode, &mtime), 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/p", &st, &x), 0);
    CHECK_EQ_INT(st.size, 4);
    CHECK_EQ_INT(st.mode, 0755);
    CHECK(st.has_mtime && st.mtime == 12345 && st.mtime_nsec == 6789);
    node_stat_clear(&st);
    mtime.tv_nsec = 1000000000; /* not a fraction of a second */
    CHECK_EQ_INT(n->ops->mfs_put(n, &h, "/p", &mode, &mtime), -EINVAL);
    node_stat_clear(&st);
    /* The default mode is no mode: the CID of the bytes alone. */
    mode = 0644;
    CHECK_EQ_INT(n->ops->mfs_put(n, &g, "/p", &mode, NULL), 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/p", &st, &x), 0);
    CHECK_EQ_INT(st.mode, 0);
    CHECK(cid_equal(&x, &g));
    node_stat_clear(&st);
    /* Never over a directory; the parent must be a directory that exists. */
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/q"), 0);
    CHECK_EQ_INT(n->ops->mfs_put(n, &h, "/q", NULL, NULL), -EISDIR);
    CHECK_EQ_INT(n->ops->mfs_put(n, &h, "/nope/a", NULL, NULL), -ENOENT);
    CHECK_EQ_INT(n->ops->mfs_put(n, &h, "/p/a", NULL, NULL), -ENOTDIR);
    CHECK_EQ_INT(n->ops->mfs_put(n, &h, "/", NULL, NULL), -EISDIR);
    /* Over a symlink: the name becomes the file. */
    CHECK_EQ_INT(n->ops->put_symlink(n, "/tmp", &sl), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &sl, "/s"), 0);
    CHECK_EQ_INT(n->ops->mfs_put(n, &g, "/s", NULL, NULL), 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/s", &st, &x), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    node_stat_clear(&st);
    /* The directory cache: /d's block read (and kept in memory), then collected. */
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &f, "/d/x"), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    struct node_store_gc_result r;
    gc_settle(n, 5, &r); /* the staged copies are gone: reads come from disk */
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/d", &st, &d), 0);
    node_stat_clear(&st);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/d/x", &st, &x), 0);
    node_stat_clear(&st);
    char stats[4096];
    CHECK(n->ops->stats(n, stats, sizeof stats) > 0);
    CHECK(strstr(stats, "store_dir_cache_hits ") != NULL);
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/d", true), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    gc_settle(n, 5, &r);
    CHECK(!node_store_has(n, &d));
    uint8_t *b = NULL;
    size_t len;
    CHECK_EQ_INT(node_store_block(n, &d, &b, &len), -ENOENT);
    CHECK(b == NULL);
    CHECK_EQ_INT(n->ops->mfs_link(n, &d, "/e"), -ENOENT);
    node_destroy(n);
}

/* What collection must keep: an added file not linked yet (young), a held root, the root
 * DIR/synced records, and a root replaced but not committed... and a block put again (found
 * there) is young again. */
static void test_gc_keeps(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_gc_store(dir, 60000, UINT_MAX);
    struct cid c, held, rec, root;
    uint8_t *b = gc_content(7, 500000);
    CHECK_EQ_INT(add_mem(n, b, 500000, -1, &c), 0);
    free(b);
    CHECK_EQ_INT(node_store_commit(n), 0);
    struct node_store_gc_result r;
    CHECK_EQ_INT(node_store_gc(n, &r), 0);
    CHECK_EQ_INT(r.removed, 0);
    CHECK(r.young >= 2);
    CHECK(node_store_has(n, &c));
    CHECK_EQ_INT(n->ops->mfs_link(n, &c, "/late"), 0);
    CHECK_EQ_INT(gc_check(n, "/late", 7, 500000), 0);
    node_destroy(n);

    /* Holds and DIR/synced, with a short young time. */
    new_dir(dir, sizeof dir);
    n = open_gc_store(dir, 5, UINT_MAX);
    CHECK_EQ_INT(gc_write(n, "/h", 21, 300000, &held), 0);
    CHECK_EQ_INT(gc_write(n, "/s", 22, 300000, &rec), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    node_store_roots(n, &root, NULL, NULL);
    CHECK_EQ_INT(node_store_hold(n, &root), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/synced", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "%s\n%s\n", fmt(&root), fmt(&root));
    fclose(f);
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/h", false), 0);
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/s", false), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    gc_settle(n, 5, &r);
    CHECK(node_store_has(n, &held));
    CHECK(node_store_has(n, &rec));
    node_store_release(n, &root);
    gc_settle(n, 5, &r);
    CHECK(node_store_has(n, &rec)); /* DIR/synced still names it */
    unlink(p);
    gc_settle(n, 5, &r);
    CHECK(!node_store_has(n, &held));
    CHECK(!node_store_has(n, &rec));
    /* Put again after collection: written again, readable. */
    CHECK_EQ_INT(gc_write(n, "/again", 21, 300000, NULL), 0);
    CHECK_EQ_INT(gc_check(n, "/again", 21, 300000), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    gc_settle(n, 5, &r);
    CHECK_EQ_INT(gc_check(n, "/again", 21, 300000), 0);
    node_destroy(n);
}

/* Writers overwrite and remove their files while the collector runs in a loop (and in the
 * background, every 1 ms): every file reads its last version, during and after, and after a
 * reopen. */
struct gc_writer {
    struct node *n;
    int id;
    unsigned seeds[8];
    size_t lens[8];
    int failures;
};

static void *gc_writer_main(void *arg)
{
    struct gc_writer *w = arg;
    char path[64];
    for (unsigned it = 0; it < 150; it++) {
        unsigned k = it % 8;
        snprintf(path, sizeof path, "/w%d/f%u", w->id, k);
        /* Versions come back (it % 13): a collected block is put again. */
        unsigned seed = (unsigned)w->id * 100000u + it % 13 + 1;
        size_t len = (it % 13 % 5 == 0) ? 700000 : 200 + it % 13 * 37; /* some multi-block */
        if (it % 7 == 3 && w->seeds[k]) {
            if (w->n->ops->mfs_rm(w->n, path, false) < 0)
                w->failures++;
            w->seeds[k] = 0;
            continue;
        }
        if (gc_write(w->n, path, seed, len, NULL) < 0) {
            w->failures++;
            continue;
        }
        w->seeds[k] = seed;
        w->lens[k] = len;
        if (gc_check(w->n, path, seed, len) < 0)
            w->failures++;
        if (it % 10 == 0)
            node_store_commit(w->n);
        sleep_ms(10); /* the writes span several young times: collections remove meanwhile */
    }
    return NULL;
}

struct gc_runner {
    struct node *n;
    atomic_bool stop;
    unsigned runs;
    uint64_t removed;
    int failures;
};

static void *gc_runner_main(void *arg)
{
    struct gc_runner *g = arg;
    while (!atomic_load(&g->stop)) {
        struct node_store_gc_result r;
        if (node_store_gc(g->n, &r) < 0)
            g->failures++;
        g->runs++;
        g->removed += r.removed;
        sleep_ms(2);
    }
    return NULL;
}

static int gc_check_writer(struct node *n, const struct gc_writer *w)
{
    char path[64];
    int bad = 0;
    for (unsigned k = 0; k < 8; k++) {
        snprintf(path, sizeof path, "/w%d/f%u", w->id, k);
        if (w->seeds[k])
            bad += gc_check(n, path, w->seeds[k], w->lens[k]) != 0;
        else
            bad += strcmp(mfs_cid(n, path), strerror(ENOENT)) != 0;
    }
    return bad;
}

static void test_gc_race(void)
{
    char dir[256], path[64];
    new_dir(dir, sizeof dir);
    /* Young for 500 ms. A writer's add and its link are two calls: the add's blocks are
     * protected across the gap between them for about half the young time only, and a writer
     * preempted that long (TSan, a loaded machine) between them lost its blocks with 100 ms. */
    struct node *n = open_gc_store(dir, 500, 1);
    struct gc_writer w[3];
    pthread_t t[3], gt;
    struct gc_runner g = {.n = n};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/w%d", i);
        CHECK_EQ_INT(n->ops->mfs_mkdir(n, path), 0);
    }
    CHECK_EQ_INT(pthread_create(&gt, NULL, gc_runner_main, &g), 0);
    for (int i = 0; i < 3; i++) {
        w[i] = (struct gc_writer){.n = n, .id = i};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, gc_writer_main, &w[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(w[i].failures, 0);
    }
    atomic_store(&g.stop, true);
    pthread_join(gt, NULL);
    CHECK_EQ_INT(g.failures, 0);
    CHECK(g.runs > 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    struct node_store_gc_result r;
    gc_settle(n, 500, &r);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(gc_check_writer(n, &w[i]), 0);
    fprintf(stderr, "gc race: %u collections during the writes removed %llu blocks\n", g.runs,
            (unsigned long long)g.removed);
    CHECK(g.removed > 0);
    node_destroy(n);
    n = open_gc_store(dir, 500, UINT_MAX);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(gc_check_writer(n, &w[i]), 0);
    gc_settle(n, 500, &r);
    CHECK_EQ_INT(r.removed, 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(gc_check_writer(n, &w[i]), 0);
    node_destroy(n);
}

/* A link that waits on a slow fetch keeps the content it links young (struct busy). */
struct slow_src {
    struct node *from;
    atomic_bool entered, go;
};

static int fetch_slow(void *ud, const struct cid *c, uint8_t **data, size_t *len)
{
    struct slow_src *f = ud;
    atomic_store(&f->entered, true);
    while (!atomic_load(&f->go))
        sleep_ms(1);
    return node_store_block(f->from, c, data, len);
}

struct slow_link {
    struct node *n;
    struct cid c;
    int rc;
};

static void *slow_link_main(void *arg)
{
    struct slow_link *l = arg;
    l->rc = l->n->ops->mfs_link(l->n, &l->c, "/d/sub/new");
    return NULL;
}

static void test_gc_slow_link(void)
{
    char da[256], db[256];
    new_dir(db, sizeof db);
    new_dir(da, sizeof da);
    struct node *b = open_store(db, 0);
    build_tree(b, 0);
    struct cid broot, aroot;
    node_store_roots(b, &broot, NULL, NULL);
    struct slow_src src = {.from = b};
    struct node_store_config cfg = {.add = {.cid_version = -1, .raw_leaves = -1},
                                    .fetch = fetch_slow,
                                    .fetch_ud = &src,
                                    .gc_interval_ms = UINT_MAX,
                                    .gc_young_ms = 5};
    struct node *a = open_store_cfg(da, &cfg);
    node_store_roots(a, &aroot, NULL, NULL);
    atomic_store(&src.go, true);
    CHECK_EQ_INT(node_store_swap_root(a, &aroot, &broot), 0); /* /d, /d/sub: the node's */
    atomic_store(&src.go, false);
    atomic_store(&src.entered, false);
    struct slow_link l = {.n = a};
    uint8_t *body = gc_content(31, 3000000);
    CHECK_EQ_INT(add_mem(a, body, 3000000, -1, &l.c), 0);
    free(body);
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, slow_link_main, &l), 0);
    while (!atomic_load(&src.entered))
        sleep_ms(1);
    struct node_store_gc_result r;
    CHECK_EQ_INT(node_store_commit(a), 0); /* the content's block files under their names */
    for (int i = 0; i < 4; i++) { /* many young times while the link waits */
        sleep_ms(10);
        CHECK_EQ_INT(node_store_gc(a, &r), 0);
    }
    CHECK(node_store_has(a, &l.c));
    atomic_store(&src.go, true);
    pthread_join(t, NULL);
    CHECK_EQ_INT(l.rc, 0);
    CHECK_EQ_INT(gc_check(a, "/d/sub/new", 31, 3000000), 0);
    CHECK_EQ_INT(node_store_commit(a), 0);
    gc_settle(a, 5, &r);
    CHECK_EQ_INT(gc_check(a, "/d/sub/new", 31, 3000000), 0);
    node_destroy(a);
    node_destroy(b);
}

/* A file written through writer.c on the store is imported as it is written (add_stream),
 * and gets the CID that one add of its final bytes gives: written in order; with a write
 * below what the stream had (it is dropped, the close adds it all); truncated below it; and
 * flushed in the middle (fsync) and written on. */
static void write_range(struct whandle *h, const uint8_t *data, uint64_t from, uint64_t to)
{
    for (uint64_t off = from; off < to;) {
        size_t n = to - off < 131072 ? (size_t)(to - off) : 131072;
        CHECK_EQ_INT(writer_write(h, (const char *)data + off, n, off), (ssize_t)n);
        off += n;
    }
}

static uint64_t stat_value(struct node *n, const char *key)
{
    char stats[8192];
    if (n->ops->stats(n, stats, sizeof stats) <= 0)
        return UINT64_MAX;
    char *p = strstr(stats, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

static void check_flush(struct node *n, struct whandle *h, const struct writer_config *cfg,
                        const char *path, const uint8_t *data, size_t len)
{
    struct cid got, want;
    uint64_t size = 0;
    bool changed = false;
    CHECK_EQ_INT(writer_flush(h, cfg, path, NULL, false, NULL, &got, &size, &changed, NULL), 0);
    CHECK(changed);
    CHECK_EQ_INT(size, len);
    CHECK_EQ_INT(add_mem(n, data, len, 0, &want), 0);
    CHECK_EQ_STR(fmt(&got), fmt(&want));
}

struct par_flush {
    struct whandle *h;
    const struct writer_config *cfg;
    struct cid cid[1];
    int rc;
    bool changed;
};

static void *par_flush_run(void *arg)
{
    struct par_flush *p = arg;
    uint64_t size;
    p->rc = writer_flush(p->h, p->cfg, "/parallel", NULL, false, NULL, p->cid, &size, &p->changed,
                         NULL);
    return NULL;
}

static void test_writer_stream(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    struct node *n = open_store(dir, 0);
    struct writer_config cfg = {.spool_dir = base_dir, .add = {.cid_version = -1, .raw_leaves = -1}};
    size_t len = (5u << 20) + 123;
    uint8_t *a = gc_content(1, len), *b = gc_content(2, len);
    struct whandle *h;

    /* In order: the stream makes the CID. */
    uint64_t streams = stat_value(n, "store_add_streams ");
    CHECK_EQ_INT(writer_open(n, &cfg, NULL, 0, &h), 0);
    write_range(h, a, 0, len);
    check_flush(n, h, &cfg, "/inorder", a, len);
    writer_close(h);
    CHECK_EQ_INT(stat_value(n, "store_add_streams "), streams + 1);

    /* Rewritten below what the stream had: the add at close makes it. */
    CHECK_EQ_INT(writer_open(n, &cfg, NULL, 0, &h), 0);
    write_range(h, a, 0, 3u << 20);
    usleep(100000); /* let the stream take some */
    memcpy(a + 1000, b + 1000, 70000);
    write_range(h, a, 1000, 71000);
    write_range(h, a, 3u << 20, len);
    check_flush(n, h, &cfg, "/rewritten", a, len);
    writer_close(h);
    CHECK_EQ_INT(stat_value(n, "store_add_streams "), streams + 1);

    /* Truncated below it, then written on. */
    CHECK_EQ_INT(writer_open(n, &cfg, NULL, 0, &h), 0);
    write_range(h, b, 0, 4u << 20);
    usleep(100000);
    CHECK_EQ_INT(writer_truncate(h, (3u << 19) + 7), 0);
    write_range(h, b, (3u << 19) + 7, 2u << 20);
    check_flush(n, h, &cfg, "/truncated", b, 2u << 20);
    writer_close(h);

    /* Flushed in the middle (the stream ends there), then written on: a new stream. */
    CHECK_EQ_INT(writer_open(n, &cfg, NULL, 0, &h), 0);
    write_range(h, b, 0, 2u << 20);
    check_flush(n, h, &cfg, "/twice", b, 2u << 20);
    write_range(h, b, 2u << 20, len);
    check_flush(n, h, &cfg, "/twice", b, len);
    writer_close(h);
    CHECK_EQ_INT(stat_value(n, "store_add_streams "), streams + 3);

    /* Two flushes of one handle at once (fsync and close from two threads) while the stream
     * is in a pass: one stores it, the other finds it clean. */
    CHECK_EQ_INT(writer_open(n, &cfg, NULL, 0, &h), 0);
    write_range(h, a, 0, len);
    struct par_flush pf[2] = {{.h = h, .cfg = &cfg}, {.h = h, .cfg = &cfg}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, par_flush_run, &pf[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(pf[0].rc, 0);
    CHECK_EQ_INT(pf[1].rc, 0);
    CHECK_EQ_INT(pf[0].changed + pf[1].changed, 1);
    struct cid want;
    CHECK_EQ_INT(add_mem(n, a, len, 0, &want), 0);
    CHECK_EQ_STR(fmt(pf[pf[0].changed ? 0 : 1].cid), fmt(&want));
    writer_close(h);

    /* Closed without a flush while the stream runs: nothing leaks (valgrind, ASan). */
    CHECK_EQ_INT(writer_open(n, &cfg, NULL, 0, &h), 0);
    write_range(h, a, 0, 3u << 20);
    writer_close(h);
    free(a);
    free(b);
    node_destroy(n);
}

/* A stat or a listing keeps what it read of a file's or a directory's block file, by CID: the
 * next one reads no block. A block's CID as raw (the same multihash: the same slot) keeps its
 * own. */
static void test_attr_cache(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    /* No commit or collection but the test's own: where each block is read from is known. */
    struct node_store_config cfg = {.add = {.cid_version = 0, .raw_leaves = -1},
                                    .commit_ms = 3600000u,
                                    .gc_interval_ms = UINT_MAX};
    struct node *n = open_store_cfg(dir, &cfg);
    uint8_t data[3000];
    prng(data, sizeof data, 11);
    struct cid c, raw, d;
    struct node_stat st;
    CHECK_EQ_INT(add_mem(n, data, sizeof data, 0, &c), 0);
    /* Only what is read from a block file is kept (a staged block may be dropped unwritten). */
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
    node_stat_clear(&st);
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
    node_stat_clear(&st);
    CHECK_EQ_INT(stat_value(n, "store_attr_cache_hits "), 0);
    CHECK_EQ_INT(node_store_commit(n), 0);
    uint64_t hits = stat_value(n, "store_attr_cache_hits ");
    uint64_t reads = stat_value(n, "store_block_reads ");
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    CHECK_EQ_INT(st.size, sizeof data);
    node_stat_clear(&st);
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    CHECK_EQ_INT(st.size, sizeof data);
    node_stat_clear(&st);
    CHECK_EQ_INT(stat_value(n, "store_attr_cache_hits "), hits + 1);
    raw = c;
    raw.version = 1;
    raw.codec = CID_CODEC_RAW;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(n->ops->stat(n, &raw, &st), 0);
        CHECK(st.size > sizeof data); /* the whole block: the dag-pb wrapper too */
        node_stat_clear(&st);
        CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
        CHECK_EQ_INT(st.size, sizeof data);
        node_stat_clear(&st);
    }
    /* A listing of a directory holding it: its kind and size with no block read. */
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/d"), 0);
    CHECK_EQ_INT(n->ops->mfs_link(n, &c, "/d/f"), 0);
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0); /* c's attributes kept again */
    node_stat_clear(&st);
    CHECK_EQ_INT(node_store_commit(n), 0);
    CHECK_EQ_INT(n->ops->mfs_stat(n, "/d", &st, &d), 0);
    node_stat_clear(&st);
    reads = stat_value(n, "store_block_reads ");
    hits = stat_value(n, "store_attr_cache_hits ");
    struct listing li = {0};
    CHECK_EQ_INT(n->ops->list(n, &d, collect, &li), 0);
    CHECK_EQ_INT(li.n, 1);
    CHECK_EQ_INT(li.kinds[0], NODE_FILE);
    CHECK_EQ_INT(li.sizes[0], sizeof data);
    CHECK_EQ_INT(stat_value(n, "store_attr_cache_hits "), hits + 1);
    /* The file's block is not read (at most the directory's own, should the directory block
     * cache not hold it). */
    CHECK(stat_value(n, "store_block_reads ") <= reads + 1);
    node_destroy(n);
}

int main(void)
{
    if (!mkdtemp(base_dir)) {
        perror("mkdtemp");
        return 99;
    }
    test_murmur();
    test_empty_root_and_reopen();
    test_known_dirs();
    test_names_errors();
    test_meta_symlink();
    test_store_lock();
    test_default_mode();
    test_read_ranges();
    test_corruption();
    test_crash_leftovers();
    test_hamt_js();
    test_hamt_threshold();
    test_hamt_edits();
    test_hamt_replace();
    test_dir_changes_order();
    test_duplicate_names();
    test_concurrency();
    test_hostile_blocksizes();
    test_hostile_wide_file();
    test_hostile_amplified_read();
    test_hostile_hamt();
    test_hostile_wide_dir();
    test_store_dir_private();
    test_group_commit();
    test_commit_failure();
    test_crash_without_destroy();
    test_swap_root();
    test_fetch();
    test_gc_basic();
    test_gc_keeps();
    test_gc_race();
    test_gc_slow_link();
    test_put_and_dir_cache();
    test_writer_stream();
    test_attr_cache();
    unit_rm_rf(base_dir);
    return unit_done("test_store");
}

/* test_importer.c - the importer and the dag-pb/UnixFS encoder against known answers from Kubo,
 * js-ipfs and Debian's ipfs_cid (see docs/kubo-rpc.md section 8).
 *
 * `test_importer gen SIZE SEED` writes the PRNG bytes used below to stdout, so the expected CIDs
 * can be recomputed with other tools (ipfs_cid FILE; ipfs add).
 */
#include "config.h"

#include "blockstore.h"
#include "dagpb.h"
#include "importer.h"
#include "unit.h"
#include "unixfs_enc.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* xorshift64*, 8 output bytes (little-endian) per step: deterministic, independent of libc.
 * Each call starts a fresh 8-byte group, so fill in multiples of 8 to continue a stream. */
static void prng_fill(uint8_t *buf, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        uint64_t v = x * 0x2545F4914F6CDD1DULL;
        for (size_t j = 0; j < 8 && i + j < n; j++)
            buf[i + j] = (uint8_t)(v >> (8 * j));
    }
}

/* A memory file of size bytes: zeros (seed 0) or PRNG bytes. */
static int make_file(uint64_t size, uint64_t seed)
{
    int fd = memfd_create("import", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return -1;
    }
    if (seed) {
        uint64_t st = seed;
        static uint8_t buf[1 << 16];
        for (uint64_t off = 0; off < size; off += sizeof buf) {
            size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
            prng_fill(buf, n, &st);
            if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
                close(fd);
                return -1;
            }
        }
    }
    return fd;
}

static int make_bytes(const char *s)
{
    int fd = memfd_create("import", MFD_CLOEXEC);
    size_t n = strlen(s);
    if (fd >= 0 && write(fd, s, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return fd;
}

struct counter {
    size_t blocks;
    uint64_t bytes;
    size_t max_block;
};

static int count_put(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    struct counter *k = ud;
    (void)c;
    (void)data;
    k->blocks++;
    k->bytes += len;
    if (len > k->max_block)
        k->max_block = len;
    return 0;
}

/* The same import a chunk at a time (import_begin/next/end, as a file being written is
 * imported), with no size known up front. */
static int stream_import(int fd, uint64_t size, const struct import_opts *o, struct cid *c,
                         uint64_t *tsize)
{
    struct importer *im;
    int rc = import_begin(o, UINT64_MAX, NULL, NULL, &im);
    if (rc < 0)
        return rc;
    size_t chunk = import_chunk_size(im);
    while (rc == 0 && import_offset(im) < size) {
        uint64_t left = size - import_offset(im);
        rc = import_next(im, fd, left < chunk ? (size_t)left : chunk);
    }
    if (rc == 0 && size % chunk) /* only the last chunk may be short */
        CHECK_EQ_INT(import_next(im, fd, 1), -EINVAL);
    if (rc == 0)
        rc = import_end(im, c, tsize);
    import_free(im);
    return rc;
}

static void check_import(int fd, uint64_t size, int version, int raw, const char *chunker,
                         const char *want, int64_t want_tsize, int line)
{
    struct node_add_opts ao = {.cid_version = version, .raw_leaves = raw, .chunker = chunker};
    struct import_opts o;
    struct cid c;
    uint64_t tsize = 0;
    char s[CID_STR_MAX] = "";
    CHECK_EQ_INT(import_opts_from(&ao, &o), 0);
    struct counter k = {0};
    int rc = import_fd(fd, size, &o, count_put, &k, &c, &tsize);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0)
        cid_format(&c, s, sizeof s);
    if (strcmp(s, want) != 0)
        fprintf(stderr, "line %d: size %llu v%d raw %d\n", line, (unsigned long long)size, version,
                raw);
    CHECK_EQ_STR(s, want);
    if (want_tsize >= 0) {
        CHECK_EQ_INT(tsize, want_tsize);
        CHECK_EQ_INT(k.bytes, want_tsize); /* every block once, tsize counts them all */
    }
    CHECK(k.max_block <= 262144 + 1024 || chunker);
    struct cid sc;
    uint64_t stsize = 0;
    char ss[CID_STR_MAX] = "";
    CHECK_EQ_INT(stream_import(fd, size, &o, &sc, &stsize), 0);
    cid_format(&sc, ss, sizeof ss);
    CHECK_EQ_STR(ss, want);
    CHECK_EQ_INT(stsize, tsize);
}

static void test_known_small(void)
{
    int fd = make_bytes("Test");
    check_import(fd, 4, -1, -1, NULL, "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR", 12,
                 __LINE__);
    check_import(fd, 4, 1, -1, NULL, "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu",
                 4, __LINE__);
    check_import(fd, 4, 1, 0, NULL, "bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq",
                 12, __LINE__);
    close(fd);
    fd = make_bytes("");
    check_import(fd, 0, -1, -1, NULL, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", 6,
                 __LINE__);
    check_import(fd, 0, 1, -1, NULL, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                 0, __LINE__);
    check_import(fd, 0, 1, 0, NULL, "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y",
                 6, __LINE__);
    close(fd);
    fd = make_bytes("hello\n");
    check_import(fd, 6, -1, -1, NULL, "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN", 14,
                 __LINE__);
    close(fd);
    fd = make_bytes("world\n");
    check_import(fd, 6, -1, -1, NULL, "QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL", 14,
                 __LINE__);
    close(fd);
}

static void test_known_zeros(void)
{
    int fd = make_file(1 << 20, 0);
    CHECK(fd >= 0);
    check_import(fd, 262144, -1, -1, NULL, "QmRk1rduJvo5DfEYAaLobS2za9tDszk35hzaNSDCJ74DA7", 262158,
                 __LINE__);
    check_import(fd, 262144, 1, -1, NULL,
                 "bafkreiekhhjkxu4ztk3tyng3er3ijhg56mb44oe3gwbgquhzu4afrg2ksa", 262144, __LINE__);
    check_import(fd, 262145, -1, -1, NULL, "QmbVuw4C4vcmVKqxoWtgDVobvcHrSn51qsmQmyxjk4sB2Q", -1,
                 __LINE__);
    check_import(fd, 1 << 20, -1, -1, NULL, "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU", -1,
                 __LINE__);
    check_import(fd, 1 << 20, -1, 1, NULL, "Qmbig3qCRjdufAtQptiZ9F34poRoRJywcyxH7BmmCce4YF", -1,
                 __LINE__);
    check_import(fd, 1 << 20, 1, -1, NULL,
                 "bafybeiggzq4ryi7hscq5hzvzcnk4urnxt3asp37dhgvnjilf7exskximla", -1, __LINE__);
    check_import(fd, 1 << 20, 1, 0, NULL,
                 "bafybeiephzsrbttogsiujiqziwjmhvu3pbggy256l76g2ootaediqz4mnq", -1, __LINE__);
    close(fd);
}

/* Cumulative sizes as the node reports them (add's Size), where tsize is not block bytes:
 * identical zero leaves are counted once per link in Tsize but stored once. */
static void test_tsize_zeros(void)
{
    int fd = make_file(1 << 20, 0);
    struct node_add_opts ao = {.cid_version = -1, .raw_leaves = -1};
    struct import_opts o;
    struct cid c;
    uint64_t ts;
    import_opts_from(&ao, &o);
    CHECK_EQ_INT(import_fd(fd, 262145, &o, NULL, NULL, &c, &ts), 0);
    CHECK_EQ_INT(ts, 262267);
    CHECK_EQ_INT(import_fd(fd, 1 << 20, &o, NULL, NULL, &c, &ts), 0);
    CHECK_EQ_INT(ts, 1048832);
    ao.raw_leaves = 1;
    import_opts_from(&ao, &o);
    CHECK_EQ_INT(import_fd(fd, 1 << 20, &o, NULL, NULL, &c, &ts), 0);
    CHECK_EQ_INT(ts, 1048784);
    close(fd);
}

struct big_case {
    uint64_t size;
    uint64_t seed;
    int version;
    const char *want;
};

/* Expected values: ipfs_cid FILE (CIDv0) and the test node's add (v1), for the bytes of
 * `test_importer gen SIZE SEED`. */
static const struct big_case big_cases[] = {
    {1, 2, 0, "QmQQuBq3HaJoiQqVkQMHPUwwakJRwVV2XcPZssVkxFUKiF"},
    {1, 2, 1, "bafkreihhvqdymzuob7ypak3cxucpix7wg36yfw3dweiemaojoxoaaxz2m4"},
    {262143, 3, 0, "QmdDZeqAeZJLFckqhErTr3aZ1AvJcgXKfA352E3ejGS1oi"},
    {262143, 3, 1, "bafkreib57k7cgfqpxwakykhg4wnr6hvtvfnw3xpe4jjuhwrvso2twxtl7m"},
    {262144, 4, 0, "QmYmC3YKNUMKFNPTyLNyw5T8NQTVPptfYKrDkSWcwRondn"},
    {262144, 4, 1, "bafkreigvfdnwcfcmg6gmjv4njk7pyy3srxu6vyaftrn23y3jjlvojwzpqi"},
    {262145, 5, 0, "QmNVKE2zciTCHaUKVifCU9qPTHfDBWJVYH56nVpxeHHFHL"},
    {262145, 5, 1, "bafybeibdeeavqfdyzyru5dyessck3aelan4hcghhxhv22di3jfr6v3bjjm"},
    {45613056, 6, 0, "QmVrVVMuaW9LUZUnmdZvi1q4uuWwPJCaLn3qeZtTK7h2bh"},
    {45613056, 6, 1, "bafybeicezxkq7elycsn56g4mrkuguozay6b3gb5csvnbspwxn6rt6vbfrm"},
    {45613057, 7, 0, "QmPJaJ3beZrEAohBSfHPJBm6b3coyNBtDyTt1mW7ZzSX8A"},
    {45613057, 7, 1, "bafybeicebisa7wqnmntmih747fqf5x5pjwdh2fpx4gf7xtyfiwg4ybrlza"},
    {52428800, 8, 0, "QmdgnCes78tGTAgxt6imvMqSJ5jbzAL9NkUpxwpnLXnvGs"},
    {52428800, 8, 1, "bafybeicooj5ngbh2lgujt6etq4jsosto3kvcm7xhgvnxnl6rac2wp4veoe"},
};

static void test_big(void)
{
    for (size_t i = 0; i < sizeof big_cases / sizeof big_cases[0]; i++) {
        const struct big_case *bc = &big_cases[i];
        int fd = make_file(bc->size, bc->seed);
        CHECK(fd >= 0);
        check_import(fd, bc->size, bc->version, -1, NULL, bc->want, -1, __LINE__);
        close(fd);
    }
}

static void test_short_file(void)
{
    int fd = make_bytes("abc");
    struct import_opts o = {.chunk_size = 262144};
    struct cid c;
    CHECK_EQ_INT(import_fd(fd, 10, &o, NULL, NULL, &c, NULL), -EIO);
    close(fd);
}

static void test_opts(void)
{
    struct import_opts o;
    struct node_add_opts a = {.cid_version = -1, .raw_leaves = -1, .chunker = "size-1000"};
    CHECK_EQ_INT(import_opts_from(&a, &o), 0);
    CHECK_EQ_INT(o.chunk_size, 1000);
    CHECK_EQ_INT(o.cid_version, 0);
    CHECK(!o.raw_leaves);
    a.chunker = "rabin";
    CHECK_EQ_INT(import_opts_from(&a, &o), -ENOTSUP);
    a.chunker = "size-0";
    CHECK_EQ_INT(import_opts_from(&a, &o), -EINVAL);
    a.chunker = "size-12x";
    CHECK_EQ_INT(import_opts_from(&a, &o), -EINVAL);
    a.chunker = "size-2096897";
    CHECK_EQ_INT(import_opts_from(&a, &o), -EINVAL);
    a.chunker = NULL;
    a.cid_version = 1;
    CHECK_EQ_INT(import_opts_from(&a, &o), 0);
    CHECK(o.raw_leaves);
    a.raw_leaves = 0;
    CHECK_EQ_INT(import_opts_from(&a, &o), 0);
    CHECK(!o.raw_leaves);
}

/* Keeps the first leaf block the importer emits. */
struct first_leaf {
    uint8_t *data;
    size_t len;
    struct cid cid;
};

static int keep_first(void *ud, const struct cid *c, const uint8_t *data, size_t len)
{
    struct first_leaf *f = ud;
    if (f->data)
        return 0;
    f->data = malloc(len);
    if (!f->data)
        return -ENOMEM;
    memcpy(f->data, data, len);
    f->len = len;
    f->cid = *c;
    return 0;
}

/* Leaves are framed around bytes read in place: the same bytes as the generic encoder writes,
 * at every varint length boundary of the chunk size (1..2096896). */
static void test_leaf_frame(void)
{
    static const size_t sizes[] = {1, 2, 127, 128, 129, 16383, 16384, 16385, 262144, 2096896};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        int fd = make_file(n + 7, 11); /* one more (short) chunk after the first */
        CHECK(fd >= 0);
        uint8_t *buf = malloc(n);
        CHECK_EQ_INT(pread(fd, buf, n, 0), (ssize_t)n);
        for (int raw = 0; raw <= 1; raw++) {
            struct import_opts o = {
                .cid_version = (unsigned)raw, .raw_leaves = raw, .chunk_size = n};
            struct first_leaf f = {0};
            struct cid root;
            CHECK_EQ_INT(import_fd(fd, n + 7, &o, keep_first, &f, &root, NULL), 0);
            struct bytebuf d = {0}, b = {0};
            if (raw) {
                CHECK_EQ_INT(bytebuf_put(&b, buf, n), 0);
            } else {
                struct unixfs_fields uf = {.type = UNIXFS_FILE,
                                           .data = buf,
                                           .data_len = n,
                                           .has_data = true,
                                           .filesize = n,
                                           .has_filesize = true};
                CHECK_EQ_INT(unixfs_encode(&uf, &d), 0);
                CHECK_EQ_INT(dagpb_encode(NULL, 0, d.p, d.len, true, &b), 0);
            }
            struct cid want;
            CHECK_EQ_INT(
                block_cid((unsigned)raw, raw ? CID_CODEC_RAW : CID_CODEC_DAG_PB, b.p, b.len, &want),
                0);
            CHECK_EQ_INT(f.len, b.len);
            CHECK(f.data && f.len == b.len && memcmp(f.data, b.p, b.len) == 0);
            CHECK(cid_equal(&f.cid, &want));
            if (f.len != b.len)
                fprintf(stderr, "leaf of %zu bytes (raw %d): %zu bytes, want %zu\n", n, raw, f.len,
                        b.len);
            free(f.data);
            bytebuf_free(&d);
            bytebuf_free(&b);
        }
        free(buf);
        close(fd);
    }
}

static size_t count_tmp(const char *dir)
{
    size_t n = 0;
    DIR *top = opendir(dir);
    struct dirent *de;
    while (top && (de = readdir(top))) {
        if (de->d_name[0] == '.' || strlen(de->d_name) != 2)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        DIR *sd = opendir(p);
        struct dirent *e;
        while (sd && (e = readdir(sd)))
            n += strncmp(e->d_name, ".tmp-", 5) == 0;
        if (sd)
            closedir(sd);
    }
    if (top)
        closedir(top);
    return n;
}

/* Puts are batched: a block is readable (and verified) at once, under its final name only once
 * it is durable, and every one of them is there after blockstore_sync. */
static void test_blockstore_batch(void)
{
    char dir[] = "/tmp/ipfsfs-test-bs-XXXXXX", blocks[64], err[128], p[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(blocks, sizeof blocks, "%s/blocks", dir);
    struct blockstore *bs, *other;
    CHECK_EQ_INT(blockstore_open(dir, &bs, err, sizeof err), 0);
    enum { N = 200 };
    static struct cid cids[N];
    uint8_t data[1000];
    for (int i = 0; i < N; i++) {
        uint64_t st = (uint64_t)i + 1;
        prng_fill(data, sizeof data, &st);
        CHECK_EQ_INT(block_cid(1, CID_CODEC_RAW, data, sizeof data, &cids[i]), 0);
        CHECK_EQ_INT(blockstore_put(bs, &cids[i], data, sizeof data), 0);
        CHECK_EQ_INT(blockstore_put(bs, &cids[i], data, sizeof data), 0); /* dedup */
        CHECK(blockstore_has(bs, &cids[i]));
        uint8_t *got;
        size_t len;
        CHECK_EQ_INT(blockstore_get(bs, &cids[i], &got, &len), 0);
        CHECK(len == sizeof data && memcmp(got, data, len) == 0);
        free(got);
    }
    /* Only whole batches were flushed so far: the newest block is not under its name yet. */
    struct stat sb;
    CHECK_EQ_INT(blockstore_path(bs, &cids[N - 1], p, sizeof p), 0);
    CHECK(stat(p, &sb) < 0);
    CHECK_EQ_INT(blockstore_path(bs, &cids[0], p, sizeof p), 0);
    CHECK(stat(p, &sb) == 0 && sb.st_size == 1000 && (sb.st_mode & 0777) == 0400); /* owner only */
    struct blockstore_stats s;
    blockstore_get_stats(bs, &s);
    CHECK_EQ_INT(s.puts, N);
    CHECK_EQ_INT(s.dedup, N);
    CHECK_EQ_INT(blockstore_sync(bs), 0);
    CHECK_EQ_INT(count_tmp(blocks), 0);
    /* Another store on the same directory sees every block under its final name. */
    CHECK_EQ_INT(blockstore_open(dir, &other, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        uint8_t *got;
        size_t len;
        CHECK_EQ_INT(blockstore_get(other, &cids[i], &got, &len), 0);
        free(got);
    }
    /* Closing makes what was put durable too. */
    memset(data, 0x5a, sizeof data);
    struct cid last;
    CHECK_EQ_INT(block_cid(1, CID_CODEC_RAW, data, sizeof data, &last), 0);
    CHECK_EQ_INT(blockstore_put(bs, &last, data, sizeof data), 0);
    CHECK(!blockstore_has(other, &last));
    blockstore_close(bs);
    CHECK(blockstore_has(other, &last));
    CHECK_EQ_INT(count_tmp(blocks), 0);
    blockstore_close(other);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* The encoder round-trips through the decoder, mtime/mode included. */
static void test_encode_roundtrip(void)
{
    uint64_t bs[3] = {1, 300, 70000};
    struct unixfs_fields f = {.type = UNIXFS_FILE,
                              .data = (const uint8_t *)"xy",
                              .data_len = 2,
                              .has_data = true,
                              .filesize = 70303,
                              .has_filesize = true,
                              .blocksizes = bs,
                              .nblocksizes = 3,
                              .mode = 0640,
                              .has_mode = true,
                              .mtime_sec = -5,
                              .mtime_nsec = 7,
                              .has_mtime = true};
    struct bytebuf b = {0};
    CHECK_EQ_INT(unixfs_encode(&f, &b), 0);
    struct unixfs_data u;
    CHECK_EQ_INT(unixfs_decode(b.p, b.len, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_FILE);
    CHECK_EQ_INT(u.filesize, 70303);
    CHECK_EQ_INT(u.nblocksizes, 3);
    CHECK_EQ_INT(u.mode, 0640);
    CHECK_EQ_INT(u.mtime_sec, -5);
    CHECK_EQ_INT(u.mtime_nsec, 7);
    struct unixfs_fields g;
    uint64_t *gbs;
    CHECK_EQ_INT(unixfs_fields_from(&u, b.p, b.len, &g, &gbs), 0);
    struct bytebuf b2 = {0};
    CHECK_EQ_INT(unixfs_encode(&g, &b2), 0);
    CHECK(b2.len == b.len && memcmp(b.p, b2.p, b.len) == 0);
    free(gbs);
    bytebuf_free(&b2);
    bytebuf_free(&b);
    /* The Test leaf, byte for byte (docs: 0a 0a 08 02 12 04 54 65 73 74 18 04). */
    static const uint8_t want[] = {0x0a, 0x0a, 0x08, 0x02, 0x12, 0x04,
                                   'T',  'e',  's',  't',  0x18, 0x04};
    struct unixfs_fields t = {.type = UNIXFS_FILE,
                              .data = (const uint8_t *)"Test",
                              .data_len = 4,
                              .has_data = true,
                              .filesize = 4,
                              .has_filesize = true};
    struct bytebuf d = {0}, n = {0};
    CHECK_EQ_INT(unixfs_encode(&t, &d), 0);
    CHECK_EQ_INT(dagpb_encode(NULL, 0, d.p, d.len, true, &n), 0);
    CHECK(n.len == sizeof want && memcmp(n.p, want, sizeof want) == 0);
    bytebuf_free(&d);
    bytebuf_free(&n);
}

static int gen(const char *ssize, const char *sseed)
{
    char *end;
    unsigned long long size = strtoull(ssize, &end, 10);
    if (*end)
        return 2;
    unsigned long long seed = strtoull(sseed, &end, 10);
    if (*end || seed == 0)
        return 2;
    uint64_t st = seed;
    static uint8_t buf[1 << 16];
    for (unsigned long long off = 0; off < size; off += sizeof buf) {
        size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
        prng_fill(buf, n, &st);
        if (fwrite(buf, 1, n, stdout) != n)
            return 1;
    }
    return 0;
}

/* Print the CID of a file imported with cid-version v (-1: default). */
static int cid_of(const char *path, const char *v)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    int fd = fileno(f);
    off_t size = lseek(fd, 0, SEEK_END);
    struct node_add_opts ao = {.cid_version = v[0] == '1' ? 1 : -1, .raw_leaves = -1};
    struct import_opts o;
    struct cid c;
    char s[CID_STR_MAX];
    int rc = import_opts_from(&ao, &o);
    if (rc == 0 && size >= 0)
        rc = import_fd(fd, (uint64_t)size, &o, NULL, NULL, &c, NULL);
    fclose(f);
    if (rc < 0 || size < 0 || cid_format(&c, s, sizeof s) < 0)
        return 1;
    printf("%s\n", s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "cid") == 0)
        return cid_of(argv[2], argv[3]);
    test_opts();
    test_known_small();
    test_known_zeros();
    test_tsize_zeros();
    test_short_file();
    test_encode_roundtrip();
    test_leaf_frame();
    test_blockstore_batch();
    test_big();
    return unit_done("test_importer");
}

/* test_dagpb.c - dag-pb and UnixFS decoding.
 *
 * Fixtures (tests/fixtures/dagpb/):
 *   test_file.bin      the block of the file "Test": QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR
 *   wrap_test_txt.bin  a directory holding test.txt = "Test", as made by `ipfs add -w`:
 *                      QmbW7t5BzZb38M61bJUxsRxz6MbDhgrfzQaxyq6hRBBedS
 * Their sha256 digests were checked against those CIDs with Python when they were generated.
 */
#include "config.h"

#include "cid.h"
#include "dagpb.h"
#include "hamt.h"
#include "unit.h"
#include "unixfs_enc.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>

#define QM_TEST "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR"

static const uint8_t TEST_BLOCK[] = {0x0a, 0x0a, 0x08, 0x02, 0x12, 0x04,
                                     0x54, 0x65, 0x73, 0x74, 0x18, 0x04};

/* ---- a tiny protobuf writer for building blocks ------------------------------------------ */

struct wbuf {
    uint8_t b[1024];
    size_t n;
};

static void w_varint(struct wbuf *w, uint64_t v)
{
    while (v >= 0x80) {
        w->b[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->b[w->n++] = (uint8_t)v;
}

static void w_key(struct wbuf *w, unsigned field, unsigned wt)
{
    w_varint(w, (uint64_t)field << 3 | wt);
}

static void w_bytes(struct wbuf *w, unsigned field, const void *p, size_t len)
{
    w_key(w, field, 2);
    w_varint(w, len);
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void w_uint(struct wbuf *w, unsigned field, uint64_t v)
{
    w_key(w, field, 0);
    w_varint(w, v);
}

static void w_raw(struct wbuf *w, const void *p, size_t len)
{
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void w_link_n(struct wbuf *w, const uint8_t *hash, size_t hlen, const char *name,
                     size_t name_len, uint64_t tsize)
{
    struct wbuf l = {.n = 0};
    w_bytes(&l, 1, hash, hlen);
    w_bytes(&l, 2, name, name_len);
    w_uint(&l, 3, tsize);
    w_bytes(w, 2, l.b, l.n);
}

static void w_link(struct wbuf *w, const uint8_t *hash, size_t hlen, const char *name,
                   uint64_t tsize)
{
    w_link_n(w, hash, hlen, name, strlen(name), tsize);
}

/* Decode a copy in a buffer of exactly len bytes so that AddressSanitizer sees any overread. */
static int decode_exact(const uint8_t *b, size_t len, struct dagpb_node *n)
{
    uint8_t *copy = malloc(len ? len : 1);
    int r;
    if (!copy)
        return -ENOMEM;
    memcpy(copy, b, len);
    r = dagpb_decode(copy, len, n);
    /* the result points into copy: check the pointers, then drop them */
    if (r == 0) {
        for (size_t i = 0; i < n->nlinks; i++) {
            const struct dagpb_link *l = &n->links[i];
            CHECK(l->hash >= copy && l->hash + l->hash_len <= copy + len);
            if (l->has_name)
                CHECK((const uint8_t *)l->name >= copy &&
                      (const uint8_t *)l->name + l->name_len <= copy + len);
        }
        if (n->has_data)
            CHECK(n->data >= copy && n->data + n->data_len <= copy + len);
        dagpb_node_free(n);
    }
    free(copy);
    return r;
}

static int unixfs_exact(const uint8_t *b, size_t len, struct unixfs_data *u)
{
    uint8_t *copy = malloc(len ? len : 1);
    int r;
    if (!copy)
        return -ENOMEM;
    memcpy(copy, b, len);
    r = unixfs_decode(copy, len, u);
    if (r == 0) {
        if (u->has_data)
            CHECK(u->data >= copy && u->data + u->data_len <= copy + len);
        /* the one-pass iterator gives the same values, then its end */
        struct unixfs_bs_iter it;
        unixfs_bs_begin(&it, copy, len);
        for (size_t i = 0; i < u->nblocksizes; i++) {
            uint64_t v, w = 0;
            CHECK_EQ_INT(unixfs_blocksize(copy, len, i, &v), 0);
            CHECK_EQ_INT(unixfs_bs_next(&it, &w), 1);
            CHECK(v == w);
        }
        uint64_t w;
        CHECK_EQ_INT(unixfs_bs_next(&it, &w), 0);
        u->data = NULL;
    }
    free(copy);
    return r;
}

/* ---- known blocks -------------------------------------------------------------------------- */

static void test_file_block(void)
{
    size_t len;
    char *fx = unit_read_fixture("dagpb/test_file.bin", &len);
    struct dagpb_node n;
    struct unixfs_data u;

    CHECK_EQ_INT(len, sizeof TEST_BLOCK);
    CHECK(memcmp(fx, TEST_BLOCK, sizeof TEST_BLOCK) == 0);
    free(fx);

    CHECK_EQ_INT(dagpb_decode(TEST_BLOCK, sizeof TEST_BLOCK, &n), 0);
    CHECK_EQ_INT(n.nlinks, 0);
    CHECK(n.links == NULL);
    CHECK(n.has_data);
    CHECK_EQ_INT(n.data_len, 10);
    CHECK(n.data == TEST_BLOCK + 2);

    CHECK_EQ_INT(unixfs_decode(n.data, n.data_len, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_FILE);
    CHECK(u.has_data);
    CHECK_EQ_INT(u.data_len, 4);
    CHECK(memcmp(u.data, "Test", 4) == 0);
    CHECK(u.has_filesize);
    CHECK_EQ_INT(u.filesize, 4);
    CHECK_EQ_INT(u.nblocksizes, 0);
    CHECK(!u.has_mode);
    CHECK(!u.has_mtime);
    CHECK(!u.has_fanout);
    uint64_t v;
    CHECK_EQ_INT(unixfs_blocksize(n.data, n.data_len, 0, &v), -ERANGE);
    dagpb_node_free(&n);
    CHECK(n.links == NULL && n.nlinks == 0);
}

static void check_wrap_node(const uint8_t *b, size_t len)
{
    struct dagpb_node n;
    struct unixfs_data u;
    struct cid want, got;
    uint8_t want_bin[64];

    CHECK_EQ_INT(cid_parse(QM_TEST, strlen(QM_TEST), &want), 0);
    CHECK_EQ_INT(cid_to_bytes(&want, want_bin, sizeof want_bin), 34);

    CHECK_EQ_INT(dagpb_decode(b, len, &n), 0);
    CHECK_EQ_INT(n.nlinks, 1);
    if (n.nlinks == 1) {
        const struct dagpb_link *l = &n.links[0];
        CHECK_EQ_INT(l->hash_len, 34);
        CHECK(memcmp(l->hash, want_bin, 34) == 0);
        CHECK_EQ_INT(cid_from_bytes(l->hash, l->hash_len, &got), 0);
        CHECK(cid_equal(&want, &got));
        CHECK(l->has_name);
        CHECK_EQ_INT(l->name_len, 8);
        CHECK(memcmp(l->name, "test.txt", 8) == 0);
        CHECK(l->has_tsize);
        CHECK_EQ_INT(l->tsize, 12);
    }
    CHECK(n.has_data);
    CHECK_EQ_INT(n.data_len, 2);
    CHECK_EQ_INT(unixfs_decode(n.data, n.data_len, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_DIRECTORY);
    CHECK(!u.has_data);
    CHECK(!u.has_filesize);
    dagpb_node_free(&n);
}

static void test_wrap_dir(void)
{
    size_t len;
    uint8_t *fx = (uint8_t *)unit_read_fixture("dagpb/wrap_test_txt.bin", &len);
    struct cid test;
    uint8_t hash[64];
    struct wbuf w = {.n = 0};
    static const uint8_t dir_data[] = {0x08, 0x01};

    CHECK_EQ_INT(len, 54);
    check_wrap_node(fx, len);

    /* the same node built here is byte-identical (canonical order: Links, then Data) */
    CHECK_EQ_INT(cid_parse(QM_TEST, strlen(QM_TEST), &test), 0);
    CHECK_EQ_INT(cid_to_bytes(&test, hash, sizeof hash), 34);
    w_link(&w, hash, 34, "test.txt", 12);
    w_bytes(&w, 1, dir_data, sizeof dir_data);
    CHECK_EQ_INT(w.n, len);
    CHECK(memcmp(w.b, fx, len) == 0);

    /* Data before Links is accepted too */
    w.n = 0;
    w_bytes(&w, 1, dir_data, sizeof dir_data);
    w_link(&w, hash, 34, "test.txt", 12);
    check_wrap_node(w.b, w.n);

    /* every truncation: only the field boundaries (empty node; links without Data) decode */
    struct dagpb_node n;
    for (size_t i = 0; i < len; i++) {
        int r = decode_exact(fx, i, &n);
        if (i == 0 || i == 50)
            CHECK_EQ_INT(r, 0);
        else
            CHECK_EQ_INT(r, -EINVAL);
    }
    for (size_t i = 0; i < sizeof TEST_BLOCK; i++)
        CHECK_EQ_INT(decode_exact(TEST_BLOCK, i, &n), i == 0 ? 0 : -EINVAL);
    free(fx);
}

static void test_directory(void)
{
    struct cid test, raw;
    uint8_t h1[64], h2[64];
    int l1, l2;
    struct wbuf w = {.n = 0};
    struct dagpb_node n;
    static const uint8_t dir_data[] = {0x08, 0x01};
    const char *raw_s = "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu";

    CHECK_EQ_INT(cid_parse(QM_TEST, strlen(QM_TEST), &test), 0);
    CHECK_EQ_INT(cid_parse(raw_s, strlen(raw_s), &raw), 0);
    l1 = cid_to_bytes(&test, h1, sizeof h1);
    l2 = cid_to_bytes(&raw, h2, sizeof h2);
    CHECK_EQ_INT(l1, 34);
    CHECK_EQ_INT(l2, 36);

    w_link(&w, h1, (size_t)l1, "a.txt", 12);
    w_link_n(&w, h2, (size_t)l2, "b\xff\0name", 6, 4); /* any bytes, even NUL, in a name */
    /* a link with only a Hash */
    struct wbuf l = {.n = 0};
    w_bytes(&l, 1, h1, (size_t)l1);
    w_bytes(&w, 2, l.b, l.n);
    /* a link with an empty name */
    l.n = 0;
    w_bytes(&l, 1, h2, (size_t)l2);
    w_bytes(&l, 2, "", 0);
    w_bytes(&w, 2, l.b, l.n);
    w_bytes(&w, 1, dir_data, sizeof dir_data);

    CHECK_EQ_INT(dagpb_decode(w.b, w.n, &n), 0);
    CHECK_EQ_INT(n.nlinks, 4);
    if (n.nlinks == 4) {
        struct cid c;
        CHECK_EQ_INT(n.links[0].name_len, 5);
        CHECK(memcmp(n.links[0].name, "a.txt", 5) == 0);
        CHECK_EQ_INT(n.links[0].tsize, 12);
        CHECK_EQ_INT(cid_from_bytes(n.links[1].hash, n.links[1].hash_len, &c), 0);
        CHECK(cid_equal(&c, &raw));
        CHECK_EQ_INT(n.links[1].name_len, 6);
        CHECK(memcmp(n.links[1].name, "b\xff\0name", 6) == 0);
        CHECK(!n.links[2].has_name);
        CHECK(!n.links[2].has_tsize);
        CHECK_EQ_INT(n.links[2].hash_len, 34);
        CHECK(n.links[3].has_name);
        CHECK_EQ_INT(n.links[3].name_len, 0);
        CHECK(!n.links[3].has_tsize);
    }
    dagpb_node_free(&n);

    /* many links: the array grows */
    w.n = 0;
    for (int i = 0; i < 20; i++)
        w_link(&w, h1, (size_t)l1, "x", (uint64_t)i);
    CHECK_EQ_INT(dagpb_decode(w.b, w.n, &n), 0);
    CHECK_EQ_INT(n.nlinks, 20);
    CHECK(!n.has_data);
    CHECK(n.data == NULL);
    if (n.nlinks == 20)
        CHECK_EQ_INT(n.links[19].tsize, 19);
    dagpb_node_free(&n);

    /* the empty block is a valid (empty) node */
    CHECK_EQ_INT(dagpb_decode(NULL, 0, &n), 0);
    CHECK_EQ_INT(n.nlinks, 0);
    CHECK(!n.has_data);
    dagpb_node_free(&n);
    /* empty Data is present but empty */
    static const uint8_t empty_data[] = {0x0a, 0x00};
    CHECK_EQ_INT(dagpb_decode(empty_data, sizeof empty_data, &n), 0);
    CHECK(n.has_data);
    CHECK_EQ_INT(n.data_len, 0);
    dagpb_node_free(&n);
}

/* A link's Hash field: 4 bytes, the shortest CID (CIDv1 raw, identity, empty digest). */
#define H4 0x0a, 0x04, 0x01, 0x55, 0x00, 0x00

static void test_dagpb_errors(void)
{
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t len;
    } cases[] = {
        {"unknown field 3", {0x1a, 0x00}, 2},
        {"Data as varint", {0x08, 0x01}, 2},
        {"Data as fixed32", {0x0d, 0, 0, 0, 0}, 5},
        {"duplicate Data", {0x0a, 0x00, 0x0a, 0x00}, 4},
        {"Data past end", {0x0a, 0x05, 0x01}, 3},
        {"huge length", {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
        {"truncated key", {0x8a}, 1},
        {"field 0", {0x02, 0x00}, 2},
        {"11-byte varint key",
         {0x8a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
         11},
        {"10th varint byte too big",
         {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         11},
        {"link without hash", {0x12, 0x02, 0x18, 0x01}, 4},
        {"empty link", {0x12, 0x00}, 2},
        {"link unknown field", {0x12, 0x08, H4, 0x20, 0x01}, 10},
        {"link duplicate hash", {0x12, 0x0c, H4, H4}, 14},
        {"link duplicate name", {0x12, 0x0a, H4, 0x12, 0x00, 0x12, 0x00}, 12},
        {"link duplicate tsize", {0x12, 0x0a, H4, 0x18, 0x01, 0x18, 0x01}, 12},
        {"link tsize as bytes", {0x12, 0x08, H4, 0x1a, 0x00}, 10},
        {"link hash as varint", {0x12, 0x02, 0x08, 0x01}, 4},
        {"link name past link end", {0x12, 0x08, H4, 0x12, 0x05, 0x00, 0x00}, 10},
        {"link tsize truncated", {0x12, 0x07, H4, 0x18, 0x80}, 9},
        {"link hash shorter than any CID", {0x12, 0x05, 0x0a, 0x03, 0x01, 0x55, 0x00}, 7},
        {"link empty hash", {0x12, 0x02, 0x0a, 0x00}, 4},
        {"link as varint", {0x10, 0x01}, 2},
        {"group wire type", {0x0b, 0x0c}, 2},
    };
    struct dagpb_node n;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = decode_exact(cases[i].b, cases[i].len, &n);
        if (r != -EINVAL)
            fprintf(stderr, "dag-pb case '%s': got %d\n", cases[i].what, r);
        CHECK_EQ_INT(r, -EINVAL);
    }
    /* a failed decode leaves an empty node */
    static const uint8_t two_then_bad[] = {0x12, 0x06, H4, 0x12, 0x06, H4, 0x1a};
    CHECK_EQ_INT(dagpb_decode(two_then_bad, sizeof two_then_bad, &n), -EINVAL);
    CHECK(n.links == NULL && n.nlinks == 0 && !n.has_data);
    CHECK_EQ_INT(dagpb_decode(two_then_bad, sizeof two_then_bad - 1, &n), 0);
    CHECK_EQ_INT(n.nlinks, 2);
    dagpb_node_free(&n);
    dagpb_node_free(NULL);
    CHECK_EQ_INT(dagpb_decode(NULL, 3, &n), -EINVAL);
}

/* ---- UnixFS -------------------------------------------------------------------------------- */

static void test_symlink(void)
{
    struct wbuf u = {.n = 0}, node = {.n = 0};
    struct dagpb_node n;
    struct unixfs_data d;

    w_uint(&u, 1, UNIXFS_SYMLINK);
    w_bytes(&u, 2, "target/path", 11);
    w_bytes(&node, 1, u.b, u.n);

    CHECK_EQ_INT(dagpb_decode(node.b, node.n, &n), 0);
    CHECK_EQ_INT(n.nlinks, 0);
    CHECK_EQ_INT(unixfs_decode(n.data, n.data_len, &d), 0);
    CHECK_EQ_INT(d.type, UNIXFS_SYMLINK);
    CHECK(d.has_data);
    CHECK_EQ_INT(d.data_len, 11);
    CHECK(memcmp(d.data, "target/path", 11) == 0);
    CHECK(!d.has_filesize);
    dagpb_node_free(&n);
}

static void test_unixfs_fields(void)
{
    struct wbuf w = {.n = 0}, mt = {.n = 0};
    struct unixfs_data u;
    uint64_t v;

    /* a chunked file: unpacked blocksizes, then a packed run */
    w_uint(&w, 1, UNIXFS_FILE);
    w_uint(&w, 3, 262144 * 2 + 10);
    w_uint(&w, 4, 262144);
    w_uint(&w, 4, 262144);
    struct wbuf packed = {.n = 0};
    w_varint(&packed, 10);
    w_varint(&packed, 1ull << 40);
    w_varint(&packed, UINT64_MAX);
    w_bytes(&w, 4, packed.b, packed.n);
    w_uint(&w, 7, 0644);
    w_uint(&mt, 1, (uint64_t)(int64_t)-5); /* negative seconds: 10-byte varint */
    w_key(&mt, 2, 5);
    w_raw(&mt, "\x15\xcd\x5b\x07", 4); /* 123456789 */
    w_bytes(&w, 8, mt.b, mt.n);
    CHECK_EQ_INT(unixfs_exact(w.b, w.n, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_FILE);
    CHECK_EQ_INT(u.filesize, 262144 * 2 + 10);
    CHECK_EQ_INT(u.nblocksizes, 5);
    CHECK(!u.has_data);
    CHECK(u.has_mode);
    CHECK_EQ_INT(u.mode, 0644);
    CHECK(u.has_mtime);
    CHECK_EQ_INT(u.mtime_sec, -5);
    CHECK_EQ_INT(u.mtime_nsec, 123456789);
    CHECK_EQ_INT(unixfs_blocksize(w.b, w.n, 0, &v), 0);
    CHECK_EQ_INT(v, 262144);
    CHECK_EQ_INT(unixfs_blocksize(w.b, w.n, 2, &v), 0);
    CHECK_EQ_INT(v, 10);
    CHECK_EQ_INT(unixfs_blocksize(w.b, w.n, 3, &v), 0);
    CHECK(v == 1ull << 40);
    CHECK_EQ_INT(unixfs_blocksize(w.b, w.n, 4, &v), 0);
    CHECK(v == UINT64_MAX);
    CHECK_EQ_INT(unixfs_blocksize(w.b, w.n, 5, &v), -ERANGE);

    /* every truncation fails cleanly or stops at a field boundary */
    for (size_t i = 0; i < w.n; i++) {
        int r = unixfs_exact(w.b, i, &u);
        CHECK(r == 0 || r == -EINVAL);
    }

    /* HAMT shard with an unknown future field of each wire type in between */
    w.n = 0;
    w_uint(&w, 1, UNIXFS_HAMT_SHARD);
    w_bytes(&w, 2, "\xff\x01", 2);
    w_uint(&w, 99, 7);
    w_bytes(&w, 100, "future", 6);
    w_key(&w, 101, 1);
    w_raw(&w, "12345678", 8);
    w_key(&w, 102, 5);
    w_raw(&w, "1234", 4);
    w_uint(&w, 5, 0x22);
    w_uint(&w, 6, 256);
    CHECK_EQ_INT(unixfs_exact(w.b, w.n, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_HAMT_SHARD);
    CHECK_EQ_INT(u.data_len, 2);
    CHECK_EQ_INT(u.hash_type, 0x22);
    CHECK(u.has_fanout);
    CHECK_EQ_INT(u.fanout, 256);

    /* metadata and raw types; mtime with an unknown field and no nanoseconds */
    w.n = 0;
    mt.n = 0;
    w_uint(&w, 1, UNIXFS_RAW);
    w_uint(&mt, 1, 1700000000);
    w_uint(&mt, 9, 1);
    w_bytes(&w, 8, mt.b, mt.n);
    CHECK_EQ_INT(unixfs_exact(w.b, w.n, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_RAW);
    CHECK_EQ_INT(u.mtime_sec, 1700000000);
    CHECK_EQ_INT(u.mtime_nsec, 0);
    static const uint8_t meta[] = {0x08, 0x03};
    CHECK_EQ_INT(unixfs_exact(meta, sizeof meta, &u), 0);
    CHECK_EQ_INT(u.type, UNIXFS_METADATA);
    /* Type may come last */
    static const uint8_t type_last[] = {0x18, 0x05, 0x08, 0x02};
    CHECK_EQ_INT(unixfs_exact(type_last, sizeof type_last, &u), 0);
    CHECK_EQ_INT(u.filesize, 5);
}

static void test_unixfs_errors(void)
{
    static const struct {
        const char *what;
        uint8_t b[24];
        size_t len;
    } cases[] = {
        {"empty", {0}, 0},
        {"no type", {0x18, 0x04}, 2},
        {"type 6", {0x08, 0x06}, 2},
        {"type huge", {0x08, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
        {"type as bytes", {0x0a, 0x00}, 2},
        {"duplicate type", {0x08, 0x02, 0x08, 0x02}, 4},
        {"duplicate data", {0x08, 0x02, 0x12, 0x00, 0x12, 0x00}, 6},
        {"duplicate filesize", {0x08, 0x02, 0x18, 0x00, 0x18, 0x00}, 6},
        {"data past end", {0x08, 0x02, 0x12, 0x04, 0x54}, 5},
        {"data as varint", {0x08, 0x02, 0x10, 0x04}, 4},
        {"filesize as bytes", {0x08, 0x02, 0x1a, 0x00}, 4},
        {"blocksizes fixed32", {0x08, 0x02, 0x25, 0, 0, 0, 0}, 7},
        {"packed blocksizes truncated varint", {0x08, 0x02, 0x22, 0x02, 0x01, 0x80}, 6},
        {"packed blocksizes past end", {0x08, 0x02, 0x22, 0x03, 0x01}, 5},
        {"mode too big", {0x08, 0x02, 0x38, 0x80, 0x80, 0x80, 0x80, 0x10}, 8},
        {"mode as bytes", {0x08, 0x02, 0x3a, 0x00}, 4},
        {"mtime as varint", {0x08, 0x02, 0x40, 0x01}, 4},
        {"mtime without seconds", {0x08, 0x02, 0x42, 0x00}, 4},
        {"mtime nsec 1e9", {0x08, 0x02, 0x42, 0x07, 0x08, 0x01, 0x15, 0x00, 0xca, 0x9a, 0x3b}, 11},
        {"mtime nsec truncated", {0x08, 0x02, 0x42, 0x05, 0x08, 0x01, 0x15, 0x00, 0x00}, 9},
        {"mtime nsec as varint", {0x08, 0x02, 0x42, 0x04, 0x08, 0x01, 0x10, 0x01}, 8},
        {"mtime duplicate", {0x08, 0x02, 0x42, 0x02, 0x08, 0x01, 0x42, 0x02, 0x08, 0x01}, 10},
        {"mtime seconds duplicate", {0x08, 0x02, 0x42, 0x04, 0x08, 0x01, 0x08, 0x01}, 8},
        {"mtime past end", {0x08, 0x02, 0x42, 0x09, 0x08, 0x01}, 6},
        {"unknown field group", {0x08, 0x02, 0x7b, 0x7c}, 4},
        {"unknown field wire type 6", {0x08, 0x02, 0x7e}, 3},
        {"unknown field wire type 7", {0x08, 0x02, 0x7f}, 3},
        {"unknown fixed64 truncated", {0x08, 0x02, 0x79, 1, 2, 3, 4, 5, 6, 7}, 10},
        {"unknown fixed32 truncated", {0x08, 0x02, 0x7d, 1, 2, 3}, 6},
        {"unknown bytes past end", {0x08, 0x02, 0x7a, 0x02, 0x00}, 5},
        {"unknown varint truncated", {0x08, 0x02, 0x78, 0x80}, 4},
        {"field 0", {0x08, 0x02, 0x00, 0x00}, 4},
        {"11-byte varint",
         {0x08, 0x02, 0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
         14},
    };
    struct unixfs_data u;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = unixfs_exact(cases[i].b, cases[i].len, &u);
        if (r != -EINVAL)
            fprintf(stderr, "UnixFS case '%s': got %d\n", cases[i].what, r);
        CHECK_EQ_INT(r, -EINVAL);
    }
    /* a 10-byte varint holding UINT64_MAX is fine */
    static const uint8_t max10[] = {0x08, 0x02, 0x18, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_EQ_INT(unixfs_exact(max10, sizeof max10, &u), 0);
    CHECK(u.filesize == UINT64_MAX);

    /* every truncation of the Test file's UnixFS: valid only at field boundaries with a Type */
    const uint8_t *td = TEST_BLOCK + 2;
    for (size_t i = 0; i < 10; i++) {
        int r = unixfs_exact(td, i, &u);
        CHECK_EQ_INT(r, (i == 2 || i == 8) ? 0 : -EINVAL);
    }
    uint64_t v;
    CHECK_EQ_INT(unixfs_blocksize(td, 5, 0, &v), -EINVAL);
    CHECK_EQ_INT(unixfs_decode(NULL, 4, &u), -EINVAL);
}

/* Random corruption of valid blocks: must never crash or read outside the buffer. */
static void test_fuzz(void)
{
    size_t len;
    uint8_t *fx = (uint8_t *)unit_read_fixture("dagpb/wrap_test_txt.bin", &len);
    uint8_t buf[128];
    uint32_t seed = 12345;
    struct dagpb_node n;
    struct unixfs_data u;
    int ok = 0;

    for (int iter = 0; iter < 200000; iter++) {
        const uint8_t *src = (iter & 1) ? fx : TEST_BLOCK;
        size_t sl = (iter & 1) ? len : sizeof TEST_BLOCK;
        memcpy(buf, src, sl);
        seed = seed * 1103515245u + 12345u;
        int flips = 1 + (int)((seed >> 16) % 4);
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % sl;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = (uint8_t)(seed >> 16);
        }
        seed = seed * 1103515245u + 12345u;
        size_t cut = (seed >> 16) % (sl + 1);
        int r = decode_exact(buf, cut, &n);
        CHECK(r == 0 || r == -EINVAL);
        /* the UnixFS decoder gets the mutated Data of the Test block, or the whole block */
        if (iter & 1)
            r = unixfs_exact(buf, cut, &u);
        else
            r = unixfs_exact(buf + 2, cut > 2 ? cut - 2 : 0, &u);
        CHECK(r == 0 || r == -EINVAL);
        if (r == 0)
            ok++;
    }
    CHECK(ok > 0);
    free(fx);
}

/* Bytes held by the allocator (small and mmapped chunks). 0 under a sanitizer whose
 * allocator does not feed mallinfo2: the checks on it then hold trivially. */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* A 4 MiB block of the smallest links (a 4-byte Hash, a 1-byte Name, a Tsize: 13 bytes each,
 * ~320k of them) decodes into one array of 32 bytes per link, not a doubling array of ~60. */
static void test_big_block_memory(void)
{
    static const uint8_t lk[] = {0x12, 0x0b, H4,
                                 0x12, 0x01, 'x',  0x18, 0x01};
    size_t cap = 4u << 20, n = cap / sizeof lk, len = n * sizeof lk;
    uint8_t *b = malloc(cap);
    for (size_t i = 0; i < n; i++)
        memcpy(b + i * sizeof lk, lk, sizeof lk);
    CHECK(sizeof(struct dagpb_link) <= 32);
    struct dagpb_node pb;
    size_t before = heap_in_use();
    CHECK_EQ_INT(dagpb_decode(b, len, &pb), 0);
    size_t held = heap_in_use() - before;
    CHECK_EQ_INT(pb.nlinks, n);
    /* 322k links: 10.3 MB now; the doubling array of 56-byte links held 29 MB. */
    if (held > n * 32 + (64u << 10))
        fprintf(stderr, "decoding %zu links holds %zu bytes\n", n, held);
    CHECK(held <= n * 32 + (64u << 10));
    CHECK(pb.links[n - 1].hash == b + len - 9 && pb.links[n - 1].hash_len == 4);
    CHECK(pb.links[n - 1].name_len == 1 && pb.links[n - 1].has_name && pb.links[n - 1].has_tsize);
    dagpb_node_free(&pb);
    free(b);
}

/* 2M blocksizes (a 4 MiB Data field): the iterator walks them once; a mix of packed and
 * unpacked fields comes out in order. */
static void test_blocksizes_iter(void)
{
    size_t n = 2u << 20;
    uint8_t *d = malloc(2 + 2 * n + 16);
    size_t len = 0;
    d[len++] = 0x08;
    d[len++] = 0x02;
    for (size_t i = 0; i < n; i++) {
        d[len++] = 0x20;
        d[len++] = (uint8_t)(i & 0x7f);
    }
    struct unixfs_data u;
    CHECK_EQ_INT(unixfs_decode(d, len, &u), 0);
    CHECK_EQ_INT(u.nblocksizes, n);
    struct unixfs_bs_iter it;
    unixfs_bs_begin(&it, d, len);
    uint64_t v, sum = 0;
    size_t count = 0;
    int r;
    while ((r = unixfs_bs_next(&it, &v)) == 1) {
        CHECK(v == (count & 0x7f));
        sum += v;
        count++;
    }
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(count, n);
    CHECK(sum == u.blocksizes_sum);
    /* Type, 3 unpacked, mode, an empty packed field, 2 packed, 1 unpacked */
    static const uint8_t mix[] = {0x08, 0x02, 0x20, 0x05, 0x20, 0x06, 0x20, 0x07, 0x38, 0x80,
                                  0x03, 0x22, 0x00, 0x22, 0x03, 0x88, 0x01, 0x09, 0x20, 0x0a};
    static const uint64_t want[] = {5, 6, 7, 136, 9, 10};
    unixfs_bs_begin(&it, mix, sizeof mix);
    for (size_t i = 0; i < 6; i++) {
        CHECK_EQ_INT(unixfs_bs_next(&it, &v), 1);
        CHECK_EQ_INT(v, want[i]);
    }
    CHECK_EQ_INT(unixfs_bs_next(&it, &v), 0);
    CHECK_EQ_INT(unixfs_bs_next(&it, &v), 0);
    static const uint8_t trunc[] = {0x08, 0x02, 0x22, 0x02, 0x88, 0x88};
    unixfs_bs_begin(&it, trunc, sizeof trunc);
    CHECK_EQ_INT(unixfs_bs_next(&it, &v), -EINVAL);
    free(d);
}

/* Telling symlinks from small files by block size (js-ipfs lists both as Type 2). */
static void test_guess_small(void)
{
    /* "hello\n" as added by default: 14-byte block (known answer QmZULkCE..., Size 14). */
    CHECK_EQ_INT(unixfs_guess_small(14, 6), UNIXFS_FILE);
    /* The symlink to "h.txt": the 11-byte block 0a 09 08 04 12 05 "h.txt". */
    CHECK_EQ_INT(unixfs_guess_small(11, 5), UNIXFS_SYMLINK);
    /* "Test": 12 bytes (known answer QmQrXZ4i...). Empty file: 6 bytes (QmbFMke1...). */
    CHECK_EQ_INT(unixfs_guess_small(12, 4), UNIXFS_FILE);
    CHECK_EQ_INT(unixfs_guess_small(6, 0), UNIXFS_FILE);
    /* Neither layout: a file with stored metadata or several blocks. */
    CHECK_EQ_INT(unixfs_guess_small(13, 4), -1);
    CHECK_EQ_INT(unixfs_guess_small(262158, 4096), -1);
    /* Large sizes: the varints grow; the formula must follow (262144 zeros: 262158). */
    CHECK_EQ_INT(unixfs_guess_small(262158, 262144), UNIXFS_FILE);
}

/* The HAMT threshold's "block" estimate (IPIP-499, boxo's linkSerializedSize and
 * dataFieldSerializedSize) is exactly the size of the plain directory's encoded block: names
 * and CIDs of several lengths, Tsizes across varint lengths, with and without a mode and a time
 * (a negative one, one with nanoseconds). */
static void test_hamt_block_estimate(void)
{
    static const uint64_t tsizes[] = {0, 1, 127, 128, 300000, 1ull << 35, UINT64_MAX};
    static const struct {
        bool has_mode, has_mtime;
        uint32_t mode, nsec;
        int64_t sec;
    } metas[] = {{false, false, 0, 0, 0},         {true, false, 0700, 0, 0},
                 {false, true, 0, 0, 1700000000}, {true, true, 01777, 5, 1700000000},
                 {false, true, 0, 0, -1},          {false, true, 0, 999999999, 0}};
    uint8_t cids[3][40];
    static const size_t cid_lens[3] = {34, 36, 38};
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < sizeof cids[i]; k++)
            cids[i][k] = (uint8_t)(i * 7 + k);
    char names[200][140];
    struct pb_link_out links[200];
    for (size_t mi = 0; mi < sizeof metas / sizeof metas[0]; mi++) {
        for (size_t n = 0; n <= 200; n += 37) {
            uint64_t est = hamt_dir_data_est(metas[mi].has_mode, metas[mi].mode,
                                             metas[mi].has_mtime, metas[mi].sec, metas[mi].nsec);
            for (size_t i = 0; i < n; i++) {
                size_t nl = 1 + (i * 13) % 139;
                memset(names[i], 'a' + (int)(i % 26), nl);
                links[i] = (struct pb_link_out){.hash = cids[i % 3],
                                                .hash_len = cid_lens[i % 3],
                                                .name = names[i],
                                                .name_len = nl,
                                                .tsize = tsizes[i % 7]};
                est += hamt_entry_est(true, nl, cid_lens[i % 3], tsizes[i % 7]);
                CHECK_EQ_INT(hamt_entry_est(false, nl, cid_lens[i % 3], tsizes[i % 7]),
                             nl + cid_lens[i % 3]);
            }
            struct unixfs_fields f = {.type = UNIXFS_DIRECTORY,
                                      .mode = metas[mi].mode,
                                      .has_mode = metas[mi].has_mode,
                                      .mtime_sec = metas[mi].sec,
                                      .mtime_nsec = metas[mi].nsec,
                                      .has_mtime = metas[mi].has_mtime};
            struct bytebuf d = {0}, b = {0};
            CHECK_EQ_INT(unixfs_encode(&f, &d), 0);
            CHECK_EQ_INT(dagpb_encode(links, n, d.p, d.len, true, &b), 0);
            CHECK_EQ_INT(b.len, est);
            bytebuf_free(&d);
            bytebuf_free(&b);
        }
    }
}

int main(void)
{
    test_hamt_block_estimate();
    test_guess_small();
    test_file_block();
    test_wrap_dir();
    test_directory();
    test_dagpb_errors();
    test_symlink();
    test_unixfs_fields();
    test_unixfs_errors();
    test_fuzz();
    test_big_block_memory();
    test_blocksizes_iter();
    return unit_done("test_dagpb");
}

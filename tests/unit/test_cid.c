/* test_cid.c - CID parsing, formatting and varints against known answers.
 *
 * The known CIDs come from outside the project (Kubo / the multiformats specs); the other
 * multibase forms of the bafy "Test" CID were computed independently with Python. */
#include "config.h"

#include "cid.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>

/* CID of the UnixFS file "Test" (dag-pb, sha2-256). */
#define QM_TEST "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR"
#define BAFY_TEST "bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq"
/* Raw leaf "Test": base32 and base58btc forms. */
#define BAFK_TEST "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu"
#define ZB2_TEST "zb2rhcEzJd7tNktiuFFLAxw7jRrJoK8TJjCxC63xcTbTsQPRe"
/* The empty UnixFS directory. */
#define QM_EMPTY_DIR "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
#define BAFY_EMPTY_DIR "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"

/* sha256 of the 12-byte dag-pb block 0a 0a 08 02 12 04 54 65 73 74 18 04. */
static const uint8_t TEST_DIGEST[32] = {
    0x25, 0x5e, 0xb4, 0xf9, 0x79, 0xf3, 0x6c, 0x98, 0x02, 0xb4, 0xdd, 0xa7, 0x1a, 0x97, 0xe2, 0xaf,
    0x64, 0x15, 0xf5, 0x64, 0x17, 0x0c, 0x09, 0x49, 0x9c, 0xaa, 0x98, 0x78, 0x81, 0x77, 0x87, 0x5c,
};

static int parse(const char *s, struct cid *c)
{
    return cid_parse(s, strlen(s), c);
}

static int parse_fails(const char *s)
{
    struct cid c;
    return parse(s, &c) == -EINVAL;
}

static void check_format(const struct cid *c, const char *want)
{
    char buf[CID_STR_MAX];
    int n = cid_format(c, buf, sizeof buf);
    CHECK_EQ_INT(n, strlen(want));
    CHECK_EQ_STR(buf, want);
}

static void test_v0(void)
{
    struct cid c;

    CHECK_EQ_INT(parse(QM_TEST, &c), 0);
    CHECK_EQ_INT(c.version, 0);
    CHECK_EQ_INT(c.codec, CID_CODEC_DAG_PB);
    CHECK_EQ_INT(c.mh_code, MH_SHA2_256);
    CHECK_EQ_INT(c.mh_len, 34);
    CHECK_EQ_INT(c.mh[0], 0x12);
    CHECK_EQ_INT(c.mh[1], 0x20);
    CHECK(memcmp(c.mh + 2, TEST_DIGEST, 32) == 0);
    check_format(&c, QM_TEST);

    /* A buggy node's "zQm...": base58btc prefix in front of a CIDv0. */
    struct cid z;
    CHECK_EQ_INT(parse("z" QM_TEST, &z), 0);
    CHECK(cid_equal(&c, &z));
    CHECK_EQ_INT(z.version, 0);
    check_format(&z, QM_TEST);

    /* The buggy-node leniency is for 'z' only: base32 of the same 34 bytes is not a CID. */
    CHECK(parse_fails("bciqckxvu7f47g3eyak2n3jy2s7rk6zav6vsbodajjgokvgdyqf3yoxa"));
}

static void test_v1_raw(void)
{
    struct cid a, b;

    CHECK_EQ_INT(parse(BAFK_TEST, &a), 0);
    CHECK_EQ_INT(a.version, 1);
    CHECK_EQ_INT(a.codec, CID_CODEC_RAW);
    CHECK_EQ_INT(a.mh_code, MH_SHA2_256);
    CHECK_EQ_INT(a.mh_len, 34);
    check_format(&a, BAFK_TEST);

    CHECK_EQ_INT(parse(ZB2_TEST, &b), 0);
    CHECK(cid_equal(&a, &b));
    CHECK_EQ_INT(cid_hash(&a), cid_hash(&b));
    check_format(&b, BAFK_TEST);
}

static void test_v1_dagpb(void)
{
    struct cid v0, v1, e0, e1;

    CHECK_EQ_INT(parse(QM_TEST, &v0), 0);
    CHECK_EQ_INT(parse(BAFY_TEST, &v1), 0);
    CHECK_EQ_INT(v1.version, 1);
    CHECK_EQ_INT(v1.codec, CID_CODEC_DAG_PB);
    CHECK_EQ_INT(v1.mh_len, v0.mh_len);
    CHECK(memcmp(v1.mh, v0.mh, v0.mh_len) == 0);
    CHECK(!cid_equal(&v0, &v1)); /* same content, different CIDs */
    check_format(&v1, BAFY_TEST);

    CHECK_EQ_INT(parse(QM_EMPTY_DIR, &e0), 0);
    CHECK_EQ_INT(parse(BAFY_EMPTY_DIR, &e1), 0);
    CHECK_EQ_INT(e0.mh_len, e1.mh_len);
    CHECK(memcmp(e0.mh, e1.mh, e0.mh_len) == 0);
    CHECK(!cid_equal(&e0, &v0));
    check_format(&e0, QM_EMPTY_DIR);
    check_format(&e1, BAFY_EMPTY_DIR);
}

static void test_multibases(void)
{
    /* BAFY_TEST in every multibase (computed with Python). */
    static const char *const forms[] = {
        "k2jmtxsan2xods8n1l1o72vfql6qmskifl9ui0fldcamqs6qhm5pp93w",
        "K2JMTXSAN2XODS8N1L1O72VFQL6QMSKIFL9UI0FLDCAMQS6QHM5PP93W",
        "f01701220255eb4f979f36c9802b4dda71a97e2af6415f564170c09499caa98788177875c",
        "F01701220255EB4F979F36C9802B4DDA71A97E2AF6415F564170C09499CAA98788177875C",
        "BAFYBEIBFL22PS6PTNSMAFNG5U4NJPYVPMQK7KZAXBQEUTHFKTB4IC54HLQ",
        "v05o14815bqqfiufjdic05d6tksd9folfcgavap0n1g4kj75aj1s82ts7bg",
        "V05O14815BQQFIUFJDIC05D6TKSD9FOLFCGAVAP0N1G4KJ75AJ1S82TS7BG",
        "mAXASICVetPl582yYArTdpxqX4q9kFfVkFwwJSZyqmHiBd4dc",
        "MAXASICVetPl582yYArTdpxqX4q9kFfVkFwwJSZyqmHiBd4dc",
        "uAXASICVetPl582yYArTdpxqX4q9kFfVkFwwJSZyqmHiBd4dc",
        "UAXASICVetPl582yYArTdpxqX4q9kFfVkFwwJSZyqmHiBd4dc",
        "zdj7WXwmvVnP6hvH52LBqE3YQMXg9A2sCNYtQH5JPEU7P5R5M",
    };
    struct cid ref, c;

    CHECK_EQ_INT(parse(BAFY_TEST, &ref), 0);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        int r = parse(forms[i], &c);
        if (r != 0)
            fprintf(stderr, "form %s\n", forms[i]);
        CHECK_EQ_INT(r, 0);
        CHECK(r == 0 && cid_equal(&ref, &c));
        if (r == 0)
            check_format(&c, BAFY_TEST);
    }

    /* Base64 variants with '+', '/', '-', '_' and padding: raw sha2-512 of "Test" (68 bytes,
     * one '=') and raw blake2b-256 of "hello" (38 bytes, one '='). */
/* the base64 and base64url bodies of that CID, split for the line length */
#define S512_STD                                                                                   \
    "AVUTQMbunjPPXGcVodFI/XP3MYiEtBrcuRYCHivA6AClxd2X9RQhePa"                                      \
    "uiMj92Y4a+wzkyNLFS183swt9oZl7szsLijE"
#define S512_URL                                                                                   \
    "AVUTQMbunjPPXGcVodFI_XP3MYiEtBrcuRYCHivA6AClxd2X9RQhePa"                                      \
    "uiMj92Y4a-wzkyNLFS183swt9oZl7szsLijE"
    static const char *const sha512_forms[] = {
        "m" S512_STD,
        "M" S512_STD "=",
        "u" S512_URL,
        "U" S512_URL "=",
    };
    const char *sha512_b32 = "bafkrgqgg52pdht24m4k2duki7vz7ommiqs2bvxfzcybb4k6a5aaklro5s72riily62x"
                             "irsh53ghbv6ym4tenfrkll433gc35ugmxxmz3bofdc";
    CHECK_EQ_INT(parse(sha512_b32, &ref), 0);
    CHECK_EQ_INT(ref.mh_code, 0x13);
    CHECK_EQ_INT(ref.mh_len, 66);
    for (size_t i = 0; i < sizeof sha512_forms / sizeof sha512_forms[0]; i++) {
        CHECK_EQ_INT(parse(sha512_forms[i], &c), 0);
        CHECK(cid_equal(&ref, &c));
    }
    /* wrong alphabet or missing/extra padding */
    CHECK(parse_fails("m" S512_URL));
    CHECK(parse_fails("u" S512_STD));
    CHECK(parse_fails("M" S512_STD));
    CHECK(parse_fails("m" S512_STD "="));
    CHECK(parse_fails("M" S512_STD "=="));
    CHECK(parse_fails("U" S512_STD "="));
#undef S512_STD
#undef S512_URL
    /* Nonzero bits after the last whole byte are ignored, as Kubo (Go) ignores them: Kubo 0.43.1
     * reads "...akwpz" as the CID "...akwpy" (a raw block of "rawdata\n"). */
    {
        struct cid canon, loose;
        char cs[CID_STR_MAX];
        CHECK_EQ_INT(parse("bafkreie2cb3ey37ui52jymiufyxq3s4ktnur7qyp45lbyir5ibul4akwpy", &canon), 0);
        CHECK_EQ_INT(parse("bafkreie2cb3ey37ui52jymiufyxq3s4ktnur7qyp45lbyir5ibul4akwpz", &loose), 0);
        CHECK(cid_equal(&canon, &loose));
        cid_format(&loose, cs, sizeof cs);
        CHECK_EQ_STR(cs, "bafkreie2cb3ey37ui52jymiufyxq3s4ktnur7qyp45lbyir5ibul4akwpy");
    }

    CHECK_EQ_INT(parse("bafk2bzaceaze3tycpxkkgcutfrcb6ns2exugwfz556slrzmjjasti4nydnzm6", &ref), 0);
    CHECK_EQ_INT(ref.mh_code, 0xb220);
    CHECK_EQ_INT(parse("mAVWg5AIgMk3PAn3UowqTLEQfNlol6GsXPe+kuOWJSCU0cbgbcs8", &c), 0);
    CHECK(cid_equal(&ref, &c));
    CHECK_EQ_INT(parse("UAVWg5AIgMk3PAn3UowqTLEQfNlol6GsXPe-kuOWJSCU0cbgbcs8=", &c), 0);
    CHECK(cid_equal(&ref, &c));

    /* identity "hel": 7 bytes, so base64pad ends in "==" */
    CHECK_EQ_INT(parse("bafkqaa3imvwa", &ref), 0);
    CHECK_EQ_INT(ref.mh_code, MH_IDENTITY);
    CHECK_EQ_INT(parse("MAVUAA2hlbA==", &c), 0);
    CHECK(cid_equal(&ref, &c));
    CHECK_EQ_INT(parse("mAVUAA2hlbA", &c), 0);
    CHECK(cid_equal(&ref, &c));
    CHECK(parse_fails("MAVUAA2hlbA="));
    CHECK(parse_fails("MAVUAA2hlbA"));
    CHECK(parse_fails("mAVUAA2hlbA=="));
    /* empty identity multihash */
    CHECK_EQ_INT(parse("bafkqaaa", &c), 0);
    CHECK_EQ_INT(c.mh_len, 2);
    check_format(&c, "bafkqaaa");

    /* Base16, base32, base32hex and base36 are read in either case, whatever the prefix, as
     * Kubo 0.43 reads them (checked with "ipfs cat" of such spellings); base64 is not. */
    static const char *const mixed[] = {
        "f01701220255EB4F979F36C9802B4DDA71A97E2AF6415F564170C09499CAA98788177875C",
        "F01701220255eb4f979f36c9802b4dda71a97e2af6415f564170c09499caa98788177875c",
        "K2jmtxsan2xods8n1l1o72vfql6qmskifl9ui0fldcamqs6qhm5pp93w",
        "k2JMTXSAN2XODS8N1L1O72VFQL6QMSKIFL9UI0FLDCAMQS6QHM5PP93W",
        "bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4iC54hlq",
        "bAFYBEIBFL22PS6PTNSMAFNG5U4NJPYVPMQK7KZAXBQEUTHFKTB4IC54HLQ",
        "BAFYBEIBFL22PS6PTNSMAFNG5U4NJPYVPMQK7KZAXBQEUTHFKTB4Ic54HLQ",
        "v05o14815bqqfiufjdic05d6tksd9folfcgavap0n1g4kj75aj1S82TS7BG",
        "Bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq",
    };
    CHECK_EQ_INT(parse(BAFY_TEST, &ref), 0);
    for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++) {
        CHECK_EQ_INT(parse(mixed[i], &c), 0);
        CHECK(cid_equal(&ref, &c));
    }
    CHECK(parse("mAXASICVetPl582yYArTdpxqX4q9kFfVkFwwJSZyqmHiBD4dc", &c) < 0 || !cid_equal(&ref, &c));
    /* odd-length base16 */
    CHECK(parse_fails("f01701220255eb4f979f36c9802b4dda71a97e2af6415f564170c09499caa98788177875"));
}

static void test_bad_strings(void)
{
    static const char *const bad[] = {
        "",
        "Qm",
        "Q",
        "b",
        "z",
        "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWu",      /* 45 */
        "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuRR",    /* 47 */
        "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWu0",     /* '0' is not base58 */
        "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuI",     /* 'I' is not base58 */
        "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWul",     /* 'l' is not base58 */
        "zQmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWu",     /* zQm, digest short */
        "z1b2rhcEzJd7tNktiuFFLAxw7jRrJoK8TJjCxC63xcTbTsQPRe", /* leading '1' = zero byte */
        "11111111111111111111111111111111111111111111",
        "hello",
        "notes.txt",
        "bafy",
        "..",
        ".",
        "/",
        "/ipfs/" QM_TEST,
        QM_TEST "/",
        "bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq/x",
        " " BAFY_TEST,
        BAFY_TEST " ",
        BAFY_TEST "\n",
        QM_TEST "\n",
        "bafybeibfl22ps6ptnsmafng5u4njp yvpmqk7kzaxbqeuthfktb4ic54hlq",
        "bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq=",
        "xafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq",
        "k02jmtxsan2xods8n1l1o72vfql6qmskifl9ui0fldcamqs6qhm5pp93w", /* leading zero byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ok = parse_fails(bad[i]);
        if (!ok)
            fprintf(stderr, "accepted bad CID '%s'\n", bad[i]);
        CHECK(ok);
    }

    struct cid c;
    /* embedded NUL */
    CHECK_EQ_INT(cid_parse(QM_TEST "\0", strlen(QM_TEST) + 1, &c), -EINVAL);
    CHECK_EQ_INT(cid_parse("bafybeibfl22ps6ptnsmafng5u4n\0pyvpmqk7kzaxbqeuthfktb4ic54hlq",
                           strlen(BAFY_TEST), &c),
                 -EINVAL);
    char v0nul[47];
    memcpy(v0nul, QM_TEST, 47);
    v0nul[20] = '\0';
    CHECK_EQ_INT(cid_parse(v0nul, 46, &c), -EINVAL);
    CHECK_EQ_INT(cid_parse(NULL, 0, &c), -EINVAL);
    CHECK_EQ_INT(cid_parse(BAFY_TEST, 0, &c), -EINVAL);

    /* a prefix of a valid string is not a CID: parse only the first len characters */
    for (size_t len = 1; len < strlen(BAFY_TEST); len++)
        CHECK_EQ_INT(cid_parse(BAFY_TEST, len, &c), -EINVAL);
    for (size_t len = 1; len < strlen(QM_TEST); len++)
        CHECK_EQ_INT(cid_parse(QM_TEST, len, &c), -EINVAL);

    /* one character removed anywhere, or one appended */
    char buf[128];
    size_t n = strlen(BAFY_TEST);
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, BAFY_TEST, i);
        memcpy(buf + i, &BAFY_TEST[i + 1], n - i - 1);
        CHECK_EQ_INT(cid_parse(buf, n - 1, &c), -EINVAL);
    }
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (size_t i = 0; i < sizeof b32 - 1; i++) {
        memcpy(buf, BAFY_TEST, n);
        buf[n] = b32[i];
        CHECK_EQ_INT(cid_parse(buf, n + 1, &c), -EINVAL);
    }
    n = strlen(QM_TEST);
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, QM_TEST, i);
        memcpy(buf + i, &QM_TEST[i + 1], n - i - 1);
        CHECK_EQ_INT(cid_parse(buf, n - 1, &c), -EINVAL);
    }

    /* long strings are refused */
    size_t big = 100000;
    char *longs = malloc(big + 1);
    CHECK(longs != NULL);
    if (longs) {
        memset(longs, 'a', big);
        longs[0] = 'b';
        longs[big] = '\0';
        CHECK_EQ_INT(cid_parse(longs, big, &c), -EINVAL);
        CHECK_EQ_INT(cid_parse(longs, 401, &c), -EINVAL);
        memset(longs, '1', big);
        longs[0] = 'z';
        CHECK_EQ_INT(cid_parse(longs, big, &c), -EINVAL);
        CHECK_EQ_INT(cid_parse(longs, 400, &c), -EINVAL);
        free(longs);
    }
}

/* Build a v1 CID from parts and run it through cid_from_bytes. */
static int from_parts(const uint8_t *hdr, size_t hlen, size_t dlen, struct cid *c)
{
    uint8_t b[512];
    memcpy(b, hdr, hlen);
    for (size_t i = 0; i < dlen; i++)
        b[hlen + i] = (uint8_t)(i * 7 + 1);
    return cid_from_bytes(b, hlen + dlen, c);
}

static void test_multihash_rules(void)
{
    struct cid c;
    static const struct {
        uint8_t hdr[8];
        size_t hlen;
        size_t dlen;
        int want;
    } cases[] = {
        {{0x01, 0x55, 0x12, 0x20}, 4, 32, 0},
        {{0x01, 0x55, 0x12, 0x1f}, 4, 31, -EINVAL}, /* sha2-256 must be 32 */
        {{0x01, 0x55, 0x12, 0x21}, 4, 33, -EINVAL},
        {{0x01, 0x55, 0x12, 0x20}, 4, 31, -EINVAL}, /* header says 32, 31 given */
        {{0x01, 0x55, 0x12, 0x20}, 4, 33, -EINVAL}, /* trailing byte */
        {{0x01, 0x55, 0x13, 0x40}, 4, 64, 0},       /* sha2-512 */
        {{0x01, 0x55, 0x13, 0x20}, 4, 32, -EINVAL},
        {{0x01, 0x55, 0x14, 0x40}, 4, 64, 0}, /* sha3-512 */
        {{0x01, 0x55, 0x15, 0x30}, 4, 48, 0}, /* sha3-384 */
        {{0x01, 0x55, 0x15, 0x20}, 4, 32, -EINVAL},
        {{0x01, 0x55, 0x16, 0x20}, 4, 32, 0}, /* sha3-256 */
        {{0x01, 0x55, 0x17, 0x1c}, 4, 28, 0}, /* sha3-224 */
        {{0x01, 0x55, 0x17, 0x20}, 4, 32, -EINVAL},
        {{0x01, 0x55, 0x1b, 0x20}, 4, 32, 0}, /* keccak-256 */
        {{0x01, 0x55, 0x1b, 0x40}, 4, 64, -EINVAL},
        {{0x01, 0x55, 0xa0, 0xe4, 0x02, 0x20}, 6, 32, 0}, /* blake2b-256 */
        {{0x01, 0x55, 0xa0, 0xe4, 0x02, 0x40}, 6, 64, -EINVAL},
        {{0x01, 0x55, 0xc0, 0xe4, 0x02, 0x40}, 6, 64, 0}, /* blake2b-512 */
        {{0x01, 0x55, 0xc0, 0xe4, 0x02, 0x20}, 6, 32, -EINVAL},
        {{0x01, 0x55, 0x1e, 0x20}, 4, 32, 0}, /* blake3 any length 1..64 */
        {{0x01, 0x55, 0x1e, 0x01}, 4, 1, 0},
        {{0x01, 0x55, 0x1e, 0x40}, 4, 64, 0},
        {{0x01, 0x55, 0x1e, 0x41}, 4, 65, -EINVAL},
        {{0x01, 0x55, 0x1e, 0x00}, 4, 0, -EINVAL},
        {{0x01, 0x55, 0x00, 0x00}, 4, 0, 0},               /* identity, empty */
        {{0x01, 0x55, 0x00, 0x80, 0x01}, 5, 128, 0},       /* identity, 128 */
        {{0x01, 0x55, 0x00, 0x81, 0x01}, 5, 129, -EINVAL}, /* identity, too long */
        {{0x01, 0x55, 0x99, 0x01, 0x40}, 5, 64, 0},        /* unknown code 0x99 */
        {{0x01, 0x55, 0x99, 0x01, 0x41}, 5, 65, -EINVAL},
        {{0x01, 0x55, 0x99, 0x01, 0x00}, 5, 0, -EINVAL},
        {{0x01, 0x71, 0x12, 0x20}, 4, 32, 0},             /* dag-cbor */
        {{0x01, 0x72, 0x00, 0x24}, 4, 36, 0},             /* libp2p-key, identity */
        {{0x01, 0x81, 0x01, 0x12, 0x20}, 5, 32, 0},       /* 2-byte codec varint */
        {{0x00, 0x70, 0x12, 0x20}, 4, 32, -EINVAL},       /* version 0 in v1 form */
        {{0x02, 0x70, 0x12, 0x20}, 4, 32, -EINVAL},       /* version 2 */
        {{0x03, 0x70, 0x12, 0x20}, 4, 32, -EINVAL},       /* version 3 */
        {{0x81, 0x00, 0x70, 0x12, 0x20}, 5, 32, -EINVAL}, /* overlong version */
        {{0x01, 0xf0, 0x00, 0x12, 0x20}, 5, 32, -EINVAL}, /* overlong codec */
        {{0x01, 0x70, 0x92, 0x00, 0x20}, 5, 32, -EINVAL}, /* overlong hash code */
        {{0x01, 0x70, 0x12, 0xa0, 0x00}, 5, 32, -EINVAL}, /* overlong length */
        {{0x01, 0x70}, 2, 0, -EINVAL},
        {{0x01}, 1, 0, -EINVAL},
        {{0x12, 0x20}, 2, 32, 0}, /* binary v0 */
        {{0x12, 0x20}, 2, 31, -EINVAL},
        {{0x12, 0x20}, 2, 33, -EINVAL},
        {{0x12, 0x1f}, 2, 31, -EINVAL},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = from_parts(cases[i].hdr, cases[i].hlen, cases[i].dlen, &c);
        if (r != cases[i].want)
            fprintf(stderr, "multihash case %zu: got %d\n", i, r);
        CHECK_EQ_INT(r, cases[i].want);
    }

    /* identity with 128 bytes round-trips through text */
    static const uint8_t id128[] = {0x01, 0x55, 0x00, 0x80, 0x01};
    CHECK_EQ_INT(from_parts(id128, sizeof id128, 128, &c), 0);
    CHECK_EQ_INT(c.mh_len, 131);
    char s[CID_STR_MAX];
    int n = cid_format(&c, s, sizeof s);
    CHECK(n > 0);
    struct cid back;
    CHECK_EQ_INT(cid_parse(s, (size_t)n, &back), 0);
    CHECK(cid_equal(&c, &back));

    /* codec with a 9-byte varint: the largest binary CID; format fits CID_STR_MAX */
    static const uint8_t bigcodec[] = {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0x7f, 0x00, 0x80, 0x01};
    CHECK_EQ_INT(from_parts(bigcodec, sizeof bigcodec, 128, &c), 0);
    CHECK_EQ_INT(c.codec, INT64_MAX);
    n = cid_format(&c, s, sizeof s);
    CHECK(n > 0 && n < CID_STR_MAX);
    CHECK_EQ_INT(cid_parse(s, (size_t)n, &back), 0);
    CHECK(cid_equal(&c, &back));
    /* its base16 form (283 characters) also parses */
    uint8_t bin[200];
    int bl = cid_to_bytes(&c, bin, sizeof bin);
    CHECK_EQ_INT(bl, 141);
    char hex[400];
    hex[0] = 'f';
    for (int i = 0; i < bl; i++)
        snprintf(hex + 1 + 2 * i, 3, "%02x", bin[i]);
    CHECK_EQ_INT(cid_parse(hex, 1 + 2 * (size_t)bl, &back), 0);
    CHECK(cid_equal(&c, &back));
}

static void test_bytes(void)
{
    struct cid c, d;
    uint8_t buf[CID_MAX_MH + 16];
    char s[CID_STR_MAX];

    CHECK_EQ_INT(parse(BAFY_TEST, &c), 0);
    int n = cid_to_bytes(&c, buf, sizeof buf);
    CHECK_EQ_INT(n, 36);
    CHECK_EQ_INT(buf[0], 0x01);
    CHECK_EQ_INT(buf[1], 0x70);
    CHECK(memcmp(buf + 4, TEST_DIGEST, 32) == 0);
    CHECK_EQ_INT(cid_from_bytes(buf, (size_t)n, &d), 0);
    CHECK(cid_equal(&c, &d));
    CHECK_EQ_INT(cid_to_bytes(&c, buf, 35), -ENOSPC);
    CHECK_EQ_INT(cid_to_bytes(&c, buf, 36), 36);

    CHECK_EQ_INT(parse(QM_TEST, &c), 0);
    n = cid_to_bytes(&c, buf, sizeof buf);
    CHECK_EQ_INT(n, 34);
    CHECK_EQ_INT(cid_from_bytes(buf, (size_t)n, &d), 0);
    CHECK(cid_equal(&c, &d));
    CHECK_EQ_INT(d.version, 0);
    CHECK_EQ_INT(cid_from_bytes(buf, 0, &d), -EINVAL);

    /* format: exact buffer sizes */
    CHECK_EQ_INT(cid_format(&c, s, 46), -ENOSPC);
    CHECK_EQ_INT(cid_format(&c, s, 47), 46);
    CHECK_EQ_STR(s, QM_TEST);
    CHECK_EQ_INT(parse(BAFY_TEST, &c), 0);
    CHECK_EQ_INT(cid_format(&c, s, strlen(BAFY_TEST)), -ENOSPC);
    CHECK_EQ_INT(cid_format(&c, s, strlen(BAFY_TEST) + 1), (int)strlen(BAFY_TEST));
    CHECK_EQ_STR(s, BAFY_TEST);
    CHECK_EQ_INT(cid_format(&c, s, 1), -ENOSPC);

    /* an invalid struct is not formatted */
    struct cid bad = c;
    bad.version = 2;
    CHECK(cid_format(&bad, s, sizeof s) < 0);
    CHECK(cid_to_bytes(&bad, buf, sizeof buf) < 0);

    /* hashes: equal CIDs hash equal, and the hash covers version and codec */
    struct cid v0, v1, raw;
    CHECK_EQ_INT(parse(QM_TEST, &v0), 0);
    CHECK_EQ_INT(parse("z" QM_TEST, &d), 0);
    CHECK_EQ_INT(parse(BAFY_TEST, &v1), 0);
    CHECK_EQ_INT(parse(BAFK_TEST, &raw), 0);
    CHECK(cid_hash(&v0) == cid_hash(&d));
    CHECK(cid_hash(&v0) != cid_hash(&v1));
    CHECK(cid_hash(&v1) != cid_hash(&raw));
    CHECK(!cid_equal(&v1, &raw));
    CHECK(cid_equal(NULL, NULL));
    CHECK(!cid_equal(&v1, NULL));
}

static void test_varint(void)
{
    static const struct {
        uint64_t v;
        size_t len;
        uint8_t enc[10];
    } cases[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {127, 1, {0x7f}},
        {128, 2, {0x80, 0x01}},
        {255, 2, {0xff, 0x01}},
        {300, 2, {0xac, 0x02}},
        {16383, 2, {0xff, 0x7f}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {0xb220, 3, {0xa0, 0xe4, 0x02}},
        {(1ull << 63) - 1, 9, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
    };
    uint8_t buf[10];
    uint64_t v;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = varint_encode(cases[i].v, buf);
        CHECK_EQ_INT(n, cases[i].len);
        CHECK(memcmp(buf, cases[i].enc, n) == 0);
        v = 12345;
        CHECK_EQ_INT(varint_decode(cases[i].enc, cases[i].len, &v), cases[i].len);
        CHECK(v == cases[i].v);
        /* truncated */
        CHECK_EQ_INT(varint_decode(cases[i].enc, cases[i].len - 1, &v), 0);
        /* extra bytes after are not consumed */
        uint8_t more[12];
        memcpy(more, cases[i].enc, cases[i].len);
        more[cases[i].len] = 0x05;
        CHECK_EQ_INT(varint_decode(more, cases[i].len + 1, &v), cases[i].len);
    }

    /* round trips over many magnitudes */
    for (unsigned shift = 0; shift < 63; shift++) {
        uint64_t vals[3] = {1ull << shift, (1ull << shift) - 1, (1ull << shift) + 1};
        for (int k = 0; k < 3; k++) {
            size_t n = varint_encode(vals[k], buf);
            CHECK_EQ_INT(varint_decode(buf, n, &v), n);
            CHECK(v == vals[k]);
        }
    }

    /* 2^63 and up need 10 bytes: encodable but not decodable (multiformats max is 9 bytes) */
    CHECK_EQ_INT(varint_encode(1ull << 63, buf), 10);
    CHECK_EQ_INT(varint_decode(buf, 10, &v), 0);
    CHECK_EQ_INT(varint_encode(UINT64_MAX, buf), 10);
    CHECK_EQ_INT(varint_decode(buf, 10, &v), 0);

    /* overlong (non-minimal) encodings */
    static const uint8_t over1[] = {0x80, 0x00};
    static const uint8_t over2[] = {0x81, 0x00};
    static const uint8_t over3[] = {0xff, 0x80, 0x00};
    CHECK_EQ_INT(varint_decode(over1, sizeof over1, &v), 0);
    CHECK_EQ_INT(varint_decode(over2, sizeof over2, &v), 0);
    CHECK_EQ_INT(varint_decode(over3, sizeof over3, &v), 0);
    CHECK_EQ_INT(varint_decode(over1, 0, &v), 0);
    static const uint8_t cont[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    CHECK_EQ_INT(varint_decode(cont, sizeof cont, &v), 0);
}

int main(void)
{
    test_v0();
    test_v1_raw();
    test_v1_dagpb();
    test_multibases();
    test_bad_strings();
    test_multihash_rules();
    test_bytes();
    test_varint();
    return unit_done("test_cid");
}

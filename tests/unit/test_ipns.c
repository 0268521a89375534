/* test_ipns.c - IPNS record verification on records recorded from Kubo 0.43.1
 * (tests/fixtures/ipns/README says how), and on records broken here byte by byte. */
#include "config.h"

#include "cid.h"
#include "ipns.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#define NAME_FX1 "k51qzi5uqu5dk593kyj08uzo5s2uy858sv1hwxupcek5olmry0a719wlsktogy"
#define NAME_FX2 "k51qzi5uqu5di6jf0lfpkxx219xbmx68xhigfyu7uyreh92v0w8ux1a6ol7v7h"
#define NAME_RSA "k2k4r8krvjj1qlrcglszc20tjq6a9wiyn3wz0iciome3lqbgzi4d3cde"
/* The same names as peer IDs and in base32 (Kubo's `cid format -f %M -b base58btc` and
 * `cid format -b base32`; `name inspect --verify=PEERID` says the fixtures are theirs). */
#define PEER_FX1 "12D3KooWLX2iGrPYqQuWgUTnqGhYeLR9L3oNDuwA3LGY6p2mPupV"
#define PEER_FX2 "12D3KooWFDPTe6p47hwasiraL8Y6AVkwz3226j1xZYxD1ragSzxC"
#define PEER_RSA "QmS1E23a3dGXSQ5yTyZd3nZiJZBA9vo8QReoGarS2RyuR3"
#define B32_FX1 "bafzaajaiaejcbhx7v3nr27cbqzuu6it2mzkovbfi6cw53ilhrqmyidpj2yb5b5jc"
#define B32_RSA "bafzbeibwotfwclqczufuvlsybigtmz2c75ecfkrycmweui6p4sth4b76mi"

static size_t load(const char *name, uint8_t *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ipns/%s", FIXTURES, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 0;
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* Where signatureV1 lies in a Kubo record (field 1, the value, then field 2): [*from, *to).
 * That signature is not checked (V2 is; the spec lets V1 go), so flipping it changes nothing. */
static void sig1_span(const uint8_t *rec, size_t *from, size_t *to)
{
    size_t i = 2 + rec[1]; /* 0a LEN value */
    uint64_t len = 0;
    CHECK_EQ_INT(rec[i], 0x12);
    size_t k = varint_decode(rec + i + 1, 10, &len);
    *from = i + 1 + k;
    *to = *from + (size_t)len;
}

static struct cid name_of(const char *s)
{
    struct cid c;
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(cid_parse(s, strlen(s), &c), 0);
    return c;
}

static int64_t at(const char *rfc3339)
{
    int64_t ns = 0;
    CHECK_EQ_INT(ipns_parse_time(rfc3339, strlen(rfc3339), &ns), 0);
    return ns;
}

static void test_time(void)
{
    int64_t ns;
    CHECK_EQ_INT(ipns_parse_time("1970-01-01T00:00:01Z", 20, &ns), 0);
    CHECK_EQ_INT(ns, 1000000000);
    CHECK_EQ_INT(at("2026-12-05T23:24:46.469999804Z"), 1796513086469999804LL);
    CHECK_EQ_INT(at("2026-12-05T23:24:46.5Z"), 1796513086500000000LL);
    CHECK_EQ_INT(at("2026-12-06T01:24:46+02:00"), 1796513086000000000LL);
    CHECK_EQ_INT(at("2026-12-05T20:24:46-03:00"), 1796513086000000000LL);
    const char *bad[] = {"", "2026-12-05", "2026-12-05T23:24:46", "2026-13-05T23:24:46Z",
                         "2026-12-05T24:00:00Z", "2026-12-05T23:24:46.Z", "2026-12-05 23:24:46Z",
                         "2026-12-05T23:24:46Zjunk", "2026-12-05T23:24:46+0200", "x026-12-05T23:24:46Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(ipns_parse_time(bad[i], strlen(bad[i]), &ns), -EINVAL);
}

static void test_records(void)
{
    static uint8_t rec[IPNS_MAX_RECORD + 16];
    struct ipns_record r;
    struct cid fx1 = name_of(NAME_FX1), fx2 = name_of(NAME_FX2), rsa = name_of(NAME_RSA);

    size_t n = load("fx1-seq0.bin", rec, sizeof rec);
    CHECK_EQ_INT(n, 366);
    int64_t eol0 = at("2026-12-05T23:24:46.469999804Z");
    int64_t before = eol0 - 3600LL * 1000000000;
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, before, &r), 0);
    CHECK_EQ_STR(r.value, "/ipfs/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    CHECK_EQ_INT(r.sequence, 0);
    CHECK_EQ_INT(r.ttl_ns, 2000000000);
    CHECK_EQ_INT(r.eol_ns, eol0);
    /* Lifetime: the TTL, unless the EOL or the cap come first. */
    CHECK_EQ_INT(ipns_lifetime_ns(&r, before, 60000000000ULL), 2000000000);
    CHECK_EQ_INT(ipns_lifetime_ns(&r, before, 1000000000ULL), 1000000000);
    CHECK_EQ_INT(ipns_lifetime_ns(&r, eol0 - 500000000, 60000000000ULL), 500000000);
    CHECK_EQ_INT(ipns_lifetime_ns(&r, eol0, 60000000000ULL), 0);
    /* Expired, and the instant it expires. */
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, eol0, &r), -ETIME);
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, eol0 + 1, &r), -ETIME);
    /* Another name's key: refused. */
    CHECK_EQ_INT(ipns_verify(&fx2, rec, n, before, &r), -EKEYREJECTED);
    CHECK_EQ_INT(ipns_verify(&rsa, rec, n, before, &r), -EKEYREJECTED);
    /* A name that is not a key (a content CID). */
    struct cid content = name_of("QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    CHECK_EQ_INT(ipns_verify(&content, rec, n, before, &r), -EKEYREJECTED);

    /* Every byte flipped: never accepted (the signature or the V1 copy catches it, or the
     * record no longer parses). */
    int accepted = 0;
    size_t s1, s2;
    sig1_span(rec, &s1, &s2);
    CHECK_EQ_INT(s2 - s1, 64);
    for (size_t i = 0; i < n; i++) {
        if (i >= s1 && i < s2)
            continue;
        rec[i] ^= 0x01;
        if (ipns_verify(&fx1, rec, n, before, &r) == 0)
            accepted++;
        rec[i] ^= 0x01;
    }
    CHECK_EQ_INT(accepted, 0);
    /* The signatureV2 (field 8 at 0xa2: 42 40, then 64 bytes) flipped: the key refuses it. */
    CHECK_EQ_INT(rec[0xa2], 0x42);
    rec[0xa4] ^= 0x80;
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, before, &r), -EKEYREJECTED);
    rec[0xa4] ^= 0x80;
    /* Every truncation: refused, never read past the end (ASan watches). */
    for (size_t k = 0; k < n; k++)
        CHECK(ipns_verify(&fx1, rec, k, before, &r) < 0);
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, before, &r), 0);
    /* Oversized. */
    CHECK_EQ_INT(ipns_verify(&fx1, rec, IPNS_MAX_RECORD + 1, before, &r), -EFBIG);

    /* The next sequence, with a TTL of an hour. */
    n = load("fx1-seq1.bin", rec, sizeof rec);
    CHECK(n > 0);
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, before, &r), 0);
    CHECK_EQ_INT(r.sequence, 1);
    CHECK_EQ_INT(r.ttl_ns, 3600000000000ULL);
    CHECK_EQ_STR(r.value, "/ipfs/QmTvpavFFTR9ooa6frynkxRWz7psbtYWLgvXxaYKpKGGHx");

    /* fx2's own record verifies under fx2, not under fx1. */
    n = load("fx2-seq0.bin", rec, sizeof rec);
    CHECK_EQ_INT(ipns_verify(&fx2, rec, n, before, &r), 0);
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, before, &r), -EKEYREJECTED);

    /* RSA: the key is in the record, its hash is the name. */
    n = load("rsa-seq0.bin", rec, sizeof rec);
    CHECK_EQ_INT(n, 1057);
    CHECK_EQ_INT(ipns_verify(&rsa, rec, n, before, &r), 0);
    CHECK_EQ_STR(r.value, "/ipfs/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    CHECK_EQ_INT(r.ttl_ns, 300000000000ULL);
    CHECK_EQ_INT(ipns_verify(&fx1, rec, n, before, &r), -EKEYREJECTED);
    accepted = 0;
    sig1_span(rec, &s1, &s2);
    CHECK_EQ_INT(s2 - s1, 256);
    for (size_t i = 0; i < n; i += 7) {
        if (i >= s1 && i < s2)
            continue;
        rec[i] ^= 0x04;
        if (ipns_verify(&rsa, rec, n, before, &r) == 0)
            accepted++;
        rec[i] ^= 0x04;
    }
    CHECK_EQ_INT(accepted, 0);
}

static struct cid ipns_name(const char *s)
{
    struct cid c;
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(ipns_name_parse(s, strlen(s), &c), 0);
    return c;
}

/* Every spelling of a name: one key, one canonical base36 spelling, and the record verifies. */
static void test_names(void)
{
    static uint8_t rec[IPNS_MAX_RECORD];
    struct ipns_record r;
    char buf[CID_STR_MAX];
    struct cid fx1 = ipns_name(NAME_FX1), rsa = ipns_name(NAME_RSA);
    struct cid p1 = ipns_name(PEER_FX1), b1 = ipns_name(B32_FX1);
    struct cid prsa = ipns_name(PEER_RSA), brsa = ipns_name(B32_RSA);
    CHECK(cid_equal(&p1, &fx1));
    CHECK(cid_equal(&b1, &fx1));
    CHECK(cid_equal(&prsa, &rsa));
    CHECK(cid_equal(&brsa, &rsa));
    CHECK_EQ_INT(p1.codec, CID_CODEC_LIBP2P_KEY);
    CHECK_EQ_INT(p1.mh_code, MH_IDENTITY);
    CHECK_EQ_INT(prsa.mh_code, MH_SHA2_256);
    /* The canonical spelling is Kubo's base36. */
    CHECK_EQ_INT(ipns_name_format(&p1, buf, sizeof buf), (int)strlen(NAME_FX1));
    CHECK_EQ_STR(buf, NAME_FX1);
    CHECK_EQ_INT(ipns_name_format(&prsa, buf, sizeof buf), (int)strlen(NAME_RSA));
    CHECK_EQ_STR(buf, NAME_RSA);
    CHECK_EQ_INT(ipns_name_format(&p1, buf, 10), -ENOSPC);
    struct cid p2 = ipns_name(PEER_FX2);
    CHECK_EQ_INT(ipns_name_format(&p2, buf, sizeof buf), (int)strlen(NAME_FX2));
    CHECK_EQ_STR(buf, NAME_FX2);

    int64_t before = at("2026-12-05T22:24:46Z");
    size_t n = load("fx1-seq0.bin", rec, sizeof rec);
    CHECK_EQ_INT(ipns_verify(&p1, rec, n, before, &r), 0);
    CHECK_EQ_INT(ipns_verify(&b1, rec, n, before, &r), 0);
    CHECK_EQ_INT(ipns_verify(&p2, rec, n, before, &r), -EKEYREJECTED);
    CHECK_EQ_INT(ipns_verify(&prsa, rec, n, before, &r), -EKEYREJECTED);
    n = load("rsa-seq0.bin", rec, sizeof rec);
    CHECK_EQ_INT(ipns_verify(&prsa, rec, n, before, &r), 0);
    CHECK_EQ_INT(ipns_verify(&brsa, rec, n, before, &r), 0);
    CHECK_EQ_INT(ipns_verify(&p1, rec, n, before, &r), -EKEYREJECTED);

    /* Not names: content CIDs of other codecs, DNS names, broken peer IDs. */
    struct cid c;
    const char *bad[] = {"", "1", "11", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
                         "example.com", "1password.com", "12D3KooWLX2iGrPYqQuWgUTnqGhYeLR9L3oNDuwA3LGY6p2mPup",
                         "12D3KooWLX2iGrPYqQuWgUTnqGhYeLR9L3oNDuwA3LGY6p2mPupVV",
                         "12D3KooWLX2iGrPYqQuWgUTnqGhYeLR9L3oNDuwA3LGY6p2mPup0",
                         "QmS1E23a3dGXSQ5yTyZd3nZiJZBA9vo8QReoGarS2RyuR"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(ipns_name_parse(bad[i], strlen(bad[i]), &c), -EINVAL);
    /* Every prefix of a peer ID: refused or a different key, never a crash. */
    for (size_t k = 0; k < strlen(PEER_FX1); k++)
        if (ipns_name_parse(PEER_FX1, k, &c) == 0)
            CHECK(!cid_equal(&c, &fx1));
    char long_name[600];
    memset(long_name, 'z', sizeof long_name);
    long_name[0] = '1';
    CHECK_EQ_INT(ipns_name_parse(long_name, sizeof long_name, &c), -EINVAL);
}

int main(void)
{
    test_time();
    test_names();
    test_records();
    printf("test_ipns: %d checks, %d failures\n", unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

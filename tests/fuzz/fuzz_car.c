/* fuzz_car.c - CAR streams: gateways and nodes send them, and a hostile one may send anything.
 *
 * Properties: the reader answers the same (error code, blocks, their CIDs and bytes) whether
 * the input comes whole, byte by byte or in pieces whose sizes the input picks; every block it
 * passes hashes to its CID (checked again here, independently) and lies inside the input or the
 * reader's buffer; errors are only the documented ones; a stream it accepts, written back with
 * the writer (roots, then the blocks), reads back to the same blocks.
 */
#include "config.h"

#include "car.h"
#include "cid.h"
#include "fuzz.h"
#include "sha256.h"

#include <errno.h>
#include <string.h>

#define MAX_BLOCK 65536

struct seen {
    uint64_t n;
    uint64_t sum; /* over the CIDs and the blocks, in order */
    struct car_buf rewrite; /* the blocks, re-written (first pass only) */
    int rewrite_rc;
};

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ n;
}

static int on_block(void *ud, const struct cid *c, const uint8_t *block, size_t len)
{
    struct seen *s = ud;
    uint8_t bin[CID_MAX_MH + 16], d[SHA256_LEN];
    int cl = cid_to_bytes(c, bin, sizeof bin);

    FUZZ_CHECK(cl > 0, "a block with an invalid CID");
    FUZZ_CHECK(len <= MAX_BLOCK, "a block of %zu bytes over the limit", len);
    fuzz_touch(block, len);
    /* sha2-256's code and length take one byte each. */
    if (c->mh_code == MH_SHA2_256) {
        FUZZ_CHECK(sha256_digest(block, len, d) == 0 && c->mh_len == 2 + SHA256_LEN &&
                       memcmp(c->mh + 2, d, SHA256_LEN) == 0,
                   "a sha2-256 block that does not hash to its CID");
    } else {
        FUZZ_CHECK(c->mh_code == MH_IDENTITY, "hash function 0x%llx passed",
                   (unsigned long long)c->mh_code);
        uint64_t dlen = 0;
        size_t h = varint_decode(c->mh + 1, c->mh_len - 1, &dlen);
        FUZZ_CHECK(h > 0 && dlen == len && c->mh_len == 1 + h + len &&
                       memcmp(c->mh + 1 + h, block, len) == 0,
                   "an identity block that is not its CID's digest");
    }
    s->n++;
    s->sum = mix(mix(s->sum, bin, (size_t)cl), block, len);
    if (s->rewrite_rc == 0)
        s->rewrite_rc = car_write_block(car_sink_buf, &s->rewrite, c, block, len);
    return 0;
}

/* mode 0: whole; 1: byte by byte; 2: piece sizes taken from the input's bytes. */
static int run(const uint8_t *buf, size_t size, int mode, struct seen *s, struct car_reader *keep)
{
    struct car_reader r;
    size_t off = 0, k = 0;
    int rc = 0;

    car_reader_init(&r, MAX_BLOCK);
    while (off < size) {
        size_t n = size - off;
        if (mode == 1)
            n = 1;
        else if (mode == 2) {
            /* Empty feeds too, but never two in a row. */
            size_t pick = buf[k % size];
            k++;
            if (pick == 0 && (k & 1) == 0)
                pick = 1;
            n = pick < n ? pick : n;
        }
        rc = car_reader_feed(&r, buf + off, n, on_block, s);
        if (rc < 0)
            break;
        off += n;
    }
    if (rc == 0)
        rc = car_reader_finish(&r);
    FUZZ_CHECK(car_reader_nblocks(&r) == s->n, "nblocks %llu, callback saw %llu",
               (unsigned long long)car_reader_nblocks(&r), (unsigned long long)s->n);
    if (rc < 0) {
        FUZZ_CHECK(car_reader_feed(&r, buf, size, on_block, s) == rc &&
                       car_reader_finish(&r) == rc,
                   "the error %d does not stick", rc);
    }
    if (keep)
        *keep = r;
    else
        car_reader_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    struct seen a, b;
    struct car_reader r;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    memset(&a, 0, sizeof a);
    int rc = run(buf, size, 0, &a, &r);
    FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EFBIG || rc == -EBADMSG || rc == -ENOTSUP ||
                   rc == -ENOMEM,
               "rc %d", rc);
    for (int mode = 1; mode <= 2; mode++) {
        memset(&b, 0, sizeof b);
        b.rewrite_rc = 1; /* no rewrite */
        int rc2 = run(buf, size, mode, &b, NULL);
        FUZZ_CHECK(rc2 == rc && b.n == a.n && b.sum == a.sum,
                   "mode %d: rc %d vs %d, %llu vs %llu blocks", mode, rc2, rc,
                   (unsigned long long)b.n, (unsigned long long)a.n);
    }

    if (rc == 0) {
        size_t nroots = car_reader_nroots(&r);
        FUZZ_CHECK(car_reader_version(&r) == 1 || car_reader_version(&r) == 2, "version %u",
                   car_reader_version(&r));
        struct cid *roots = calloc(nroots ? nroots : 1, sizeof *roots);
        struct car_buf out = {0};
        if (roots) {
            for (size_t i = 0; i < nroots; i++)
                FUZZ_CHECK(car_reader_root(&r, i, &roots[i]) == 0, "root %zu", i);
            FUZZ_CHECK(car_reader_root(&r, nroots, &roots[0]) == -ERANGE || nroots == 0,
                       "root past the end");
            int w = car_write_header(car_sink_buf, &out, roots, nroots);
            FUZZ_CHECK(w == 0 || w == -EFBIG || w == -ENOMEM, "write header %d", w);
            if (w == 0 && a.rewrite_rc == 0)
                w = car_sink_buf(&out, a.rewrite.data, a.rewrite.len);
            if (w == 0 && a.rewrite_rc == 0) {
                struct car_reader r2;
                memset(&b, 0, sizeof b);
                b.rewrite_rc = 1;
                int rc3 = run(out.data, out.len, 0, &b, &r2);
                FUZZ_CHECK(rc3 == 0 && b.n == a.n && b.sum == a.sum,
                           "the re-written CAR reads back differently: %d", rc3);
                FUZZ_CHECK(car_reader_nroots(&r2) == nroots, "roots do not round-trip");
                for (size_t i = 0; i < nroots; i++) {
                    struct cid c;
                    FUZZ_CHECK(car_reader_root(&r2, i, &c) == 0 && cid_equal(&c, &roots[i]),
                               "root %zu does not round-trip", i);
                }
                car_reader_free(&r2);
            }
        }
        free(out.data);
        free(roots);
    }
    car_reader_free(&r);
    free(a.rewrite.data);
    free(buf);
    return 0;
}

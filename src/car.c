/* car.c - see car.h.
 *
 * The reader is a byte-driven state machine: varints are assembled a byte at a time (they may
 * be split anywhere), fixed-size pieces (a header, a section) are either used in place when the
 * fed piece holds them whole or copied into one buffer that grows to the largest section seen.
 * A CARv2 is the same machine with a padding skip in front and a byte budget (the payload size)
 * on the CARv1 inside; what follows the payload (the index) is discarded unread.
 */
#include "config.h"

#include "car.h"

#include "sha256.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest binary CID: varint(1), a codec varint of at most 9 bytes, the multihash. */
#define CAR_CID_MAX (1 + 9 + CID_MAX_MH)
/* CARv2: the pragma (itself a CARv1-style header {version: 2}) and the fixed header after it. */
#define CARV2_PRAGMA_LEN 11
#define CARV2_HEADER_LEN 40
static const uint8_t CARV2_PRAGMA[CARV2_PRAGMA_LEN] = {0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72,
                                                       0x73, 0x69, 0x6f, 0x6e, 0x02};
/* CBOR items nested deeper than this in the header are refused (we skip unknown keys). */
#define CBOR_MAX_DEPTH 16
#define CBOR_TAG_CID 42

enum {
    ST_HDR_LEN,  /* varint: length of a CARv1-style header (the first one may be the pragma) */
    ST_HDR,      /* the header's DAG-CBOR */
    ST_V2_HDR,   /* CARv2: the 40 bytes after the pragma */
    ST_V2_PAD,   /* CARv2: bytes up to the data offset */
    ST_SEC_LEN,  /* varint: length of a section */
    ST_SEC,      /* a section: CID then block */
    ST_TRAILER,  /* CARv2: after the payload (the index): ignored */
    ST_FAILED,
};

void car_reader_init(struct car_reader *r, size_t max_block)
{
    memset(r, 0, sizeof *r);
    r->state = ST_HDR_LEN;
    r->max_block = max_block;
    r->payload_left = UINT64_MAX;
}

void car_reader_free(struct car_reader *r)
{
    free(r->buf);
    free(r->roots);
    r->buf = NULL;
    r->roots = NULL;
    r->cap = r->have = r->roots_len = r->nroots = 0;
}

unsigned car_reader_version(const struct car_reader *r)
{
    return r->version;
}

size_t car_reader_nroots(const struct car_reader *r)
{
    return r->nroots;
}

uint64_t car_reader_nblocks(const struct car_reader *r)
{
    return r->nblocks;
}

int car_reader_root(const struct car_reader *r, size_t i, struct cid *out)
{
    size_t off = 0;

    if (i >= r->nroots)
        return -ERANGE;
    for (size_t k = 0; k < i; k++)
        off += 1 + (size_t)r->roots[off];
    return cid_from_bytes(r->roots + off + 1, r->roots[off], out);
}

/* ---- the header's DAG-CBOR ---------------------------------------------------------------- */

/* One CBOR head: major type and argument. Indefinite lengths (not DAG-CBOR) are refused. */
static int cbor_head(const uint8_t **pp, const uint8_t *end, unsigned *major, uint64_t *arg)
{
    const uint8_t *p = *pp;
    unsigned ai, nbytes;
    uint64_t v = 0;

    if (p >= end)
        return -EPROTO;
    *major = *p >> 5;
    ai = *p & 0x1f;
    p++;
    if (ai < 24) {
        v = ai;
        nbytes = 0;
    } else if (ai <= 27) {
        nbytes = 1u << (ai - 24);
    } else {
        return -EPROTO;
    }
    if ((size_t)(end - p) < nbytes)
        return -EPROTO;
    for (unsigned i = 0; i < nbytes; i++)
        v = (v << 8) | p[i];
    *pp = p + nbytes;
    *arg = v;
    return 0;
}

/* Skip one item (an unknown key's value). */
static int cbor_skip(const uint8_t **pp, const uint8_t *end, int depth)
{
    unsigned major;
    uint64_t arg;
    int rc;

    if (depth > CBOR_MAX_DEPTH)
        return -EPROTO;
    rc = cbor_head(pp, end, &major, &arg);
    if (rc < 0)
        return rc;
    switch (major) {
    case 0: /* unsigned, negative, simple values and floats: the head is all */
    case 1:
    case 7:
        return 0;
    case 2: /* byte and text strings */
    case 3:
        if (arg > (uint64_t)(end - *pp))
            return -EPROTO;
        *pp += arg;
        return 0;
    case 6: /* a tag: one item follows */
        return cbor_skip(pp, end, depth + 1);
    default: /* 4 array, 5 map: each item takes a byte at least, which bounds the loop */
        if (arg > (uint64_t)(end - *pp))
            return -EPROTO;
        if (major == 5)
            arg *= 2;
        for (uint64_t i = 0; i < arg; i++) {
            rc = cbor_skip(pp, end, depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
}

/* roots: an array of tag 42 byte strings, each 0x00 (the identity multibase) + binary CID.
 * Kept packed in r->roots (they came from the header, so they fit in its size). */
static int parse_roots(struct car_reader *r, const uint8_t **pp, const uint8_t *end)
{
    unsigned major;
    uint64_t n, arg;
    int rc;

    rc = cbor_head(pp, end, &major, &n);
    if (rc < 0)
        return rc;
    if (major != 4 || n > (uint64_t)(end - *pp))
        return -EPROTO;
    free(r->roots);
    r->roots = malloc((size_t)(end - *pp) + 1);
    r->roots_len = r->nroots = 0;
    if (!r->roots)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        struct cid c;
        rc = cbor_head(pp, end, &major, &arg);
        if (rc < 0)
            return rc;
        if (major != 6 || arg != CBOR_TAG_CID)
            return -EPROTO;
        rc = cbor_head(pp, end, &major, &arg);
        if (rc < 0)
            return rc;
        if (major != 2 || arg < 2 || arg > (uint64_t)(end - *pp) || arg - 1 > CAR_CID_MAX ||
            (*pp)[0] != 0x00)
            return -EPROTO;
        if (cid_from_bytes(*pp + 1, (size_t)arg - 1, &c) < 0)
            return -EPROTO;
        /* arg bytes of input became 1 + (arg - 1) bytes here: never past the allocation. */
        r->roots[r->roots_len] = (uint8_t)(arg - 1);
        memcpy(r->roots + r->roots_len + 1, *pp + 1, (size_t)arg - 1);
        r->roots_len += (size_t)arg;
        r->nroots++;
        *pp += arg;
    }
    return 0;
}

/* The CARv1 header: a map with "version" (must be 1) and "roots"; other keys are skipped
 * (lenient, as go-car's cbor-gen decoder is), duplicates refused. */
static int parse_header(struct car_reader *r, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    unsigned major;
    uint64_t npairs, arg, version = 0;
    bool seen_version = false, seen_roots = false;
    int rc;

    rc = cbor_head(&p, end, &major, &npairs);
    if (rc < 0)
        return rc;
    if (major != 5 || npairs > n)
        return -EPROTO;
    for (uint64_t i = 0; i < npairs; i++) {
        rc = cbor_head(&p, end, &major, &arg);
        if (rc < 0)
            return rc;
        if (major != 3 || arg > (uint64_t)(end - p))
            return -EPROTO;
        const uint8_t *key = p;
        p += arg;
        if (arg == 7 && memcmp(key, "version", 7) == 0) {
            if (seen_version)
                return -EPROTO;
            seen_version = true;
            rc = cbor_head(&p, end, &major, &version);
            if (rc < 0)
                return rc;
            if (major != 0)
                return -EPROTO;
        } else if (arg == 5 && memcmp(key, "roots", 5) == 0) {
            if (seen_roots)
                return -EPROTO;
            seen_roots = true;
            rc = parse_roots(r, &p, end);
        } else {
            rc = cbor_skip(&p, end, 1);
        }
        if (rc < 0)
            return rc;
    }
    if (p != end || !seen_version || version != 1)
        return -EPROTO;
    return 0;
}

/* ---- sections ----------------------------------------------------------------------------- */

/* Length of the binary CID at the start of a section of n bytes. */
static int section_cid_len(const uint8_t *s, size_t n, size_t *out)
{
    size_t off = 0, k;
    uint64_t v = 0;

    if (n >= 1 && s[0] == MH_SHA2_256) { /* CIDv0: the bare sha2-256 multihash */
        *out = 34;
        return n >= 34 ? 0 : -EPROTO;
    }
    /* CIDv1: version, codec, hash function, digest length, digest. */
    for (int i = 0; i < 4; i++) {
        k = varint_decode(s + off, n - off, &v);
        if (k == 0 || (i == 0 && v != 1))
            return -EPROTO;
        off += k;
    }
    if (v > n - off || off + v > CAR_CID_MAX)
        return -EPROTO;
    *out = off + (size_t)v;
    return 0;
}

/* Check that block hashes to c's multihash. */
static int verify_block(const struct cid *c, const uint8_t *block, size_t len)
{
    uint64_t code, dlen;
    size_t a, b;
    uint8_t d[SHA256_LEN];
    int rc;

    a = varint_decode(c->mh, c->mh_len, &code);
    b = a ? varint_decode(c->mh + a, c->mh_len - a, &dlen) : 0;
    if (b == 0 || dlen != c->mh_len - a - b)
        return -EPROTO; /* cid_from_bytes checked this already */
    const uint8_t *digest = c->mh + a + b;
    if (code == MH_SHA2_256) {
        rc = sha256_digest(block, len, d);
        if (rc < 0)
            return rc;
        return dlen == SHA256_LEN && memcmp(d, digest, SHA256_LEN) == 0 ? 0 : -EBADMSG;
    }
    if (code == MH_IDENTITY)
        return dlen == len && (len == 0 || memcmp(block, digest, len) == 0) ? 0 : -EBADMSG;
    return -ENOTSUP;
}

static int process_section(struct car_reader *r, const uint8_t *s, size_t n, car_block_cb cb,
                           void *ud)
{
    struct cid c;
    size_t cl;
    int rc;

    rc = section_cid_len(s, n, &cl);
    if (rc < 0)
        return rc;
    if (cid_from_bytes(s, cl, &c) < 0)
        return -EPROTO;
    if (n - cl > r->max_block)
        return -EFBIG;
    rc = verify_block(&c, s + cl, n - cl);
    if (rc < 0)
        return rc;
    r->nblocks++;
    return cb ? cb(ud, &c, s + cl, n - cl) : 0;
}

/* ---- the state machine -------------------------------------------------------------------- */

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A fixed-size piece of r->want bytes: returns it (in place or in r->buf) once complete, NULL
 * while more is needed; *used is what it took from p[0..n). */
static int collect(struct car_reader *r, const uint8_t *p, size_t n, size_t *used,
                   const uint8_t **piece)
{
    *piece = NULL;
    if (r->have == 0 && n >= r->want) {
        *used = r->want;
        *piece = p;
        return 0;
    }
    if (r->cap < r->want) {
        uint8_t *nb = realloc(r->buf, r->want);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = r->want;
    }
    size_t take = r->want - r->have < n ? r->want - r->have : n;
    memcpy(r->buf + r->have, p, take);
    r->have += take;
    *used = take;
    if (r->have == r->want) {
        *piece = r->buf;
        r->have = 0;
    }
    return 0;
}

/* One byte of a varint; *done set with the value when it ends. */
static int varint_byte(struct car_reader *r, uint8_t byte, bool *done, uint64_t *val)
{
    *done = false;
    r->var[r->varlen++] = byte;
    if (byte & 0x80) {
        if (r->varlen >= 9)
            return -EPROTO;
        return 0;
    }
    size_t k = varint_decode(r->var, r->varlen, val);
    r->varlen = 0;
    if (k == 0)
        return -EPROTO; /* not minimal */
    *done = true;
    return 0;
}

static bool in_payload(const struct car_reader *r)
{
    return r->state == ST_SEC_LEN || r->state == ST_SEC ||
           (r->version == 2 && (r->state == ST_HDR_LEN || r->state == ST_HDR));
}

/* One step: consume at least one byte of p[0..n) (n > 0) or fail. */
static int step(struct car_reader *r, const uint8_t *p, size_t n, size_t *used, car_block_cb cb,
                void *ud)
{
    const uint8_t *piece;
    uint64_t v;
    bool done;
    int rc;

    *used = 0;
    switch (r->state) {
    case ST_HDR_LEN:
    case ST_SEC_LEN:
        *used = 1;
        rc = varint_byte(r, p[0], &done, &v);
        if (rc < 0 || !done)
            return rc;
        if (v == 0)
            return -EPROTO;
        if (r->state == ST_HDR_LEN) {
            if (v > CAR_HEADER_MAX)
                return -EFBIG;
            r->state = ST_HDR;
        } else {
            if (v > (uint64_t)r->max_block + CAR_CID_MAX)
                return -EFBIG;
            r->state = ST_SEC;
        }
        /* The whole piece must fit in what is left of a CARv2 payload; payload_left counts
         * the varint's last byte only after this step, hence the - 1. */
        if (r->payload_left != UINT64_MAX && v > r->payload_left - 1)
            return -EPROTO;
        r->want = (size_t)v;
        r->have = 0;
        return 0;

    case ST_HDR:
        rc = collect(r, p, n, used, &piece);
        if (rc < 0 || !piece)
            return rc;
        if (r->version == 0 && r->want == CARV2_PRAGMA_LEN - 1 &&
            memcmp(piece, CARV2_PRAGMA + 1, CARV2_PRAGMA_LEN - 1) == 0) {
            r->version = 2;
            r->want = CARV2_HEADER_LEN;
            r->state = ST_V2_HDR;
            return 0;
        }
        rc = parse_header(r, piece, r->want);
        if (rc < 0)
            return rc;
        if (r->version == 0)
            r->version = 1;
        r->state = ST_SEC_LEN;
        return 0;

    case ST_V2_HDR: {
        rc = collect(r, p, n, used, &piece);
        if (rc < 0 || !piece)
            return rc;
        uint64_t off = le64(piece + 16), size = le64(piece + 24);
        if (off < CARV2_PRAGMA_LEN + CARV2_HEADER_LEN || size == 0 || size == UINT64_MAX ||
            size > UINT64_MAX - off)
            return -EPROTO;
        r->skip = off - (CARV2_PRAGMA_LEN + CARV2_HEADER_LEN);
        r->payload_left = size;
        r->state = r->skip ? ST_V2_PAD : ST_HDR_LEN;
        return 0;
    }

    case ST_V2_PAD:
        *used = r->skip < n ? (size_t)r->skip : n;
        r->skip -= *used;
        if (r->skip == 0)
            r->state = ST_HDR_LEN;
        return 0;

    case ST_SEC:
        rc = collect(r, p, n, used, &piece);
        if (rc < 0 || !piece)
            return rc;
        r->state = ST_SEC_LEN;
        return process_section(r, piece, r->want, cb, ud);

    case ST_TRAILER:
        *used = n;
        return 0;
    default:
        return r->err ? r->err : -EPROTO;
    }
}

int car_reader_feed(struct car_reader *r, const void *data, size_t len, car_block_cb cb,
                    void *ud)
{
    const uint8_t *p = data;
    int rc = 0;

    if (r->state == ST_FAILED)
        return r->err;
    while (len > 0) {
        size_t n = len, used;
        bool counted = in_payload(r) && r->payload_left != UINT64_MAX;
        if (counted) {
            if (r->payload_left == 0) {
                /* The CARv2 payload is over: it must end between sections. */
                if (r->state != ST_SEC_LEN || r->varlen != 0) {
                    rc = -EPROTO;
                    goto out;
                }
                r->state = ST_TRAILER;
                continue;
            }
            if (n > r->payload_left)
                n = (size_t)r->payload_left;
        }
        rc = step(r, p, n, &used, cb, ud);
        if (rc < 0)
            goto out;
        if (counted)
            r->payload_left -= used;
        p += used;
        len -= used;
    }
out:
    if (rc < 0) {
        r->state = ST_FAILED;
        r->err = rc;
    }
    return rc;
}

int car_reader_finish(struct car_reader *r)
{
    if (r->state == ST_FAILED)
        return r->err;
    if (r->state == ST_TRAILER)
        return 0;
    if (r->state == ST_SEC_LEN && r->varlen == 0 &&
        (r->payload_left == UINT64_MAX || r->payload_left == 0))
        return 0;
    r->state = ST_FAILED;
    r->err = -EPROTO;
    return r->err;
}

/* ---- writer ------------------------------------------------------------------------------- */

/* A CBOR head with the shortest argument, as DAG-CBOR requires. Returns its length. */
static size_t cbor_put_head(uint8_t *b, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        b[0] = m | (uint8_t)v;
        return 1;
    }
    unsigned nbytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    b[0] = m | (uint8_t)(nbytes == 1 ? 24 : nbytes == 2 ? 25 : nbytes == 4 ? 26 : 27);
    for (unsigned i = 0; i < nbytes; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (nbytes - 1 - i)));
    return 1 + nbytes;
}

int car_write_header(car_write_fn w, void *ud, const struct cid *roots, size_t nroots)
{
    /* Room for the length varint, the map and both keys, and each root at its largest. */
    size_t max = 10 + 1 + 6 + 9 + 8 + 1;
    uint8_t *b = NULL;
    size_t n = 0, hdr_start;
    int rc;

    if (nroots > CAR_HEADER_MAX)
        return -EFBIG;
    if (nroots && !roots)
        return -EINVAL;
    max += nroots * (2 + 3 + 1 + CAR_CID_MAX);
    b = malloc(max);
    if (!b)
        return -ENOMEM;
    /* Encode the DAG-CBOR at offset 10, then put its length varint just before it. */
    hdr_start = 10;
    n = hdr_start;
    b[n++] = 0xa2; /* map of 2; keys in DAG-CBOR order: shorter first */
    n += cbor_put_head(b + n, 3, 5);
    memcpy(b + n, "roots", 5);
    n += 5;
    n += cbor_put_head(b + n, 4, nroots);
    for (size_t i = 0; i < nroots; i++) {
        uint8_t bin[CAR_CID_MAX];
        int cl = cid_to_bytes(&roots[i], bin, sizeof bin);
        if (cl < 0) {
            rc = -EINVAL;
            goto out;
        }
        n += cbor_put_head(b + n, 6, CBOR_TAG_CID);
        n += cbor_put_head(b + n, 2, (uint64_t)cl + 1);
        b[n++] = 0x00;
        memcpy(b + n, bin, (size_t)cl);
        n += (size_t)cl;
    }
    n += cbor_put_head(b + n, 3, 7);
    memcpy(b + n, "version", 7);
    n += 7;
    b[n++] = 0x01;
    size_t hlen = n - hdr_start;
    if (hlen > CAR_HEADER_MAX) {
        rc = -EFBIG;
        goto out;
    }
    uint8_t var[10];
    size_t vl = varint_encode(hlen, var);
    memcpy(b + hdr_start - vl, var, vl);
    rc = w(ud, b + hdr_start - vl, hlen + vl);
out:
    free(b);
    return rc;
}

size_t car_block_size(const struct cid *c, size_t len)
{
    uint8_t bin[CAR_CID_MAX], var[10];
    int cl = cid_to_bytes(c, bin, sizeof bin);
    if (cl < 0)
        return 0;
    return varint_encode((uint64_t)cl + len, var) + (size_t)cl + len;
}

int car_write_block(car_write_fn w, void *ud, const struct cid *c, const uint8_t *block,
                    size_t len)
{
    uint8_t pre[10 + CAR_CID_MAX], bin[CAR_CID_MAX];
    int cl, rc;

    if (len && !block)
        return -EINVAL;
    cl = cid_to_bytes(c, bin, sizeof bin);
    if (cl < 0)
        return -EINVAL;
    size_t vl = varint_encode((uint64_t)cl + len, pre);
    memcpy(pre + vl, bin, (size_t)cl);
    rc = w(ud, pre, vl + (size_t)cl);
    if (rc < 0 || len == 0)
        return rc;
    return w(ud, block, len);
}

int car_sink_fd(void *ud, const void *data, size_t len)
{
    int fd = *(const int *)ud;
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            return -EIO;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int car_sink_buf(void *ud, const void *data, size_t len)
{
    struct car_buf *b = ud;

    if (len == 0)
        return 0; /* data may be NULL: no memcpy */
    if (len > SIZE_MAX - b->len || (b->max && b->len + len > b->max))
        return -EFBIG;
    if (b->len + len > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + len)
            ncap = ncap > SIZE_MAX / 2 ? b->len + len : ncap * 2;
        if (b->max && ncap > b->max)
            ncap = b->max;
        uint8_t *nd = realloc(b->data, ncap);
        if (!nd)
            return -ENOMEM;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

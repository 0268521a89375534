/* cid.c - see cid.h. */
#include "config.h"

#include "cid.h"

#include <errno.h>
#include <string.h>
#include <xxhash.h>

/* Longest string cid_parse looks at. The longest CID we accept is 141 bytes in binary
 * (version, 9-byte codec varint, 131-byte identity multihash), i.e. 283 characters in base16
 * with its prefix; anything longer than this bound is refused before decoding. */
#define CID_PARSE_MAX 400
/* Largest binary CID: varint(1), varint(codec) of at most 9 bytes, multihash. */
#define CID_BIN_MAX (1 + 9 + CID_MAX_MH)
/* A CIDv0 string: base58btc of 0x12 0x20 + 32-byte digest. */
#define CID_V0_STRLEN 46
#define CID_V0_BINLEN 34
/* Varints in CIDs are at most 9 bytes (63 bits), as in the multiformats unsigned-varint spec. */
#define VARINT_MAX 9

static const char B58_BTC[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char B36_LOWER[] = "0123456789abcdefghijklmnopqrstuvwxyz";
static const char B36_UPPER[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char B32_LOWER[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char B32_UPPER[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char B32HEX_LOWER[] = "0123456789abcdefghijklmnopqrstuv";
static const char B32HEX_UPPER[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
static const char B16_LOWER[] = "0123456789abcdef";
static const char B16_UPPER[] = "0123456789ABCDEF";
static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- varints ---------------------------------------------------------------------------- */

size_t varint_decode(const uint8_t *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (!p)
        return 0;
    for (size_t i = 0; i < n && i < VARINT_MAX; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            /* A last byte of 0 after continuation bytes adds nothing: not minimal. */
            if (i > 0 && p[i] == 0)
                return 0;
            if (out)
                *out = v;
            return i + 1;
        }
    }
    return 0;
}

size_t varint_encode(uint64_t v, uint8_t *buf)
{
    size_t i = 0;

    while (v >= 0x80) {
        buf[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[i++] = (uint8_t)v;
    return i;
}

/* ---- multibase codecs --------------------------------------------------------------------- */

/* Value of character c in alphabet alpha of size n, or -1. */
static int digit_of(const char *alpha, size_t n, char c)
{
    const char *hit = memchr(alpha, c, n);
    return hit ? (int)(hit - alpha) : -1;
}

/* Big-number base conversion (base58btc, base36): leading "zero" characters stand for leading
 * zero bytes. Writes at most outmax bytes. */
static int basex_decode(const char *s, size_t len, const char *alpha, unsigned base, uint8_t *out,
                        size_t outmax, size_t *outlen)
{
    uint8_t num[CID_PARSE_MAX]; /* little-endian; base < 256 so bytes <= characters */
    size_t nlen = 0, zeros = 0;

    if (len > sizeof num)
        return -EINVAL;
    while (zeros < len && s[zeros] == alpha[0])
        zeros++;
    for (size_t i = zeros; i < len; i++) {
        int d = digit_of(alpha, base, s[i]);
        if (d < 0)
            return -EINVAL;
        unsigned carry = (unsigned)d;
        for (size_t j = 0; j < nlen; j++) {
            carry += (unsigned)num[j] * base;
            num[j] = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry) {
            if (nlen >= sizeof num)
                return -EINVAL;
            num[nlen++] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    if (zeros + nlen > outmax)
        return -EINVAL;
    memset(out, 0, zeros);
    for (size_t j = 0; j < nlen; j++)
        out[zeros + j] = num[nlen - 1 - j];
    *outlen = zeros + nlen;
    return 0;
}

int cid_base58_decode(const char *s, size_t len, uint8_t *out, size_t outmax, size_t *outlen)
{
    return basex_decode(s, len, B58_BTC, 58, out, outmax, outlen);
}

/* Inverse of basex_decode. Writes a NUL-terminated string; returns its length or -ENOSPC. */
static int basex_encode(const uint8_t *b, size_t n, const char *alpha, unsigned base, char *out,
                        size_t outmax)
{
    uint8_t digits[2 * CID_BIN_MAX]; /* little-endian digits; base >= 36 needs < 1.6 per byte */
    size_t dlen = 0, zeros = 0;

    if (n > CID_BIN_MAX)
        return -ENOSPC;
    while (zeros < n && b[zeros] == 0)
        zeros++;
    for (size_t i = zeros; i < n; i++) {
        unsigned carry = b[i];
        for (size_t j = 0; j < dlen; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % base);
            carry /= base;
        }
        while (carry) {
            if (dlen >= sizeof digits)
                return -ENOSPC;
            digits[dlen++] = (uint8_t)(carry % base);
            carry /= base;
        }
    }
    if (zeros + dlen + 1 > outmax)
        return -ENOSPC;
    memset(out, alpha[0], zeros);
    for (size_t j = 0; j < dlen; j++)
        out[zeros + j] = alpha[digits[dlen - 1 - j]];
    out[zeros + dlen] = '\0';
    return (int)(zeros + dlen);
}

/* RFC 4648 style codecs (base16, base32, base64) with bits bits per character, unpadded.
 * A final partial group of bits must be shorter than one character; its bits are ignored, as
 * Go's decoder (Kubo's) ignores them: Kubo reads "...akwpz" as the CID spelled "...akwpy", so
 * must we (else such a name could be created in the mount root while it reads as a CID on the
 * node). cid_format always writes the canonical spelling (zero bits). */
static int rfc_decode(const char *s, size_t len, const char *alpha, unsigned bits, uint8_t *out,
                      size_t outmax, size_t *outlen)
{
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int d = digit_of(alpha, (size_t)1 << bits, s[i]);
        if (d < 0)
            return -EINVAL;
        acc = (acc << bits) | (uint32_t)d;
        nbits += bits;
        if (nbits >= 8) {
            nbits -= 8;
            if (o >= outmax)
                return -EINVAL;
            out[o++] = (uint8_t)(acc >> nbits);
            acc &= (1u << nbits) - 1;
        }
    }
    if (nbits >= bits)
        return -EINVAL;
    *outlen = o;
    return 0;
}

static int rfc_encode(const uint8_t *b, size_t n, const char *alpha, unsigned bits, char *out,
                      size_t outmax)
{
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | b[i];
        nbits += 8;
        while (nbits >= bits) {
            nbits -= bits;
            if (o + 1 >= outmax)
                return -ENOSPC;
            out[o++] = alpha[(acc >> nbits) & ((1u << bits) - 1)];
        }
        acc &= (1u << nbits) - 1;
    }
    if (nbits > 0) {
        if (o + 1 >= outmax)
            return -ENOSPC;
        out[o++] = alpha[(acc << (bits - nbits)) & ((1u << bits) - 1)];
    }
    if (o >= outmax)
        return -ENOSPC;
    out[o] = '\0';
    return (int)o;
}

/* Padded base64: the length is a multiple of 4 and one or two '=' complete the last group. */
static int base64pad_decode(const char *s, size_t len, const char *alpha, uint8_t *out,
                            size_t outmax, size_t *outlen)
{
    size_t pad = 0;

    if (len == 0 || len % 4 != 0)
        return -EINVAL;
    while (pad < 2 && s[len - 1 - pad] == '=')
        pad++;
    /* Since len is a multiple of 4, the unpadded rest ends in a 2- or 3-character group exactly
     * when one or two '=' were present; rfc_decode refuses any '=' left inside. */
    return rfc_decode(s, len - pad, alpha, 6, out, outmax, outlen);
}

/* Decode a multibase string (prefix character included) into binary. Kubo (go-multibase)
 * reads base32, base32hex, base16 and base36 in either case whatever the prefix says
 * ("bAfkrei..." is the CID "bafkrei..."), so do we: else a name spelled so could be made in
 * the mount root while it reads as a CID on the node. */
static int multibase_decode(const char *s, size_t len, uint8_t *out, size_t outmax, size_t *outlen)
{
    const char *p = s + 1;
    size_t n = len - 1;
    char folded[CID_PARSE_MAX];

    if (len < 2)
        return -EINVAL;
    if (s[0] && strchr("bBvVfFkK", s[0])) {
        bool upper = s[0] >= 'A' && s[0] <= 'Z';
        if (n > sizeof folded)
            return -EINVAL;
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (upper && c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            else if (!upper && c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            folded[i] = c;
        }
        p = folded;
    }
    switch (s[0]) {
    case 'z':
        return basex_decode(p, n, B58_BTC, 58, out, outmax, outlen);
    case 'k':
        return basex_decode(p, n, B36_LOWER, 36, out, outmax, outlen);
    case 'K':
        return basex_decode(p, n, B36_UPPER, 36, out, outmax, outlen);
    case 'b':
        return rfc_decode(p, n, B32_LOWER, 5, out, outmax, outlen);
    case 'B':
        return rfc_decode(p, n, B32_UPPER, 5, out, outmax, outlen);
    case 'v':
        return rfc_decode(p, n, B32HEX_LOWER, 5, out, outmax, outlen);
    case 'V':
        return rfc_decode(p, n, B32HEX_UPPER, 5, out, outmax, outlen);
    case 'f':
        return rfc_decode(p, n, B16_LOWER, 4, out, outmax, outlen);
    case 'F':
        return rfc_decode(p, n, B16_UPPER, 4, out, outmax, outlen);
    case 'm':
        return rfc_decode(p, n, B64_STD, 6, out, outmax, outlen);
    case 'u':
        return rfc_decode(p, n, B64_URL, 6, out, outmax, outlen);
    case 'M':
        return base64pad_decode(p, n, B64_STD, out, outmax, outlen);
    case 'U':
        return base64pad_decode(p, n, B64_URL, out, outmax, outlen);
    default:
        return -EINVAL;
    }
}

/* ---- multihash and binary CIDs ------------------------------------------------------------ */

/* Known digest length of a hash function: > 0 fixed, 0 for "any length 1..64", -1 identity. */
static int mh_known_len(uint64_t code)
{
    switch (code) {
    case MH_IDENTITY:
        return -1;
    case MH_SHA2_256: /* sha2-256 */
    case 0x16:        /* sha3-256 */
    case 0x1b:        /* keccak-256 */
    case 0xb220:      /* blake2b-256 */
        return 32;
    case 0x13:   /* sha2-512 */
    case 0x14:   /* sha3-512 */
    case 0xb240: /* blake2b-512 */
        return 64;
    case 0x15: /* sha3-384 */
        return 48;
    case 0x17: /* sha3-224 */
        return 28;
    default: /* blake3 (0x1e) and unknown functions */
        return 0;
    }
}

/* Validate a whole multihash b[0..n) and store it in out. */
static int mh_parse(const uint8_t *b, size_t n, struct cid *out)
{
    uint64_t code, dlen;
    size_t a, c;
    int known;

    if (n > CID_MAX_MH)
        return -EINVAL;
    a = varint_decode(b, n, &code);
    if (a == 0)
        return -EINVAL;
    c = varint_decode(b + a, n - a, &dlen);
    if (c == 0)
        return -EINVAL;
    if (dlen != n - a - c)
        return -EINVAL;
    known = mh_known_len(code);
    if (known < 0) {
        if (dlen > 128)
            return -EINVAL;
    } else if (known > 0) {
        if (dlen != (uint64_t)known)
            return -EINVAL;
    } else if (dlen < 1 || dlen > 64) {
        return -EINVAL;
    }
    out->mh_code = code;
    out->mh_len = n;
    memcpy(out->mh, b, n);
    return 0;
}

static bool is_v0_bytes(const uint8_t *b, size_t n)
{
    return n == CID_V0_BINLEN && b[0] == MH_SHA2_256 && b[1] == 32;
}

static int cid_parse_v0_bytes(const uint8_t *b, size_t n, struct cid *out)
{
    struct cid c;

    if (!is_v0_bytes(b, n))
        return -EINVAL;
    memset(&c, 0, sizeof c);
    c.version = 0;
    c.codec = CID_CODEC_DAG_PB;
    if (mh_parse(b, n, &c) < 0)
        return -EINVAL;
    *out = c;
    return 0;
}

static int cid_parse_v1_bytes(const uint8_t *b, size_t n, struct cid *out)
{
    struct cid c;
    uint64_t version, codec;
    size_t a, k;

    a = varint_decode(b, n, &version);
    if (a == 0 || version != 1)
        return -EINVAL;
    k = varint_decode(b + a, n - a, &codec);
    if (k == 0)
        return -EINVAL;
    memset(&c, 0, sizeof c);
    c.version = 1;
    c.codec = codec;
    if (mh_parse(b + a + k, n - a - k, &c) < 0)
        return -EINVAL;
    *out = c;
    return 0;
}

int cid_from_bytes(const uint8_t *b, size_t n, struct cid *out)
{
    if (!b || !out || n == 0)
        return -EINVAL;
    /* Binary CIDv0 is the bare sha2-256 multihash; a CIDv1 starts with version 1. */
    if (b[0] == MH_SHA2_256)
        return cid_parse_v0_bytes(b, n, out);
    return cid_parse_v1_bytes(b, n, out);
}

/* ---- strings ------------------------------------------------------------------------------ */

int cid_parse(const char *s, size_t len, struct cid *out)
{
    uint8_t bin[CID_PARSE_MAX];
    size_t n;

    if (!s || !out || len == 0 || len > CID_PARSE_MAX)
        return -EINVAL;
    if (len == CID_V0_STRLEN && s[0] == 'Q' && s[1] == 'm') {
        if (basex_decode(s, len, B58_BTC, 58, bin, sizeof bin, &n) < 0)
            return -EINVAL;
        return cid_parse_v0_bytes(bin, n, out);
    }
    if (multibase_decode(s, len, bin, sizeof bin, &n) < 0)
        return -EINVAL;
    /* Some nodes print a CIDv0 with a base58btc multibase prefix ("zQm...", 47 characters).
     * The CID spec forbids multibase-encoded CIDv0, but the intent is unambiguous (no CIDv1
     * starts with byte 0x12), so a 'z' string that decodes to exactly a sha2-256 multihash is
     * taken as that CIDv0. No other multibase gets this leniency. */
    if (s[0] == 'z' && is_v0_bytes(bin, n))
        return cid_parse_v0_bytes(bin, n, out);
    return cid_parse_v1_bytes(bin, n, out);
}

static bool cid_valid(const struct cid *c)
{
    return c && (c->version == 0 || c->version == 1) && c->mh_len > 0 && c->mh_len <= CID_MAX_MH;
}

int cid_to_bytes(const struct cid *c, uint8_t *buf, size_t buflen)
{
    uint8_t hdr[20];
    size_t h = 0;

    if (!cid_valid(c))
        return -EINVAL;
    if (c->version == 1) {
        h = varint_encode(1, hdr);
        h += varint_encode(c->codec, hdr + h);
    }
    if (!buf || buflen < h + c->mh_len)
        return -ENOSPC;
    memcpy(buf, hdr, h);
    memcpy(buf + h, c->mh, c->mh_len);
    return (int)(h + c->mh_len);
}

int cid_format(const struct cid *c, char *buf, size_t buflen)
{
    uint8_t bin[CID_BIN_MAX + 1];
    int n, r;

    n = cid_to_bytes(c, bin, sizeof bin);
    if (n < 0)
        return n;
    if (!buf || buflen == 0)
        return -ENOSPC;
    if (c->version == 0)
        return basex_encode(bin, (size_t)n, B58_BTC, 58, buf, buflen);
    if (buflen < 2)
        return -ENOSPC;
    buf[0] = 'b';
    r = rfc_encode(bin, (size_t)n, B32_LOWER, 5, buf + 1, buflen - 1);
    if (r < 0) {
        buf[0] = '\0';
        return r;
    }
    return r + 1;
}

bool cid_equal(const struct cid *a, const struct cid *b)
{
    if (!a || !b)
        return a == b;
    return a->version == b->version && a->codec == b->codec && a->mh_len == b->mh_len &&
           a->mh_len <= CID_MAX_MH && memcmp(a->mh, b->mh, a->mh_len) == 0;
}

uint64_t cid_hash(const struct cid *c)
{
    uint8_t bin[CID_BIN_MAX + 1];
    int n = cid_to_bytes(c, bin, sizeof bin);

    if (n < 0)
        return 0;
    return XXH3_64bits(bin, (size_t)n);
}

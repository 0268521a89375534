/* ipns.c - IPNS records: parse and verify (see ipns.h). */
#include "config.h"

#include "ipns.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "sha256.h"

#define CODEC_LIBP2P_KEY 0x72
#define KEY_RSA 0
#define KEY_ED25519 1
/* Nesting of CBOR values skipped inside data (the spec's data has none). */
#define CBOR_MAX_DEPTH 8

/* ---- protobuf ------------------------------------------------------------------------------ */

struct span {
    const uint8_t *p;
    size_t n;
    bool set;
};

static size_t pb_varint(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* The IpnsEntry fields we read. */
struct entry {
    struct span value, sig1, validity, pubkey, sig2, data;
    uint64_t vtype, seq, ttl;
    bool has_vtype, has_seq, has_ttl;
};

static int parse_entry(const uint8_t *p, size_t n, struct entry *e)
{
    memset(e, 0, sizeof *e);
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        size_t k = pb_varint(p + i, n - i, &key);
        if (!k)
            return -EBADMSG;
        i += k;
        unsigned field = (unsigned)(key >> 3), wire = (unsigned)(key & 7);
        if (key >> 3 > 0xffffffu)
            return -EBADMSG;
        if (wire == 0) {
            k = pb_varint(p + i, n - i, &v);
            if (!k)
                return -EBADMSG;
            i += k;
            if (field == 3) {
                e->vtype = v;
                e->has_vtype = true;
            } else if (field == 5) {
                e->seq = v;
                e->has_seq = true;
            } else if (field == 6) {
                e->ttl = v;
                e->has_ttl = true;
            }
        } else if (wire == 2) {
            k = pb_varint(p + i, n - i, &v);
            if (!k || v > n - i - k)
                return -EBADMSG;
            i += k;
            struct span s = {.p = p + i, .n = (size_t)v, .set = true};
            i += (size_t)v;
            switch (field) {
            case 1: e->value = s; break;
            case 2: e->sig1 = s; break;
            case 4: e->validity = s; break;
            case 7: e->pubkey = s; break;
            case 8: e->sig2 = s; break;
            case 9: e->data = s; break;
            default: break;
            }
        } else if (wire == 1 || wire == 5) {
            size_t w = wire == 1 ? 8 : 4;
            if (n - i < w)
                return -EBADMSG;
            i += w;
        } else {
            return -EBADMSG;
        }
    }
    return 0;
}

/* libp2p's PublicKey protobuf: {1: KeyType, 2: Data}. */
static int parse_pubkey(const uint8_t *p, size_t n, uint64_t *type, struct span *data)
{
    bool has_type = false;
    data->set = false;
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        size_t k = pb_varint(p + i, n - i, &key);
        if (!k)
            return -EBADMSG;
        i += k;
        if ((key & 7) == 0) {
            k = pb_varint(p + i, n - i, &v);
            if (!k)
                return -EBADMSG;
            i += k;
            if (key >> 3 == 1) {
                *type = v;
                has_type = true;
            }
        } else if ((key & 7) == 2) {
            k = pb_varint(p + i, n - i, &v);
            if (!k || v > n - i - k)
                return -EBADMSG;
            i += k;
            if (key >> 3 == 2)
                *data = (struct span){.p = p + i, .n = (size_t)v, .set = true};
            i += (size_t)v;
        } else {
            return -EBADMSG;
        }
    }
    return has_type && data->set ? 0 : -EBADMSG;
}

/* ---- DAG-CBOR (the few forms the record's data uses) ---------------------------------------- */

struct cbor {
    const uint8_t *p;
    size_t n, i;
};

/* The head of the next item: major type and argument. 0 or -EBADMSG (indefinite lengths,
 * which DAG-CBOR forbids, included). */
static int cbor_head(struct cbor *c, unsigned *major, uint64_t *arg)
{
    if (c->i >= c->n)
        return -EBADMSG;
    uint8_t b = c->p[c->i++];
    *major = b >> 5;
    unsigned ai = b & 0x1f;
    if (ai < 24) {
        *arg = ai;
        return 0;
    }
    if (ai > 27)
        return -EBADMSG;
    size_t w = (size_t)1 << (ai - 24);
    if (c->n - c->i < w)
        return -EBADMSG;
    uint64_t v = 0;
    for (size_t k = 0; k < w; k++)
        v = v << 8 | c->p[c->i++];
    *arg = v;
    return 0;
}

static int cbor_skip(struct cbor *c, int depth)
{
    unsigned major;
    uint64_t arg;
    if (depth > CBOR_MAX_DEPTH || cbor_head(c, &major, &arg) < 0)
        return -EBADMSG;
    switch (major) {
    case 0:
    case 1:
    case 7:
        return 0;
    case 2:
    case 3:
        if (arg > c->n - c->i)
            return -EBADMSG;
        c->i += (size_t)arg;
        return 0;
    case 4:
    case 5:
        if (arg > c->n) /* each item takes a byte at least */
            return -EBADMSG;
        for (uint64_t k = 0; k < (major == 5 ? 2 * arg : arg); k++)
            if (cbor_skip(c, depth + 1) < 0)
                return -EBADMSG;
        return 0;
    case 6:
        return cbor_skip(c, depth + 1);
    }
    return -EBADMSG;
}

struct data {
    struct span value, validity;
    uint64_t vtype, seq, ttl;
    bool has_vtype, has_seq, has_ttl;
};

static int parse_data(const uint8_t *p, size_t n, struct data *d)
{
    memset(d, 0, sizeof *d);
    struct cbor c = {.p = p, .n = n};
    unsigned major;
    uint64_t pairs;
    if (cbor_head(&c, &major, &pairs) < 0 || major != 5 || pairs > 64)
        return -EBADMSG;
    for (uint64_t k = 0; k < pairs; k++) {
        uint64_t klen;
        if (cbor_head(&c, &major, &klen) < 0 || major != 3 || klen > c.n - c.i)
            return -EBADMSG;
        const char *key = (const char *)c.p + c.i;
        c.i += (size_t)klen;
#define IS(s) (klen == sizeof(s) - 1 && memcmp(key, s, sizeof(s) - 1) == 0)
        if (IS("Value") || IS("Validity")) {
            struct span *s = IS("Value") ? &d->value : &d->validity;
            uint64_t len;
            if (s->set || cbor_head(&c, &major, &len) < 0 || major != 2 || len > c.n - c.i)
                return -EBADMSG;
            *s = (struct span){.p = c.p + c.i, .n = (size_t)len, .set = true};
            c.i += (size_t)len;
        } else if (IS("ValidityType") || IS("Sequence") || IS("TTL")) {
            uint64_t v;
            bool *has = IS("ValidityType") ? &d->has_vtype : IS("Sequence") ? &d->has_seq
                                                                             : &d->has_ttl;
            uint64_t *dst = IS("ValidityType") ? &d->vtype : IS("Sequence") ? &d->seq : &d->ttl;
            if (*has || cbor_head(&c, &major, &v) < 0 || major != 0)
                return -EBADMSG;
            *dst = v;
            *has = true;
        } else if (cbor_skip(&c, 1) < 0) {
            return -EBADMSG;
        }
#undef IS
    }
    if (c.i != c.n)
        return -EBADMSG;
    if (!d->value.set || !d->validity.set || !d->has_vtype || !d->has_seq || !d->has_ttl)
        return -EBADMSG;
    return 0;
}

/* ---- names ------------------------------------------------------------------------------- */

static const char B36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

int ipns_name_parse(const char *s, size_t len, struct cid *out)
{
    struct cid c;
    memset(&c, 0, sizeof c);
    if (len == 0 || len > 2 * CID_MAX_MH)
        return -EINVAL;
    if (s[0] == '1') {
        /* A peer ID whose key is inlined: the identity multihash in base58btc. */
        uint8_t mh[CID_MAX_MH];
        size_t n;
        uint64_t code, dlen;
        if (cid_base58_decode(s, len, mh, sizeof mh, &n) < 0)
            return -EINVAL;
        size_t a = varint_decode(mh, n, &code);
        size_t b = a ? varint_decode(mh + a, n - a, &dlen) : 0;
        if (!b || code != MH_IDENTITY || dlen == 0 || dlen != n - a - b)
            return -EINVAL;
        c.version = 1;
        c.codec = CODEC_LIBP2P_KEY;
        c.mh_code = MH_IDENTITY;
        c.mh_len = n;
        memcpy(c.mh, mh, n);
    } else {
        /* Qm...: cid_parse reads it as a CIDv0, which is the same sha2-256 multihash. */
        if (cid_parse(s, len, &c) < 0)
            return -EINVAL;
        bool peer = c.version == 0 && len == 46 && s[0] == 'Q' && s[1] == 'm';
        if (!peer && (c.version != 1 || c.codec != CODEC_LIBP2P_KEY))
            return -EINVAL;
        c.version = 1;
        c.codec = CODEC_LIBP2P_KEY;
    }
    *out = c;
    return 0;
}

int ipns_name_format(const struct cid *name, char *buf, size_t buflen)
{
    uint8_t bin[CID_MAX_MH + 24];
    int n = cid_to_bytes(name, bin, sizeof bin);
    if (n < 0)
        return n;
    uint8_t digits[2 * sizeof bin]; /* little-endian base-36 digits */
    size_t dlen = 0, zeros = 0;
    while (zeros < (size_t)n && bin[zeros] == 0)
        zeros++;
    for (size_t i = zeros; i < (size_t)n; i++) {
        unsigned carry = bin[i];
        for (size_t j = 0; j < dlen; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % 36u);
            carry /= 36u;
        }
        while (carry) {
            if (dlen >= sizeof digits)
                return -ENOSPC;
            digits[dlen++] = (uint8_t)(carry % 36u);
            carry /= 36u;
        }
    }
    size_t total = 1 + zeros + dlen;
    if (total + 1 > buflen)
        return -ENOSPC;
    buf[0] = 'k';
    memset(buf + 1, '0', zeros);
    for (size_t j = 0; j < dlen; j++)
        buf[1 + zeros + j] = B36[digits[dlen - 1 - j]];
    buf[total] = '\0';
    return (int)total;
}

/* ---- time -------------------------------------------------------------------------------- */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int ipns_parse_time(const char *s, size_t len, int64_t *ns)
{
    int Y, M, D, h, m, sec;
    if (len < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
        !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return -EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -EINVAL;
    size_t i = 19;
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        int64_t scale = 100000000;
        while (i < len && isdigit((unsigned char)s[i])) {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return -EINVAL;
    }
    int64_t off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != len)
        return -EINVAL;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                    .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && !(Y == 1969 && M == 12 && D == 31))
        return -EINVAL;
    int64_t secs = (int64_t)t - off;
    if (secs > INT64_MAX / 1000000000 - 1 || secs < INT64_MIN / 1000000000 + 1)
        return -EINVAL;
    *ns = secs * 1000000000 + frac;
    return 0;
}

/* ---- signatures ------------------------------------------------------------------------- */

static int verify_sig(uint64_t type, const struct span *key, const uint8_t *sig, size_t siglen,
                      const uint8_t *msg, size_t msglen)
{
    EVP_PKEY *pk = NULL;
    const EVP_MD *md = NULL;
    if (type == KEY_ED25519) {
        if (key->n != 32)
            return -EKEYREJECTED;
        pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key->p, key->n);
    } else if (type == KEY_RSA) {
        const unsigned char *q = key->p;
        pk = d2i_PUBKEY(NULL, &q, (long)key->n);
        if (pk && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
            EVP_PKEY_free(pk);
            return -EKEYREJECTED;
        }
        md = EVP_sha256();
    } else {
        return -ENOTSUP;
    }
    if (!pk)
        return -EKEYREJECTED;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pk) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok ? 0 : -EKEYREJECTED;
}

/* ---- the record ---------------------------------------------------------------------------- */

static bool span_eq(const struct span *a, const struct span *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

int ipns_verify(const struct cid *name, const uint8_t *rec, size_t len, int64_t now_ns,
                struct ipns_record *out)
{
    if (len > IPNS_MAX_RECORD)
        return -EFBIG;
    struct entry e;
    struct data d;
    if (parse_entry(rec, len, &e) < 0 || !e.sig2.set || !e.data.set ||
        parse_data(e.data.p, e.data.n, &d) < 0)
        return -EBADMSG;
    /* V1 fields, where present, must say what the signed data says. */
    if ((e.value.set && !span_eq(&e.value, &d.value)) ||
        (e.validity.set && !span_eq(&e.validity, &d.validity)) ||
        (e.has_vtype && e.vtype != d.vtype) || (e.has_seq && e.seq != d.seq) ||
        (e.has_ttl && e.ttl != d.ttl))
        return -EBADMSG;
    if (d.vtype != 0 || d.value.n == 0 || d.value.n > IPNS_MAX_VALUE ||
        memchr(d.value.p, '\0', d.value.n))
        return -EBADMSG;

    /* The key: the name's own (inlined), else the record's, which must hash to the name. */
    if (name->codec != CODEC_LIBP2P_KEY)
        return -EKEYREJECTED;
    const uint8_t *kp;
    size_t kn;
    uint64_t code, dlen;
    size_t a = varint_decode(name->mh, name->mh_len, &code);
    size_t b = a ? varint_decode(name->mh + a, name->mh_len - a, &dlen) : 0;
    if (!b || dlen != name->mh_len - a - b)
        return -EKEYREJECTED;
    const uint8_t *digest = name->mh + a + b;
    if (code == MH_IDENTITY) {
        kp = digest;
        kn = (size_t)dlen;
        if (e.pubkey.set && (e.pubkey.n != kn || memcmp(e.pubkey.p, kp, kn) != 0))
            return -EKEYREJECTED;
    } else if (code == MH_SHA2_256 && dlen == SHA256_LEN) {
        uint8_t h[SHA256_LEN];
        if (!e.pubkey.set || sha256_digest(e.pubkey.p, e.pubkey.n, h) < 0 ||
            memcmp(h, digest, SHA256_LEN) != 0)
            return -EKEYREJECTED;
        kp = e.pubkey.p;
        kn = e.pubkey.n;
    } else {
        return -EKEYREJECTED;
    }
    uint64_t ktype;
    struct span kdata;
    if (parse_pubkey(kp, kn, &ktype, &kdata) < 0)
        return -EKEYREJECTED;

    static const char prefix[] = "ipns-signature:";
    size_t mlen = sizeof prefix - 1 + e.data.n;
    uint8_t *msg = malloc(mlen);
    if (!msg)
        return -ENOMEM;
    memcpy(msg, prefix, sizeof prefix - 1);
    memcpy(msg + sizeof prefix - 1, e.data.p, e.data.n);
    int rc = verify_sig(ktype, &kdata, e.sig2.p, e.sig2.n, msg, mlen);
    free(msg);
    if (rc < 0)
        return rc;

    int64_t eol;
    if (ipns_parse_time((const char *)d.validity.p, d.validity.n, &eol) < 0)
        return -EBADMSG;
    if (eol <= now_ns)
        return -ETIME;
    memcpy(out->value, d.value.p, d.value.n);
    out->value[d.value.n] = '\0';
    out->sequence = d.seq;
    out->ttl_ns = d.ttl;
    out->eol_ns = eol;
    return 0;
}

uint64_t ipns_lifetime_ns(const struct ipns_record *r, int64_t now_ns, uint64_t cap_ns)
{
    if (r->eol_ns <= now_ns)
        return 0;
    uint64_t left = (uint64_t)(r->eol_ns - now_ns);
    uint64_t life = r->ttl_ns ? r->ttl_ns : cap_ns;
    if (left < life)
        life = left;
    if (cap_ns < life)
        life = cap_ns;
    return life;
}
